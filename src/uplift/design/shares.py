"""Design shares: the probability of each arm under an experiment spec (control first)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from uplift.errors import DataError, SpecError
from uplift.specs.experiment import ExperimentSpec

__all__ = ["design_shares"]


def design_shares(spec: ExperimentSpec, weights: Mapping[str, float] | None = None) -> pd.Series:
    """Probability of each arm under the design: the control first, then the arms as declared.

    The control gets ``spec.holdout_share``; the rest is split over the treatment arms in
    proportion to their weights.

    Parameters
    ----------
    spec : ExperimentSpec
        The experiment.
    weights : mapping of arm to float, optional
        The plan's contacts (or any positive weights) per treatment arm. Required when
        ``spec.arm_weights`` is ``"from_plan"`` and refused otherwise, so that the spec stays the
        one place a declared split is changed.

    Returns
    -------
    pandas.Series
        Float shares indexed by arm name (``spec.all_arms`` order), summing to 1.

    Raises
    ------
    SpecError
        ``weights`` missing although the spec says ``from_plan``, or given although the spec
        declares its own ``arm_weights``.
    DataError
        ``weights`` do not name exactly the spec's arms, or are not positive and finite.
    """
    if spec.weights_from_plan:
        if weights is None:
            raise SpecError(
                f"experiment {spec.name!r}: arm_weights is 'from_plan'; pass weights= (the plan's contacts per arm)"
            )
        raw = _checked_weights(dict(weights), spec)
    else:
        if weights is not None:
            raise SpecError(
                f"experiment {spec.name!r}: arm_weights are declared in the spec; weights= is only accepted "
                "when arm_weights is 'from_plan'"
            )
        raw = dict(spec.arm_weights)
    w = np.array([float(raw[a]) for a in spec.arms])
    treated = (1.0 - spec.holdout_share) * w / w.sum()
    return pd.Series(np.concatenate([[spec.holdout_share], treated]), index=pd.Index(spec.all_arms, name="arm"),
                     name="share")


def _checked_weights(weights: dict[str, float], spec: ExperimentSpec) -> dict[str, float]:
    missing = sorted(set(spec.arms) - set(weights))
    extra = sorted(set(weights) - set(spec.arms))
    if missing or extra:
        hint = f" (the control's share is holdout_share={spec.holdout_share})" if spec.control in extra else ""
        raise DataError(
            f"weights for experiment {spec.name!r} must name exactly its arms; missing {missing}, "
            f"not among arms {extra}{hint}"
        )
    bad = {a: w for a, w in weights.items() if not (np.isfinite(float(w)) and float(w) > 0)}
    if bad:
        raise DataError(f"weights for experiment {spec.name!r} must be positive and finite; got {bad}")
    return weights
