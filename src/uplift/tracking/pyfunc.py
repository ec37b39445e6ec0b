"""The model as logged to MLflow: a pyfunc that scores raw audience rows, as ``uplift score`` does.

``mlflow.pyfunc.load_model(uri).predict(rows, params={"as_of": "2025-07-21"})`` takes audience rows
(the audience contract's columns) with, optionally, each person's history as two list columns
(``exposures`` and ``enrolments``, :mod:`uplift.scoring.history`), and returns one row per person:
``person_id``, the shrunk uplift of every arm (``uplift__<arm>``), ``best_arm``, ``best_uplift``,
``segment`` and ``persona``: the columns of a batch scoring file. The feature set, the segment
labels and the arms travel inside the model, so nothing of the project's folders is needed to
load it. A row that breaks the audience contract raises :class:`~uplift.errors.SchemaError`.

A model trained on a table whose columns are the features themselves (an experiment CSV) takes
those columns and returns ``uplift__<arm>``, ``best_arm`` and ``best_uplift``.

The service and the batch job call :meth:`UpliftPyfunc.effects` on feature columns directly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import mlflow.pyfunc

from uplift.errors import SchemaError
from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.targeting import recommend, shrink
from uplift.scoring.labels import SegmentLabeler
from uplift.specs.features import FeatureSetSpec

__all__ = ["UpliftPyfunc", "AS_OF_PARAM", "parse_as_of_param"]

AS_OF_PARAM = "as_of"
"""The predict parameter with the planned assignment time (ISO; empty = now, UTC)."""


def parse_as_of_param(value: object) -> pd.Timestamp:
    """The ``as_of`` parameter as a UTC timestamp (naive times are UTC; empty = now)."""
    if value is None or str(value).strip() == "":
        return pd.Timestamp.now(tz="UTC")
    try:
        ts = pd.Timestamp(str(value))
    except ValueError:
        raise SchemaError(f"params: {AS_OF_PARAM!r} = {value!r}: expected an ISO date or time, e.g. 2025-07-21") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc around a fitted :class:`MultiArmUplift`, its shrinkage factor, feature set and segment labels.

    Parameters
    ----------
    model : the fitted estimator.
    shrinkage : the targeting rule's factor towards the arm averages.
    feature_set : how features are made from audience rows and history (restricted to the model's
        arms); None for a model whose input columns are its features.
    labeler : the segments and personas of the model's segment table; None without one.
    """

    def __init__(self, model: MultiArmUplift, shrinkage: float, *, feature_set: FeatureSetSpec | None = None,
                 labeler: SegmentLabeler | None = None) -> None:
        self.model = model
        self.shrinkage = float(shrinkage)
        self.feature_set = feature_set
        self.labeler = labeler

    @property
    def arms(self) -> tuple[str, ...]:
        return self.model.treatment_arms

    @property
    def control(self) -> str:
        return self.model.control

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.model.features]

    @property
    def scorer(self):
        """The batch scorer bundled with the model (:class:`~uplift.scoring.Scorer`); None without feature set or labels."""
        from uplift.scoring.score import Scorer

        feature_set, labeler = self.__dict__.get("feature_set"), self.__dict__.get("labeler")
        if feature_set is None or labeler is None:
            return None
        return Scorer(model=self, feature_set=feature_set, labeler=labeler)

    def effects(self, features: pd.DataFrame, *, shrunk: bool = False, checked: bool = False) -> pd.DataFrame:
        """Uplift per row and arm from feature columns; ``checked`` as in :meth:`MultiArmUplift.predict`."""
        out = self.model.predict(features, source="model input", checked=checked)
        return shrink(out, self.model.mean_effects_, self.shrinkage) if shrunk else out

    def recommend(self, features: pd.DataFrame) -> np.ndarray:
        """Best arm per row under the validated targeting policy (the control if no arm helps)."""
        return recommend(self.effects(features, shrunk=True), self.control)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from uplift.scoring.score import score_chunk, score_features

        rows = pd.DataFrame(model_input)
        scorer = self.scorer
        if scorer is None:
            return score_features(rows, model=self)
        from uplift.scoring.history import history_frames
        from uplift.scoring.rows import SeenIds, reject_message, validate_rows

        as_of = parse_as_of_param((params or {}).get(AS_OF_PARAM))
        check = validate_rows(rows, source="model input", first_row=1, seen=SeenIds())
        if len(check.rejects):
            raise SchemaError(f"model input: {len(check.rejects)} row(s) break the audience contract\n"
                              + reject_message(check.rejects))
        exposures, enrolments = history_frames(check.valid, control=self.control)
        return score_chunk(check.valid, scorer=scorer, exposures=exposures, enrolments=enrolments, as_of=as_of)
