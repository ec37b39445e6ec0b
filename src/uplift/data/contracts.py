"""Frame contracts (pandera) for the three inputs, the truth file and the training table.

:func:`validate` checks a frame at a boundary and turns pandera's report into one
:class:`~uplift.errors.SchemaError` that names the source, each failing column, what was
expected and how many rows break it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pandera.pandas as pa

from uplift.data.vocabulary import (
    EDUCATION,
    EMPLOYMENT,
    FUNNEL_EVENTS,
    GENDERS,
    INCOME_BANDS,
    SECTORS,
)
from uplift.errors import SchemaError
from uplift.specs.features import AttributeSpec

__all__ = [
    "AUDIENCE",
    "EXPOSURES",
    "ENROLMENTS",
    "TRAINING_KEYS",
    "validate",
    "audience_schema",
]

_UTC = pd.DatetimeTZDtype(tz="UTC")


def _str(**kw) -> pa.Column:
    return pa.Column(str, coerce=True, **kw)


_REQUIRED_COLUMNS = {
    "person_id": _str(unique=True, nullable=False),
    "age": pa.Column(int, pa.Check.in_range(18, 67), coerce=True, nullable=False),
    "gender": _str(checks=pa.Check.isin(GENDERS)),
    "municipality": _str(checks=pa.Check.str_length(min_value=1)),
    "neighbourhood": _str(checks=pa.Check.str_matches(r"^\d{4}$")),
}
_OPTIONAL_COLUMNS = {
    "employment": _str(checks=pa.Check.isin(EMPLOYMENT), required=False),
    "sector": _str(checks=pa.Check.isin(SECTORS), required=False),
    "education": _str(checks=pa.Check.isin(EDUCATION), required=False),
    "income_band": _str(checks=pa.Check.isin(INCOME_BANDS), required=False),
    "migration_background": pa.Column(bool, coerce=True, nullable=False, required=False),
    "has_children": pa.Column(bool, coerce=True, nullable=False, required=False),
}


def _declared_column(spec: AttributeSpec) -> pa.Column:
    """The contract of an attribute a programme declared (checked when present, required if declared so)."""
    if spec.kind == "categorical":
        return _str(checks=pa.Check.isin(spec.levels), required=spec.required)
    if spec.kind == "boolean":
        return pa.Column(bool, coerce=True, nullable=False, required=spec.required)
    checks = []
    if spec.min is not None:
        checks.append(pa.Check.ge(spec.min))
    if spec.max is not None:
        checks.append(pa.Check.le(spec.max))
    return pa.Column(float, checks=checks, coerce=True, nullable=False, required=spec.required)


def audience_schema(attributes: Mapping[str, AttributeSpec] | None = None) -> pa.DataFrameSchema:
    """The audience contract: id, age, gender, municipality and neighbourhood are required; the other
    standard attributes and the programme's own ``attributes`` are checked when present.

    Parameters
    ----------
    attributes : attributes of the programme's own (``FeatureSetSpec.attributes``), by name.
    """
    columns = {**_REQUIRED_COLUMNS, **_OPTIONAL_COLUMNS}
    columns.update({name: _declared_column(spec) for name, spec in (attributes or {}).items()})
    return pa.DataFrameSchema(columns, strict=False, name="audience")


AUDIENCE = audience_schema()
"""One row per pseudonymous person; no names or contact data. Optional columns are checked when present."""

EXPOSURES = pa.DataFrameSchema(
    {
        "person_id": _str(nullable=False),
        "wave": pa.Column(int, pa.Check.ge(1), coerce=True),
        "arm": _str(checks=pa.Check.str_length(min_value=1)),
        "message": _str(),
        "channel": _str(),
        "assigned_at": pa.Column(_UTC, coerce=True, nullable=False),
        "assignment_probability": pa.Column(float, pa.Check.in_range(0, 1, include_min=False), coerce=True),
        "cost_eur": pa.Column(float, pa.Check.ge(0), coerce=True),
    },
    unique=["person_id", "wave"],
    strict=False,
    name="exposures",
)
"""One row per person and wave the person was randomised in (holdout rows included)."""

ENROLMENTS = pa.DataFrameSchema(
    {
        "person_id": _str(nullable=False),
        "event": _str(checks=pa.Check.isin(FUNNEL_EVENTS)),
        "occurred_at": pa.Column(_UTC, coerce=True, nullable=False),
    },
    strict=False,
    name="enrolments",
)
"""One row per funnel event a person reached."""

TRAINING_KEYS = ("person_id", "wave")


def _summarise(err: pa.errors.SchemaErrors, schema: pa.DataFrameSchema, source: str) -> str:
    cases = err.failure_cases.copy()
    missing = cases["check"].astype(str) == "column_in_dataframe"
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"]
    # a value of the wrong type also fails the value checks with a TypeError: report it once
    cases = cases[~cases["failure_case"].astype(str).str.startswith("TypeError(")]
    cases["expected"] = [
        _expected(schema, "<frame>" if pd.isna(c) else str(c), str(k))
                         for c, k in zip(cases["column"], cases["check"], strict=True)
    ]
    lines = []
    for (column, expected), group in cases.groupby(["column", "expected"], dropna=False, sort=False):
        column = "<frame>" if pd.isna(column) else column
        if expected == "the column to be present":
            lines.append(f"  column {column!r}: missing; expected the column to be present")
            continue
        n_rows = group["index"].nunique() if group["index"].notna().any() else len(group)
        examples = ", ".join(repr(v) for v in group["failure_case"].drop_duplicates().head(3))
        lines.append(f"  column {column!r}: expected {expected}; {n_rows} row(s) break it (e.g. {examples})")
    head = f"{source}: does not match the {schema.name} contract"
    return head + "\n" + "\n".join(lines)


def _expected(schema: pa.DataFrameSchema, column: str, check: str) -> str:
    if check == "column_in_dataframe":
        return "the column to be present"
    if check.startswith("coerce_dtype") or check.startswith("dtype"):
        col = schema.columns.get(column)
        return f"values of type {col.dtype if col is not None else check}"
    if check == "not_nullable":
        return "no missing values"
    if check in ("field_uniqueness", "multiple_fields_uniqueness"):
        return "unique values" if column != "<frame>" else f"unique {schema.unique}"
    return check


def validate(frame: pd.DataFrame, schema: pa.DataFrameSchema, *, source: str) -> pd.DataFrame:
    """Validate and coerce ``frame``; raise one :class:`SchemaError` naming every problem.

    The message of a refused frame also lists the optional columns it lacks.

    Parameters
    ----------
    frame : DataFrame to check (not modified).
    schema : the contract, e.g. :data:`AUDIENCE`.
    source : what to call the frame in the message, usually its file path.
    """
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        # a refused file also names the optional columns it lacks: a misspelt one would otherwise go unnoticed
        absent = [name for name, column in schema.columns.items() if not column.required and name not in frame.columns]
        lines = [f"  column {name!r}: missing; optional (what reads it is left out)" for name in absent]
        raise SchemaError("\n".join([_summarise(err, schema, source), *lines])) from None
