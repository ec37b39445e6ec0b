"""Turning feature columns into the numeric matrix a learner sees (fit on training rows only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from uplift.errors import SchemaError
from uplift.trainingtable import FeatureColumn

__all__ = ["make_preprocessor", "check_feature_frame"]


def make_preprocessor(features: tuple[FeatureColumn, ...], encoding: str) -> ColumnTransformer:
    """A ColumnTransformer for ``features``.

    ``encoding="ordinal"`` (trees): categories become integer codes, unseen or missing -> NaN,
    numeric columns pass through with NaN kept (LightGBM routes missing values itself).
    ``encoding="onehot"`` (linear models): one-hot categories (unseen -> all zeros), median-imputed
    and standardised numeric columns.
    """
    cats = [f.name for f in features if f.kind == "categorical"]
    nums = [f.name for f in features if f.kind == "numeric"]
    if encoding == "ordinal":
        cat = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan, dtype=np.float64
        )
        num = "passthrough"
    elif encoding == "onehot":
        cat = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64)
        num = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    else:
        raise ValueError(f"encoding {encoding!r} is not valid; valid: 'ordinal', 'onehot'")
    return ColumnTransformer(
        [("categorical", cat, cats), ("numeric", num, nums)],
        remainder="drop",
        sparse_threshold=0.0,
        verbose_feature_names_out=False,
    )


def check_feature_frame(frame: pd.DataFrame, features: tuple[FeatureColumn, ...], *, source: str) -> pd.DataFrame:
    """Return the feature columns of ``frame`` in order, typed; raise naming missing or mistyped columns."""
    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise SchemaError(f"{source}: missing feature column(s) {missing}")
    out = {}
    for f in features:
        col = frame[f.name]
        if f.kind == "numeric":
            values = pd.to_numeric(col, errors="coerce")
            bad = values.isna() & col.notna()
            if bad.any():
                raise SchemaError(
                    f"{source}: column {f.name!r}: expected numbers; {int(bad.sum())} row(s) break it "
                    f"(e.g. {col[bad].iloc[0]!r})"
                )
            out[f.name] = values.astype(float)
        else:
            out[f.name] = col.astype(object).where(col.notna(), None).astype(str).where(col.notna(), np.nan)
    return pd.DataFrame(out, index=frame.index)
