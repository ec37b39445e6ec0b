"""The model as logged to MLflow: a pyfunc that bundles preprocessing, the fitted learner and the arms.

``mlflow.pyfunc.load_model(uri).predict(features)`` returns one column per treatment arm: the
estimated uplift (probability points) against the control. With ``params={"shrink": True}`` it
returns the estimates shrunk towards the arm averages by the factor chosen in validation (the
numbers the targeting policy acts on).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import mlflow.pyfunc

from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.targeting import recommend, shrink

__all__ = ["UpliftPyfunc"]


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper around a fitted :class:`MultiArmUplift` and its chosen shrinkage factor."""

    def __init__(self, model: MultiArmUplift, shrinkage: float) -> None:
        self.model = model
        self.shrinkage = float(shrinkage)

    @property
    def arms(self) -> tuple[str, ...]:
        return self.model.treatment_arms

    @property
    def control(self) -> str:
        return self.model.control

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.model.features]

    def effects(self, features: pd.DataFrame, *, shrunk: bool = False, checked: bool = False) -> pd.DataFrame:
        """Uplift per row and arm; ``checked`` as in :meth:`MultiArmUplift.predict`."""
        out = self.model.predict(features, source="model input", checked=checked)
        return shrink(out, self.model.mean_effects_, self.shrinkage) if shrunk else out

    def recommend(self, features: pd.DataFrame) -> np.ndarray:
        """Best arm per row under the validated targeting policy (the control if no arm helps)."""
        return recommend(self.effects(features, shrunk=True), self.control)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        shrunk = bool((params or {}).get("shrink", False))
        return self.effects(pd.DataFrame(model_input), shrunk=shrunk)
