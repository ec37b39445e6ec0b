"""The budget-split planner: :func:`plan` turns a segment-effects table into a :class:`PlanResult`.

Pure: no files, no clock, no global random state (exploration is seeded by the policy).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.allocation.effects import check_effects, segment_kind
from uplift.allocation.explore import effect_draws, thompson_allocation
from uplift.allocation.floors import confident_floors, holding_probability, margins_needed, selection_optimism
from uplift.allocation.infeasibility import solve_elastic
from uplift.allocation.prices import rule_prices
from uplift.allocation.problem import Allocation, Problem, build_problem
from uplift.allocation.references import (
    even_allocation,
    single_best_message_problem,
    solve_without_exploration,
)
from uplift.allocation.result import (
    PlanGain,
    PlanResult,
    PlanTotals,
    calibrated_totals,
    cell_figures,
    cells_table,
    floor_checks,
    plan_cells,
    plan_gain,
    plan_totals,
)
from uplift.allocation.solve import LPSolution, breaks_tier_order, solve_value
from uplift.allocation.unitrows import check_places, parent_cells, split_by_places, unit_lines
from uplift.errors import DataError, InfeasiblePlanError, SpecError
from uplift.segments.promise import PromiseCalibration
from uplift.specs.planning import CostCatalogue, PlanningPolicy

__all__ = ["PreparedPlan", "prepare_plan", "plan", "reference_plans"]


@dataclass(frozen=True)
class PreparedPlan:
    """An effects table checked and turned into its LPs, ready to plan at any budget.

    Everything :func:`plan` does before it knows the budget (the contract check, the LP matrices,
    the single-best-message reference's LP and, for a confident conversion floor, the LPs of the
    effect draws its optimism is measured on) is done once here; the service keeps these per
    (model version, segments, policy, costs) so that a planner trying budgets only pays for the
    solves. Immutable and safe to share between threads.
    """

    frame: pd.DataFrame
    problem: Problem
    best_message_problem: Problem
    source: str
    best_message_rows: np.ndarray = dataclasses.field(repr=False)
    """The rows of :attr:`problem` that :attr:`best_message_problem`'s rows are, in its order."""
    floor_draws: tuple[Problem, ...] = dataclasses.field(default=(), repr=False)
    places: pd.DataFrame | None = dataclasses.field(default=None, repr=False)
    """The checked places table the flyer rows were split by (:mod:`uplift.allocation.unitrows`); None: none."""
    costs: CostCatalogue | None = dataclasses.field(default=None, repr=False)
    """The cost catalogue the LPs were built with (a flyer line's copies are counted by it)."""
    promise: PromiseCalibration | None = None
    """The held-out calibration of what the table's estimates buy (:mod:`uplift.segments.promise`), when the
    table carries one for its kind of segment (``attrs["stages"][kind]["promise"]``): a plan's expected
    conversions and interval, and the reference plans', are calibrated by it."""
    """When the policy has a conversion floor with a confidence: :attr:`problem` with its effects
    drawn from their uncertainty, ``policy.floor_draws`` times (:func:`_drawn_problems`)."""

    @property
    def policy(self) -> PlanningPolicy:
        """The policy the LPs were built for."""
        return self.problem.policy

    def plan(self, *, budget: float, strict: bool = False, references: bool = True, prices: bool = True) -> PlanResult:
        """The plan at ``budget``; see :func:`plan`."""
        budget = _checked_budget(budget)
        problem, policy = self.problem, self.policy
        explored, solution, conflicts = self._explored_and_exploited(budget)
        if conflicts and strict:
            raise InfeasiblePlanError("the planning policy cannot be met: " + "; ".join(conflicts), conflicts)
        floor_notes: list[str] = []
        confident = confident_floors(problem)
        solved = problem  # the LP the solution solves (with the confident floors' margins)
        if confident.any() and not conflicts:
            optimism = self._selection_optimism(budget, explored)
            solution, floor_notes, margin = _with_floor_margins(problem, solution, budget=budget, explored=explored,
                                                                optimism=optimism)
            solved = dataclasses.replace(problem, floor_margin=margin) if margin is not None else problem
        elif confident.any():
            floor_notes = [f"conversion floor {f.name!r} is kept in expectation only, without its "
                           f"{f.confidence:.0%} confidence margin: the policy's rules conflict at this budget"
                           for f, asked in zip(problem.floors, confident, strict=True) if asked]
        total = solution.allocation + explored
        figures = cell_figures(problem, total=total, explored=explored)
        totals = plan_totals(
            figures,
            problem.own_sd,
            budget=budget,
            interval=policy.interval,
            marginal_cost=_marginal_cost(solution),
            shared=problem.shared,
        )
        reference_totals, gains = self._references(budget, figures, totals.spend) if references else ({}, {})
        promise_notes = []
        if self.promise is not None:
            totals = calibrated_totals(totals, self.promise, policy.interval)
            reference_totals = {k: calibrated_totals(t, self.promise, policy.interval)
                                for k, t in reference_totals.items()}
            promise_notes = [f"expected conversions calibrated on the data's held-out rows: the estimates' "
                             f"{totals.estimated_conversions:.1f} x {max(self.promise.ratio, 0.0):.2f} "
                             f"(± {self.promise.ratio_se:.2f}), what the best-looking "
                             f"{self.promise.top_share:.0%} of the cells bought per conversion they promised"]
        cells = cells_table(problem, figures)
        floors = floor_checks(problem, cells, self.segment_kind)
        rules = rule_prices(solved, solution, explored=explored, budget=budget) if prices else ()
        lines = split = None
        if problem.parent is not None:  # flyer rows split per print unit: the plan's lines, then its cells
            lines = unit_lines(cells, problem.frame, self.places, self.costs)
            split, cells = cells, parent_cells(cells, problem.frame)
        return PlanResult(
            cells=cells,
            totals=totals,
            references=reference_totals,
            status="infeasible" if conflicts else "optimal",
            conflicts=tuple(conflicts),
            notes=tuple(_notes(problem, solution, total, budget) + [f.note(self.segment_kind) for f in floors]
                        + floor_notes + self._gain_notes(gains) + promise_notes),
            gains=gains,
            floors=floors,
            rules=rules,
            unit_lines=lines,
            split_cells=split,
        )

    @functools.cached_property
    def segment_kind(self) -> str | None:
        """The kind of segment the table is over (None: it does not say, or mixes kinds)."""
        return segment_kind(self.frame)

    def _explored_and_exploited(self, budget: float) -> tuple[Allocation, LPSolution, list[str]]:
        """The exploration at ``budget`` and the exploitation LP's solution (relaxed, with its
        conflicts, when the rules conflict) on top of it.

        The exploration takes ``policy.exploration_share`` of the budget. Above the budget the cells
        can usefully take, that share would grow with the budget while the exploitation's room does
        not: the draws would take the contacts the mean effects fund and, past a point, the whole plan
        (more budget, fewer expected conversions). So when the plan leaves money unspent, the share
        is of what the plan without exploration spends (:attr:`useful_spend`) instead, if that is less
        than the budget; it stays put as the budget grows, and more budget never plans less. Where the
        budget binds, as it nearly always does, this costs nothing; past it, the plan is solved twice.
        """
        problem, share = self.problem, self.policy.exploration_share

        def at(explore: float) -> tuple[Allocation, LPSolution, list[str]]:
            explored = thompson_allocation(problem, budget=explore)
            solution, conflicts = solve_elastic(problem, objective=problem.effect, budget=budget, base=explored,
                                                fundable=problem.fundable(problem.effect))
            return explored, solution, conflicts

        found = at(budget * share)
        explored, solution, _ = found
        if share <= 0 or budget - problem.spend((solution.allocation + explored).y) <= max(1.0, 1e-6 * budget):
            return found
        return at(share * self.useful_spend) if self.useful_spend < budget else found

    @functools.cached_property
    def useful_spend(self) -> float:
        """EUR the plan without exploration spends when the budget does not bind: all its rules let it
        buy at a positive expected effect (solved once, when a plan first leaves money unspent, at a
        budget that buys every reach tier). Where a budget binds the plan without exploration, it is
        at least that budget; where it does not, the plan spends this."""
        problem = self.problem
        ceiling = float(problem.tier_cost @ problem.tier_cap) + 1.0
        alone, _ = solve_without_exploration(problem, budget=ceiling, explain=False)
        return problem.spend(alone.allocation.y)

    def _selection_optimism(self, budget: float, explored: Allocation) -> np.ndarray:
        """Per floor, its optimism at ``budget`` (:func:`~uplift.allocation.floors.selection_optimism`):
        each of :attr:`floor_draws` planned as the plan is (the same exploration, its own margins),
        skipping draws whose rules conflict."""
        drawn = []
        for draw in self.floor_draws:
            solution, conflicts = solve_elastic(draw, objective=draw.effect, budget=budget, base=explored,
                                                fundable=draw.fundable(draw.effect))
            if conflicts:
                continue
            solution, _, _ = _with_floor_margins(draw, solution, budget=budget, explored=explored)
            drawn.append((draw, (solution.allocation + explored).x))
        return selection_optimism(self.problem, drawn)

    def reference_allocations(self, budget: float) -> dict[str, tuple[Problem, Allocation, LPSolution | None]]:
        """Per reference plan (:data:`~uplift.allocation.references.REFERENCE_PLANS`): the problem its
        allocation belongs to, the allocation, and the LP solution behind it (None for "even")."""
        solution, _ = solve_without_exploration(self.best_message_problem, budget=budget, explain=False)
        return {
            "even": (self.problem, even_allocation(self.problem, budget=budget), None),
            "single_best_message": (self.best_message_problem, solution.allocation, solution),
        }

    def reference_plans(self, budget: float) -> dict[str, pd.DataFrame]:
        """The cells tables of the reference plans at ``budget``; see :func:`reference_plans`."""
        out = {}
        for name, (problem, allocation, _) in self.reference_allocations(_checked_budget(budget)).items():
            cells = plan_cells(problem, total=allocation)
            out[name] = cells if problem.parent is None else parent_cells(cells, problem.frame)
        return out

    def _references(
        self, budget: float, figures: dict[str, np.ndarray], spend: float
    ) -> tuple[dict[str, PlanTotals], dict[str, PlanGain]]:
        """The reference plans' totals, and what the plan (its cell ``figures``, ``spend`` in all)
        adds over each, paired."""
        interval, main = self.policy.interval, self.problem
        totals, gains = {}, {}
        for name, (problem, allocation, solution) in self.reference_allocations(budget).items():
            theirs = cell_figures(problem, total=allocation)
            totals[name] = plan_totals(
                theirs,
                problem.own_sd,
                budget=budget,
                interval=interval,
                marginal_cost=_marginal_cost(solution) if solution is not None else float("nan"),
                shared=problem.shared,
            )
            contacts = theirs["contacts"].astype(float)
            if problem is not main:  # the single best message's LP has that message's rows only
                contacts = np.bincount(self.best_message_rows, weights=contacts, minlength=main.n)
            gains[name] = plan_gain(
                figures["contacts"], contacts, main.effect, main.own_sd,
                spend=spend, reference_spend=totals[name].spend,
                interval=interval, shared=main.shared,
            )
        return totals, gains

    def _gain_notes(self, gains: dict[str, PlanGain]) -> list[str]:
        """A note when the plan is not clearly better than everything on the single best message:
        a simpler plan to run, which the estimates cannot tell apart from this one."""
        gain = gains.get("single_best_message")
        if gain is None or gain.lo > 0 or gain.lo == gain.hi == 0.0:  # clearly better, or the same plan
            return []
        message = self.best_message_problem.frame["message"].iloc[0]
        note = (f"this split is not clearly better than everything on the single best message, {message!r}: it adds "
                f"{gain.extra_conversions:+.1f} expected conversions ({self.policy.interval:.0%} interval "
                f"{gain.lo:+.1f} to {gain.hi:+.1f}), more with probability {gain.probability_better:.0%}")
        return [note]


def prepare_plan(
    effects: pd.DataFrame, *, costs: CostCatalogue, policy: PlanningPolicy, source: str = "effects",
    policy_source: str = "policy", places: pd.DataFrame | None = None, places_source: str = "places",
) -> PreparedPlan:
    """Check ``effects`` and build the planning LPs for ``costs`` and ``policy`` (see :class:`PreparedPlan`).

    Raises
    ------
    SchemaError, DataError
        The effects table breaks its contract or a floor cannot be applied to it.
    SpecError
        The policy names an unknown channel.

    ``source`` and ``policy_source`` name the table and the policy in error messages; ``places`` (and its name,
    ``places_source``): see :func:`plan`.
    """
    prepared = _without_floor_draws(effects, costs=costs, policy=policy, source=source, policy_source=policy_source,
                                    places=places, places_source=places_source)
    return dataclasses.replace(prepared, floor_draws=_drawn_problems(prepared.problem))


def _without_floor_draws(
    effects: pd.DataFrame, *, costs: CostCatalogue, policy: PlanningPolicy, source: str, policy_source: str = "policy",
    places: pd.DataFrame | None = None, places_source: str = "places",
) -> PreparedPlan:
    """:func:`prepare_plan` without the floors' effect draws, for callers that only need the LPs."""
    frame = check_effects(effects, costs, source=source)
    if places is not None:
        if segment_kind(frame) != "targetable":
            raise DataError(f"{places_source}: a plan by print unit needs a table of targetable cells (age band x "
                            f"gender x municipality); {source} is of kind {segment_kind(frame)!r}")
        places = check_places(places, source=places_source)
        frame = split_by_places(frame, places, costs, source=source, places_source=places_source)
    problem = build_problem(frame, costs, policy, source=source, policy_source=policy_source)
    best, rows = single_best_message_problem(frame, costs, policy, source=source)
    return PreparedPlan(
        frame=frame,
        problem=problem,
        best_message_problem=best,
        source=source,
        best_message_rows=rows,
        promise=table_promise(effects),
        places=places,
        costs=costs,
    )


def table_promise(effects: pd.DataFrame) -> PromiseCalibration | None:
    """The held-out calibration of the promise an effects table carries for its kind of segment
    (``attrs["stages"][kind]["promise"]``, :func:`uplift.segments.build_segment_table`), when usable."""
    kind = segment_kind(effects)
    record = ((effects.attrs.get("stages") or {}).get(kind) or {}).get("promise") if kind else None
    if not record:
        return None
    calibration = PromiseCalibration.from_record(record)
    return calibration if calibration.usable else None


def _drawn_problems(problem: Problem) -> tuple[Problem, ...]:
    """``problem`` with its effects replaced by ``policy.floor_draws`` draws from their uncertainty
    (:func:`~uplift.allocation.explore.effect_draws`, seeded by the policy's seed on a stream of their
    own; :meth:`Problem.with_effect`), when a floor asks for a confidence and the effects have an
    uncertainty to draw from; otherwise none (every draw would be the effects themselves, with no
    optimism)."""
    if not confident_floors(problem).any() or not (problem.effect_sd.any() or problem.shared.any()):
        return ()
    policy = problem.policy
    draws = effect_draws(problem, policy.floor_draws, np.random.default_rng([policy.seed, 1]))
    # a draw's plan only measures the optimism: its reach curves may be filled out of order, which
    # spares the mixed-integer re-solves (seconds each where the rules make money go out unwelcome)
    return tuple(dataclasses.replace(problem.with_effect(draw), tier_order=False) for draw in draws)


def plan(
    effects: pd.DataFrame,
    *,
    budget: float,
    costs: CostCatalogue,
    policy: PlanningPolicy,
    strict: bool = False,
    references: bool = True,
    prices: bool = True,
    source: str = "effects",
    policy_source: str = "policy",
    places: pd.DataFrame | None = None,
    places_source: str = "places",
) -> PlanResult:
    """Split ``budget`` over segments x arms to maximise expected incremental conversions.

    ``policy.exploration_share`` of the budget (when the plan leaves money unspent, of what the plan
    without exploration spends, if less: :attr:`PreparedPlan.useful_spend`) is spread by Thompson sampling
    (:func:`~uplift.allocation.explore.thompson_allocation`); the rest is the exploitation LP on the
    mean effects, with every rule applied to the sum of both. The LP (HiGHS) buys fractional
    contacts; the returned cells round them down (see :mod:`uplift.allocation.result`).
    ``prepare_plan(...).plan(budget=...)`` is the same in two steps.

    Parameters
    ----------
    effects : segment-effects table (contract :data:`~uplift.allocation.effects.EFFECTS`). Not modified.
    budget : EUR available (spent at most).
    costs : channel prices and reach curves.
    policy : the rules (channel min/max spend, segment share cap, fairness floors, holdout,
        exploration, interval, seed).
    strict : raise :class:`InfeasiblePlanError` instead of returning a relaxed plan when the
        policy's rules conflict.
    references : also compute the "even" and "single_best_message" reference plans.
    prices : also price every rule (:mod:`uplift.allocation.prices`: binds or not, its dual value,
        and for a binding rule what the plan without it would buy, a re-solve per binding rule).
    source, policy_source : names of the effects table and of the policy in error messages.
    places : people per (segment, print unit) of the audience (:func:`uplift.places.places_table`; its name in
        errors ``places_source``). With it, the rows of a channel delivered per neighbourhood (a flyer) are
        planned per print unit (:mod:`uplift.allocation.unitrows`): a flyer line is one message in one unit, bought
        at its print run's minimum or not at all; the result's cells stay one per row of ``effects`` and its
        ``unit_lines`` hold the flyer lines. None: a flyer line is a municipality's cells.

    Returns
    -------
    PlanResult
        Status ``"optimal"``, or ``"infeasible"`` with the conflicts and the best relaxed plan.

    Raises
    ------
    SchemaError, DataError
        The effects table breaks its contract or a floor cannot be applied to it.
    SpecError
        ``budget`` is not a finite amount >= 0, or the policy names an unknown channel.
    InfeasiblePlanError
        Only with ``strict=True``, when the rules conflict.
    """
    budget = _checked_budget(budget)  # before the table is checked and the LPs are built
    prepared = prepare_plan(effects, costs=costs, policy=policy, source=source, policy_source=policy_source,
                            places=places, places_source=places_source)
    return prepared.plan(budget=budget, strict=strict, references=references, prices=prices)


def reference_plans(
    effects: pd.DataFrame,
    *,
    budget: float,
    costs: CostCatalogue,
    policy: PlanningPolicy,
    source: str = "effects",
) -> dict[str, pd.DataFrame]:
    """The cells tables of the reference plans (keys :data:`~uplift.allocation.references.REFERENCE_PLANS`),
    e.g. to score them against the truth with :func:`~uplift.allocation.result.evaluate_plan`."""
    budget = _checked_budget(budget)  # before the table is checked and the LPs are built
    return _without_floor_draws(effects, costs=costs, policy=policy, source=source).reference_plans(budget)


def _checked_budget(budget: float) -> float:
    if not (isinstance(budget, (int, float, np.number)) and math.isfinite(budget) and budget >= 0):
        raise SpecError(f"budget: expected a finite amount of EUR >= 0, got {budget!r}")
    return float(budget)


_MARGIN_ROUNDS = 8
"""Most rounds spent raising the conversion floors' margins (:mod:`uplift.allocation.floors`)."""
_MARGIN_HALVINGS = 6
"""When a margin cannot be had, how often the step towards it is halved before giving up."""
_MARGIN_TOL = 0.01


def _with_floor_margins(
    problem: Problem, solution: LPSolution, *, budget: float, explored: Allocation,
    optimism: np.ndarray | None = None,
) -> tuple[LPSolution, list[str], np.ndarray | None]:
    """Re-solve with margins on the confident conversion floors until the plan clears them.

    Each round raises every margin to ``z_q sd(D)`` plus the floor's ``optimism`` (none by default)
    at the plan in hand and solves again. When the other rules leave no room for that margin, the
    step towards it is halved, so the plan ends with as much margin as the rules allow. The search
    solves LPs only; when its plan fills a reach curve out of order, the margin found is solved once
    more with the curves in order (:mod:`uplift.allocation.solve`), halved if they leave no room for
    all of it. Returns the plan, per confident floor a note with the probability that it holds
    at that plan, and the margins the plan was solved with (None: none).
    """
    optimism = np.zeros(len(problem.floors)) if optimism is None else optimism

    def solved(margin: np.ndarray, *, tier_order: bool) -> LPSolution:
        return solve_value(dataclasses.replace(problem, floor_margin=margin, tier_order=tier_order),
                           objective=problem.effect, budget=budget, base=explored,
                           fundable=problem.fundable(problem.effect))

    margin, found, used = np.zeros(len(problem.floors)), solution, None
    for _ in range(_MARGIN_ROUNDS):
        need = margins_needed(problem, (found.allocation + explored).x, optimism)
        if np.all(need <= margin * (1 + _MARGIN_TOL) + 1e-9):
            break
        target = np.maximum(margin, need)
        for _ in range(_MARGIN_HALVINGS + 1):
            attempt = solved(target, tier_order=False)
            if attempt.optimal:
                break
            target = (target + margin) / 2
        else:
            break  # no more margin can be had
        margin, found = target, attempt
    if margin.any():
        if problem.tier_order and breaks_tier_order(problem, (found.allocation + explored).y,
                                                    added=found.allocation.y).any():
            for _ in range(_MARGIN_HALVINGS + 1):
                found = solved(margin, tier_order=True)
                if found.optimal:
                    break
                margin = margin / 2
        if found.optimal:
            solution, used = found, margin
    probability = holding_probability(problem, (solution.allocation + explored).x, optimism)
    notes = [
        f"conversion floor {floor.name!r} ({floor.min_share:.0%}) holds with probability {p:.0%} under the "
        f"effects' uncertainty (asked: {floor.confidence:.0%})"
        + (f", after {o:.1f} expected conversions allowed for the optimism of the estimates the plan picks"
           if o > 0 else "")
        for floor, p, o, asked in zip(problem.floors, probability, optimism, confident_floors(problem), strict=True)
        if asked
    ]
    return solution, notes, used


def _marginal_cost(solution: LPSolution) -> float:
    return 1.0 / solution.budget_dual if solution.budget_dual > 0 else math.inf


def _notes(problem: Problem, solution: LPSolution, total: Allocation, budget: float) -> list[str]:
    """Why budget is left unspent, if it is."""
    spent = problem.spend(total.y)
    left = budget - spent
    if left <= max(1.0, 1e-4 * budget):
        return []
    room = (problem.tier_cap - total.y) > 1e-6 * np.maximum(problem.tier_cap, 1.0)
    open_grp = np.zeros(len(problem.grp_seg), dtype=bool)
    open_grp[problem.tier_grp[room]] = True
    contacts_seg = np.bincount(problem.seg, weights=total.x, minlength=len(problem.segments))
    seg_room = contacts_seg < problem.contact_cap * (1 - 1e-6)
    could = (problem.effect > 0) & open_grp[problem.grp] & seg_room[problem.seg]
    head = f"EUR {left:,.0f} of the EUR {budget:,.0f} budget is left unspent"
    if not could.any():
        return [f"{head}: every cell with a positive effect is at its reach or holdout cap"]
    binding = [
        problem.row_label[r]
        for r in np.flatnonzero(np.abs(solution.row_duals) > 1e-12)
        if problem.row_kind[r] not in ("budget", "segment_contacts")
    ]
    kinds = {problem.row_kind[r] for r in np.flatnonzero(np.abs(solution.row_duals) > 1e-12)}
    if "segment_share" in kinds:
        binding = [b for b in binding if not b.startswith("max_segment_share")]
        binding.append(f"max_segment_share {problem.policy.max_segment_share:.0%}")
    if not binding:
        return [f"{head}: the remaining cells buy too little to be worth it"]
    return [f"{head} because these rules bind: {', '.join(dict.fromkeys(binding))}"]
