"""Scoring estimates and decisions against the simulator's truth (evaluation only, never training).

The truth gives, per randomised (person, wave), the true probability of registering under every
arm (``p__<arm>``) and the continuation probability to each later funnel event (``q__<event>``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.errors import DataError

__all__ = ["true_outcome_probabilities", "effect_recovery", "policy_truth"]


def true_outcome_probabilities(
    keys: pd.DataFrame, truth: pd.DataFrame, arms: tuple[str, ...], event: str = "registration"
) -> pd.DataFrame:
    """True P(outcome | arm) for each key row (person_id, wave), one column per arm (control included)."""
    cols = [f"p__{a}" for a in arms]
    missing = [c for c in cols if c not in truth.columns]
    if missing:
        raise DataError(f"truth: missing column(s) {missing[:3]}{'...' if len(missing) > 3 else ''}")
    qcol = None if event == "registration" else f"q__{event}"
    if qcol is not None and qcol not in truth.columns:
        raise DataError(f"truth: no continuation column {qcol!r} for outcome {event!r}")
    use = ["person_id", "wave", *cols] + ([qcol] if qcol else [])
    t = truth[use].copy()
    t["person_id"] = t["person_id"].astype(str)
    merged = keys[["person_id", "wave"]].astype({"person_id": str}).merge(
        t, on=["person_id", "wave"], how="left", validate="one_to_one")
    if merged[cols[0]].isna().any():
        raise DataError(f"truth: {int(merged[cols[0]].isna().sum())} evaluated row(s) have no truth row")
    p = merged[cols].to_numpy(float)
    if qcol:
        p = p * merged[[qcol]].to_numpy(float)
    return pd.DataFrame(p, columns=list(arms), index=keys.index)


def effect_recovery(estimates: pd.DataFrame, true_p: pd.DataFrame, control: str) -> pd.DataFrame:
    """Per arm: correlation of estimated with true uplift, and mean absolute error (probability points)."""
    rows = {}
    base = true_p[control].to_numpy()
    for arm in estimates.columns:
        true = true_p[arm].to_numpy() - base
        est = estimates[arm].to_numpy(float)
        corr = float(np.corrcoef(est, true)[0, 1]) if np.std(est) > 0 and np.std(true) > 0 else float("nan")
        rows[arm] = {
            "true_corr": corr,
            "true_mae": float(np.mean(np.abs(est - true))),
            "true_mean_effect": float(true.mean()),
            "est_mean_effect": float(est.mean()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("arm")


def policy_truth(policies: dict[str, np.ndarray], true_p: pd.DataFrame) -> pd.DataFrame:
    """True value (mean true outcome probability) of each policy and its regret against the oracle."""
    values = true_p.to_numpy(float)
    oracle = values.max(axis=1).mean()
    rows = {}
    for name, rec in policies.items():
        col = true_p.columns.get_indexer(np.asarray(rec, dtype=object))
        if (col < 0).any():
            raise DataError(f"policy {name!r} recommends arms without truth: "
                            f"{sorted(set(np.asarray(rec)[col < 0]))[:3]}")
        v = values[np.arange(len(values)), col].mean()
        rows[name] = {"true_value": float(v), "oracle_value": float(oracle), "regret": float(oracle - v)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("policy")
