"""From per-person effect estimates to a decision, with a fall-back to the arm averages.

On real experiments heterogeneity is often weak: the per-person argmax of a noisy learner can be
worse than giving everyone the single best arm. The estimates are therefore shrunk towards the
arm averages, ``shrunk = mean + lambda * (estimate - mean)``, with ``lambda`` chosen on out-of-fold
data by the IPW value of the resulting policy (0 = everyone gets the best arm on average, 1 = trust
the model). With the one-standard-error rule the smallest ``lambda`` whose value is within one
standard error of the best is taken, so the product deviates from the best single arm only when
the data show it pays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.modeling.policyvalue import ipw_difference, ipw_value

__all__ = ["shrink", "recommend", "recommend_shrunk", "ShrinkageChoice", "choose_shrinkage", "best_single_arm"]


def shrink(effects: pd.DataFrame, mean_effects: pd.Series, lam: float) -> pd.DataFrame:
    """``mean + lam * (effect - mean)`` per arm column; ``lam`` in [0, 1]."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    means = mean_effects.reindex(effects.columns).to_numpy(float)
    return pd.DataFrame(means + lam * (effects.to_numpy(float) - means), columns=effects.columns, index=effects.index)


def recommend_shrunk(effects: pd.DataFrame, mean_effects: pd.Series, lam: float, control: str, *,
                     chunk_rows: int = 250_000) -> np.ndarray:
    """``recommend(shrink(effects, mean_effects, lam), control)``, ``chunk_rows`` rows at a time (no shrunk copy of
    every row's effects)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    out = np.empty(len(effects), dtype=object)
    for start in range(0, len(effects), chunk_rows):
        part = effects.iloc[start : start + chunk_rows]
        out[start : start + len(part)] = recommend(shrink(part, mean_effects, lam), control)
    return out


def recommend(effects: pd.DataFrame, control: str) -> np.ndarray:
    """Arm with the largest estimated effect per row; the control where no arm is estimated to help."""
    values = effects.to_numpy(float)
    best = np.nanargmax(values, axis=1)
    names = np.asarray(effects.columns, dtype=object)[best]
    return np.where(values[np.arange(len(values)), best] > 0, names, control)


def best_single_arm(mean_effects: pd.Series, control: str) -> str:
    """The arm with the largest average effect, or the control if none helps on average."""
    arm = mean_effects.idxmax()
    return str(arm) if mean_effects[arm] > 0 else control


@dataclass(frozen=True)
class ShrinkageChoice:
    """The chosen factor and the out-of-fold value of every candidate."""

    lam: float
    table: pd.DataFrame  # index lam: value, se, lo, hi


def choose_shrinkage(
    effects: pd.DataFrame,
    mean_effects: pd.Series,
    *,
    y: np.ndarray,
    arm: np.ndarray,
    propensity: pd.DataFrame,
    control: str,
    grid: tuple[float, ...],
    one_se_rule: bool = True,
) -> ShrinkageChoice:
    """Pick the shrinkage factor whose policy has the best IPW value on (out-of-fold) rows.

    With ``one_se_rule`` the smallest factor whose value is within one *paired* standard error of the
    best factor's value is taken (the paired difference is far less noisy than either value alone).
    """
    recs = {lam: recommend(shrink(effects, mean_effects, lam), control) for lam in sorted(grid)}
    rows = []
    for lam, rec in recs.items():
        v = ipw_value(y, arm, propensity, rec)
        rows.append({"lam": lam, "value": v.value, "se": v.se, "lo": v.lo, "hi": v.hi})
    table = pd.DataFrame(rows).set_index("lam")
    best = float(table["value"].idxmax())
    gaps = {lam: ipw_difference(y, arm, propensity, recs[lam], recs[best]) for lam in recs}
    table["diff_to_best"] = [gaps[lam].value for lam in table.index]
    table["diff_se"] = [gaps[lam].se for lam in table.index]
    if one_se_rule:
        close = table.index[table["diff_to_best"] >= -table["diff_se"]]
        lam = float(close.min())
    else:
        lam = best
    return ShrinkageChoice(lam=lam, table=table)
