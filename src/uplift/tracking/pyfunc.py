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

A model trained with :class:`~uplift.economics.Economics` (a value per conversion and contact costs)
carries them and its net-value rule: its output adds ``net__<arm>`` (value x shrunk uplift minus the
arm's incremental cost) and ``best_net``, and ``best_arm`` is the net-value rule's arm (the control:
no one, when no arm pays). Costs read from a column per person are then input columns too.

The service and the batch job call :meth:`UpliftPyfunc.effects` on feature columns directly.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from uplift.economics import Economics
from uplift.errors import SchemaError
from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.netvalue import net_effects, recommend_net
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
        raise SchemaError(f"params: {AS_OF_PARAM!r} = {value!r}: expected an ISO "
                          "date or time, e.g. 2025-07-21") from None
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
    economics : the value of a conversion and the contact costs the rule was chosen with; None: conversions alone.
    price : the net-value rule's price of a euro (above 1 when a budget binds).
    """

    def __init__(self, model: MultiArmUplift, shrinkage: float, *, feature_set: FeatureSetSpec | None = None,
                 labeler: SegmentLabeler | None = None, economics: Economics | None = None,
                 price: float = 1.0) -> None:
        self.model = model
        self.shrinkage = float(shrinkage)
        self.feature_set = feature_set
        self.labeler = labeler
        self.economics = economics
        self.price = float(price)

    @property
    def rule_economics(self) -> Economics | None:
        """The economics of the rule (None for a model logged without them)."""
        return self.__dict__.get("economics")

    @property
    def cost_columns(self) -> list[str]:
        """Input columns with per-person costs that are not features."""
        econ = self.rule_economics
        return [c for c in (econ.columns if econ else ()) if c not in self.feature_names]

    def incremental_costs(self, frame: pd.DataFrame, *, source: str = "model input") -> pd.DataFrame:
        """Each row's cost of every treatment arm over the control's (:meth:`Economics.incremental_costs`)."""
        econ = self.rule_economics
        if econ is None:
            raise SchemaError(f"{source}: this model was trained without costs")
        return econ.incremental_costs(frame, self.arms, self.control, source=source).set_axis(frame.index)

    def decide(self, frame: pd.DataFrame, *, shrunk_effects: pd.DataFrame | None = None,
               source: str = "model input") -> tuple[np.ndarray, pd.DataFrame | None]:
        """The rule's arm per row and, with economics, each arm's net value (value x shrunk uplift - incremental
        cost); ``frame`` holds the features (and cost columns)."""
        effects = shrunk_effects if shrunk_effects is not None else self.effects(frame[self.feature_names], shrunk=True)
        econ = self.rule_economics
        if econ is None:
            return recommend(effects, self.control), None
        costs = self.incremental_costs(frame, source=source)
        price = float(self.__dict__.get("price", 1.0))
        best = recommend_net(effects, costs, value=econ.value, control=self.control, price=price)
        return best, econ.value * net_effects(effects, costs, econ.value)

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
        """The batch scorer bundled with the model (:class:`~uplift.scoring.Scorer`); None without feature set or
        labels."""
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
        """Best arm per row under the validated targeting rule (the control if no arm helps, or, with economics,
        none pays); ``features`` holds the cost columns too for costs read per person."""
        return self.decide(features)[0]

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
