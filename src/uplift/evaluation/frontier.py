"""How good can a plan be at a given estimation noise? The noise frontier of the share of the oracle.

A plan is only as good as its effect estimates. To tell a planner's shortfall from the data's, the
frontier plans from *reference estimates* of known quality: every cell's true effect plus
independent Gaussian noise of sd ``sigma``, shrunk towards the mean of the true effects by the exact
posterior weight ``tau^2 / (tau^2 + sigma^2)`` (``tau`` = the true effects' spread across cells),
which is the best a cell-by-cell estimator with that noise can do when it knows the prior. Each is
planned with the same solver, budget, costs and policy and scored under the truth like the product's
plan (:func:`uplift.evaluation.compare_with_oracle`).

Noise is given as a ratio ``r = sigma / tau``; such estimates correlate with the truth at
``1 / sqrt(1 + r^2)`` in expectation. An estimate table's *equivalent ratio* is the ratio whose
reference estimates correlate as well with the truth: ``sqrt(1 / corr^2 - 1)``. If estimation noise
shrank like ``1 / sqrt(n)`` with the history's size ``n``, the history needed for a target share
would be ``(r_equivalent / r_target)^2`` times the present one (a learner whose regularisation is
fixed, and smaller segments passing the anonymity floor, make it shrink more slowly: measure it).

The reference estimator is not a bound on every estimator: errors that are correlated across cells,
or larger in some cells than others, plan differently. It is a yardstick: a product whose plans
reach the frontier at its own equivalent noise loses nothing to the planning itself; only less
noisy estimates would do better.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from uplift.allocation import prepare_plan
from uplift.allocation.effects import SHARED_ERROR_COLUMNS, shared_error_columns
from uplift.allocation.explore import interval_z
from uplift.errors import SchemaError
from uplift.evaluation.plans import score_plan
from uplift.specs.planning import CostCatalogue, PlanningPolicy

__all__ = ["FRONTIER_COLUMNS", "equivalent_noise_ratio", "noise_frontier", "reference_estimates", "target_ratio"]

FRONTIER_COLUMNS: tuple[str, ...] = ("noise_ratio", "noise_sd", "repeat", "budget", "corr", "share_of_oracle")
"""Columns of :func:`noise_frontier`: one row per (noise ratio, repeat, budget); ``corr`` is the
reference estimates' correlation with the truth in that repeat."""


def reference_estimates(
    true_effects: pd.DataFrame, noise_sd: float, rng: np.random.Generator, *, interval: float = 0.8
) -> pd.DataFrame:
    """``true_effects`` with ``effect`` replaced by the shrunk noisy reference estimate (module docstring).

    ``effect_sd`` is the posterior sd ``sqrt(w) * noise_sd`` (``w`` the shrinkage weight), ``lo`` /
    ``hi`` its central ``interval``, and the shared-error loadings are 0 (the noise is independent).
    """
    if not np.isfinite(noise_sd) or noise_sd < 0:
        raise SchemaError(f"noise_sd: expected a finite number >= 0, got {noise_sd}")
    truth = true_effects["effect"].to_numpy(dtype=float)
    mean, spread = float(truth.mean()), float(truth.var())
    if noise_sd == 0:
        weight, effect = 1.0, truth.copy()
    else:
        weight = spread / (spread + noise_sd**2)
        effect = mean + weight * (truth + rng.normal(0.0, noise_sd, len(truth)) - mean)
    sd = np.full(len(truth), np.sqrt(weight) * noise_sd)
    z = interval_z(interval)
    out = true_effects.assign(effect=effect, effect_sd=sd, lo=effect - z * sd, hi=effect + z * sd)
    return out.assign(**{c: 0.0 for c in (*SHARED_ERROR_COLUMNS, *shared_error_columns(out))})


def equivalent_noise_ratio(estimated: np.ndarray, truth: np.ndarray) -> float:
    """The noise ratio whose reference estimates correlate with the truth as ``estimated`` does
    (``sqrt(1 / corr^2 - 1)``; infinite when the correlation is not positive)."""
    estimated, truth = np.asarray(estimated, dtype=float), np.asarray(truth, dtype=float)
    if estimated.std() == 0 or truth.std() == 0:
        return float("inf")
    corr = float(np.corrcoef(estimated, truth)[0, 1])
    return float(np.sqrt(1.0 / corr**2 - 1.0)) if corr > 0 else float("inf")


def noise_frontier(
    true_effects: pd.DataFrame,
    *,
    budgets: Sequence[float],
    costs: CostCatalogue,
    policy: PlanningPolicy,
    ratios: Sequence[float],
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Share of the oracle reached by plans from reference estimates at every noise ratio and budget.

    Parameters
    ----------
    true_effects : the cells' true effects (:func:`uplift.evaluation.true_effects_table`).
    budgets : EUR amounts; the oracle is planned once per budget.
    costs, policy : as for :func:`uplift.allocation.plan` (a policy with exploration explores on the
        reference estimates too).
    ratios : noise sd as multiples of the true effects' spread across cells (each >= 0).
    repeats : noise draws per ratio (seeded by ``seed``).

    Returns
    -------
    pd.DataFrame
        Columns :data:`FRONTIER_COLUMNS`.
    """
    if len(budgets) == 0 or len(ratios) == 0 or repeats < 1:
        raise SchemaError("noise_frontier: expected at least one budget, one ratio and one repeat")
    if any(not np.isfinite(r) or r < 0 for r in ratios):
        raise SchemaError(f"ratios: expected finite numbers >= 0, got {list(ratios)}")
    truth = true_effects["effect"].to_numpy(dtype=float)
    tau = float(truth.std())
    best = {}
    oracle = prepare_plan(true_effects, costs=costs, policy=policy, source="true effects")
    for budget in budgets:
        cells = oracle.plan(budget=budget, references=False).cells
        best[budget] = score_plan(cells, true_effects, costs=costs, policy=policy)[0]["true_conversions"]
    rng = np.random.default_rng(seed)
    rows = []
    for ratio in ratios:
        for repeat in range(repeats):
            estimates = reference_estimates(true_effects, ratio * tau, rng, interval=policy.interval)
            est = estimates["effect"].to_numpy()
            corr = float(np.corrcoef(est, truth)[0, 1]) if est.std() > 0 and tau > 0 else float("nan")
            prepared = prepare_plan(estimates, costs=costs, policy=policy, source="reference")
            for budget in budgets:
                made = prepared.plan(budget=budget, references=False)
                true = score_plan(made.cells, true_effects, costs=costs, policy=policy)[0]["true_conversions"]
                rows.append({"noise_ratio": float(ratio), "noise_sd": ratio * tau, "repeat": repeat,
                             "budget": float(budget), "corr": corr,
                             "share_of_oracle": true / best[budget] if best[budget] > 0 else float("nan")})
    return pd.DataFrame(rows, columns=list(FRONTIER_COLUMNS))


def target_ratio(frontier: pd.DataFrame, target: float) -> float:
    """The largest noise ratio at which the frontier's mean share reaches ``target``, interpolated
    linearly between the measured ratios; NaN if no measured ratio reaches it, the largest measured
    ratio if all do."""
    mean = frontier.groupby("noise_ratio")["share_of_oracle"].mean().sort_index()
    ratios, shares = mean.index.to_numpy(float), mean.to_numpy(float)
    ok = shares >= target
    if not ok.any():
        return float("nan")
    if ok.all():
        return float(ratios[-1])
    last = int(np.flatnonzero(ok).max())  # the noisiest ratio that still reaches the target
    if last + 1 >= len(ratios):
        return float(ratios[last])
    r0, r1, s0, s1 = ratios[last], ratios[last + 1], shares[last], shares[last + 1]
    return float(r0 + (s0 - target) * (r1 - r0) / (s0 - s1)) if s0 != s1 else float(r0)
