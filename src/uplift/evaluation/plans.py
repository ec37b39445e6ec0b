"""Plan versus oracle: how many true incremental conversions a plan buys, as a share of the best possible.

The simulator knows every person's true conversion probability under every arm, so the true
effect of each (segment, arm) cell is known (:func:`uplift.segments.truth_segment_effects`). The
**oracle plan** is the same solver (:func:`uplift.allocation.plan`) run on those true effects with
zero uncertainty, the same budget, costs and policy. Any plan's contacts are re-scored under the
true effects (:func:`uplift.allocation.evaluate_plan`): its true incremental conversions divided
by the oracle's is its **share of the oracle**. Fairness floors are re-checked under the truth:
spend-share and contact-share floors do not depend on effects, conversion-share floors do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.allocation import PlanGain, PlanResult, PreparedPlan, prepare_plan
from uplift.allocation.effects import shared_error_columns
from uplift.allocation.result import evaluate_plan
from uplift.errors import DataError, SchemaError
from uplift.specs.planning import CostCatalogue, PlanningPolicy

__all__ = [
    "PLAN_SCORE_COLUMNS",
    "FLOOR_COLUMNS",
    "PlanComparison",
    "true_effects_table",
    "score_plan",
    "compare_with_oracle",
]

PLAN_SCORE_COLUMNS: tuple[str, ...] = (
    "budget", "plan", "status", "spend", "contacts", "planned_conversions", "planned_lo", "planned_hi",
    "estimated_conversions", "true_conversions", "share_of_oracle", "planned_gain", "gain_lo", "gain_hi",
                                       "probability_better",
)
"""Columns of :attr:`PlanComparison.plans`: one row per (budget, plan). ``planned_conversions`` is what
the plan expected under the effects it was made from, ``planned_lo`` / ``planned_hi`` the interval it
showed (the policy's level; NaN for the reference plans, which show none); ``estimated_conversions`` the
sum of its cells' estimates (the same as ``planned_conversions`` unless the effects carry a held-out
calibration of their promise, :mod:`uplift.segments.promise`); ``true_conversions`` what it buys in truth. On a
reference plan's row, ``planned_gain`` / ``gain_lo`` / ``gain_hi`` /
``probability_better`` are what the recommended plan said it adds over that reference
(:attr:`uplift.allocation.PlanResult.gains`; NaN on the other rows): the truth's gain is the two rows'
``true_conversions`` apart."""

FLOOR_COLUMNS: tuple[str, ...] = ("budget", "plan", "floor", "kind", "min_share", "true_share", "shortfall", "holds")
"""Columns of :attr:`PlanComparison.floors`: each fairness floor's share achieved under the truth;
``shortfall`` = ``max(0, min_share - true_share)``, ``holds`` = shortfall of at most 1e-6. A coverage
floor (kind ``coverage``) has ``min_share`` 1 and ``true_share`` its worst area's contacts over its
minimum; it holds when that is at least 1 less what rounding contacts down to whole people may take
(less than one contact per funded cell of the area)."""

_FLOOR_TOLERANCE = 1e-6
"""Absolute slack on a share when checking that a floor holds (the cells round contacts down)."""


@dataclass(frozen=True)
class PlanComparison:
    """Plans scored under the truth at several budgets.

    Attributes
    ----------
    plans : one row per (budget, plan), columns :data:`PLAN_SCORE_COLUMNS`; plans are
        ``"recommended"``, ``"even"``, ``"single_best_message"`` and ``"oracle"``.
    floors : one row per (budget, plan, floor), columns :data:`FLOOR_COLUMNS`.
    """

    plans: pd.DataFrame
    floors: pd.DataFrame


def true_effects_table(estimated: pd.DataFrame, truth: pd.DataFrame, *, source: str = "truth") -> pd.DataFrame:
    """The segment-effects table with the true effects in place of the estimates.

    Parameters
    ----------
    estimated : segment-effects table (planner contract, e.g. the targetable rows of
        :func:`uplift.segments.build_segment_table`); its attribute columns (``size``, ``age_band``,
        ...) are kept. Not modified.
    truth : ``segment``, ``arm``, ``true_effect`` (incremental conversions per contact), e.g.
        :func:`uplift.segments.truth_segment_effects`.
    source : name of ``truth`` in error messages.

    Returns
    -------
    pandas.DataFrame
        Same rows and columns as ``estimated``; ``effect``, ``lo``, ``hi`` = the true effect,
        ``effect_sd`` = 0.

    Raises
    ------
    SchemaError
        A required column is missing, or ``true_effect`` is not finite.
    DataError
        A (segment, arm) of ``estimated`` has no true effect, or ``truth`` repeats one.
    """
    for name, frame, columns in (("estimated", estimated, ("segment", "arm", "effect")),
                                 (source, truth, ("segment", "arm", "true_effect"))):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise SchemaError(f"{name}: missing column(s) {missing}")
    keys = ["segment", "arm"]
    right = truth[keys + ["true_effect"]].astype({"segment": str, "arm": str})
    if right.duplicated(keys).any():
        first = right.loc[right.duplicated(keys), keys].iloc[0].tolist()
        raise DataError(f"{source}: (segment, arm) {first} appears more than once; expected one true effect per cell")
    merged = estimated[keys].astype({"segment": str, "arm": str}).merge(right, on=keys, how="left")
    effect = merged["true_effect"].to_numpy(dtype=float)
    if np.isnan(effect).any():
        bad = merged.loc[np.isnan(effect), keys].head(3).to_numpy().tolist()
        raise DataError(f"{source}: no true effect for {int(np.isnan(effect).sum())} cell(s), e.g. {bad}")
    if not np.isfinite(effect).all():
        raise SchemaError(f"{source}: column 'true_effect' must be finite")
    out = estimated.copy()
    out.attrs = {}  # the estimates' stage choice and calibrated promise are not the truth's
    out["effect"] = effect
    out["effect_sd"] = 0.0
    for column in shared_error_columns(out):  # the truth has no estimation error
        out[column] = 0.0
    for column in ("lo", "hi"):
        if column in out.columns:
            out[column] = effect
    return out


def score_plan(
    cells: pd.DataFrame, true_effects: pd.DataFrame, *, costs: CostCatalogue, policy: PlanningPolicy
) -> tuple[dict[str, float], pd.DataFrame]:
    """A plan's spend, contacts and true incremental conversions, and its floors under the truth.

    Parameters
    ----------
    cells : a plan's cells (``segment``, ``arm``, ``contacts``, ``spend``).
    true_effects : :func:`true_effects_table` output.
    costs, policy : the catalogue and the policy (its fairness floors are checked).

    Returns
    -------
    totals : ``spend``, ``contacts``, ``true_conversions``.
    floors : one row per floor: ``floor``, ``kind``, ``min_share``, ``true_share``, ``shortfall``, ``holds``.
    """
    scored = evaluate_plan(cells, true_effects, costs=costs, policy=policy, source="true effects")
    rows = []
    # a coverage floor's "share" is its worst area's contacts over the floor's minimum: it holds at 1;
    # a fairness floor that does not apply to this kind of segment is not scored
    floors = [(f.name, f.kind, float(f.min_share)) for f in policy.fairness_floors]
    floors += [(c.name, "coverage", 1.0) for c in policy.coverage_floors]
    for name, kind, min_share in floors:
        if name not in scored["floors"]:
            continue
        share = scored["floors"][name]
        rows.append({
            "floor": name,
            "kind": kind,
            "min_share": min_share,
            "true_share": share,
            "shortfall": max(0.0, min_share - share) if np.isfinite(share) else float("nan"),
            "holds": bool(np.isfinite(share) and share >= min_share - _FLOOR_TOLERANCE
                          - scored["rounding"].get(name, 0.0)),
        })
    totals = {
        "spend": float(scored["spend"]),
        "contacts": int(scored["contacts"]),
        "true_conversions": float(scored["expected_conversions"]),
    }
    return totals, pd.DataFrame(rows, columns=list(FLOOR_COLUMNS[2:]))


def compare_with_oracle(
    estimated: pd.DataFrame,
    true_effects: pd.DataFrame,
    *,
    budgets: Sequence[float],
    costs: CostCatalogue,
    policy: PlanningPolicy,
    places: pd.DataFrame | None = None,
) -> PlanComparison:
    """Plan on the estimates and on the truth at every budget; score all plans under the truth.

    For each budget: the recommended plan (``plan`` on ``estimated``), its two reference plans
    (even split and single best message, made from the estimates as the product shows them) and
    the oracle plan (``plan`` on ``true_effects``: same solver, budget, costs and policy) are
    re-scored under ``true_effects``.

    Parameters
    ----------
    estimated : segment-effects table the product plans from. Not modified.
    true_effects : the same cells with the true effects (:func:`true_effects_table`).
    budgets : EUR amounts (each finite, >= 0).
    costs, policy, places : as for :func:`uplift.allocation.plan` (with ``places`` the oracle buys the same
        flyer lines per print unit as the recommended plan; the cells are scored on their own truth).

    Returns
    -------
    PlanComparison
        ``share_of_oracle`` = true conversions / the oracle's true conversions at that budget
        (NaN if the oracle buys none).

    Raises
    ------
    SchemaError
        ``budgets`` is empty.
    DataError
        ``true_effects`` does not cover the cells of ``estimated``.
    """
    if len(budgets) == 0:
        raise SchemaError("budgets is empty; give at least one budget in EUR")
    cells_est = estimated[["segment", "arm"]].astype(str)
    cells_true = true_effects[["segment", "arm"]].astype(str)
    if (len(cells_est) != len(cells_true)
            or not cells_est.reset_index(drop=True).equals(cells_true.reset_index(drop=True))):
        raise DataError("true_effects: expected the same (segment, arm) rows as estimated, in the same order")
    # prepared once and planned at every budget, as the service does for a planner trying budgets
    product = prepare_plan(estimated, costs=costs, policy=policy, source="estimated", places=places)
    truth = prepare_plan(true_effects, costs=costs, policy=policy, source="true effects", places=places)
    plan_rows, floor_rows = [], []
    for budget in budgets:
        rows, floors = _compare_at(budget, product, truth, true_effects, costs=costs, policy=policy)
        plan_rows += rows
        floor_rows += floors
    floors = pd.concat(floor_rows, ignore_index=True) if floor_rows else pd.DataFrame(columns=list(FLOOR_COLUMNS))
    return PlanComparison(
        plans=pd.DataFrame(plan_rows, columns=list(PLAN_SCORE_COLUMNS)),
        floors=floors[list(FLOOR_COLUMNS)],
    )


@dataclass(frozen=True)
class _Shown:
    """What a plan showed: its expected conversions, their interval (NaN where it shows none) and the sum of its
    cells' estimates."""

    conversions: float
    lo: float
    hi: float
    estimated: float

    @classmethod
    def of_plan(cls, result: PlanResult) -> _Shown:
        totals = result.totals
        return cls(totals.expected_conversions, totals.lo, totals.hi, totals.estimated_conversions)

    @classmethod
    def of_reference(cls, cells: pd.DataFrame) -> _Shown:
        total = float((cells["expected_conversions"]).sum())
        return cls(total, float("nan"), float("nan"), total)


def _compare_at(
    budget: float,
    product: PreparedPlan,
    truth: PreparedPlan,
    true_effects: pd.DataFrame,
    *,
    costs: CostCatalogue,
    policy: PlanningPolicy,
) -> tuple[list[dict[str, object]], list[pd.DataFrame]]:
    """At one budget: the recommended, reference and oracle plans scored under the truth, as rows of
    :data:`PLAN_SCORE_COLUMNS` and floor frames of :data:`FLOOR_COLUMNS`."""
    recommended = product.plan(budget=budget, prices=False)
    oracle = truth.plan(budget=budget, references=False, prices=False)
    refs = product.reference_plans(budget)
    candidates = {  # cells, status, and what the plan showed
        "recommended": (recommended.cells, recommended.status, _Shown.of_plan(recommended)),
        **{name: (cells, "reference", _Shown.of_reference(cells)) for name, cells in refs.items()},
        "oracle": (oracle.cells, oracle.status, _Shown.of_plan(oracle)),
    }
    scored, floor_rows = {}, []
    for name, (cells, status, shown) in candidates.items():
        totals, floors = score_plan(cells, true_effects, costs=costs, policy=policy)
        scored[name] = (totals, status, shown)
        floor_rows.append(floors.assign(budget=float(budget), plan=name))
    best = scored["oracle"][0]["true_conversions"]
    rows = [_plan_row(budget, name, totals, status, shown, best=best, gain=recommended.gains.get(name))
            for name, (totals, status, shown) in scored.items()]
    return rows, floor_rows


def _plan_row(budget: float, name: str, totals: dict[str, float], status: str, shown: _Shown, *, best: float,
              gain: PlanGain | None) -> dict[str, object]:
    """One row of :data:`PLAN_SCORE_COLUMNS`: a plan at a budget, what it showed and what it buys in truth, and
    what the recommended plan said it adds over it (``gain``; None on the rows of no reference plan)."""
    nan = float("nan")
    return {
        "budget": float(budget),
        "plan": name,
        "status": status,
        "spend": totals["spend"],
        "contacts": totals["contacts"],
        "planned_conversions": float(shown.conversions),
        "planned_lo": float(shown.lo),
        "planned_hi": float(shown.hi),
        "estimated_conversions": float(shown.estimated),
        "true_conversions": totals["true_conversions"],
        "share_of_oracle": totals["true_conversions"] / best if best > 0 else nan,
        "planned_gain": gain.extra_conversions if gain else nan,
        "gain_lo": gain.lo if gain else nan,
        "gain_hi": gain.hi if gain else nan,
        "probability_better": gain.probability_better if gain else nan,
    }
