"""Benchmark of the budget planner: ``plan()`` on a synthetic ~10,000-cell table, against bare ``linprog``.

Run ``.venv/bin/python benchmarks/bench_planning.py [--segments 556 --messages 6 --repeats 5]``;
prints a Markdown table of median / min wall times (one process, one thread) and the ratio to one
bare ``scipy.optimize.linprog(method="highs-ds")`` call on the full exploitation LP of the same
table (all cell columns, no column generation), so the planner's overhead is visible. ``plan()``
prices every rule (:mod:`uplift.allocation.prices`) unless a row says otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from uplift.allocation import plan, prepare_plan
from uplift.allocation.effects import check_effects
from uplift.allocation.problem import Allocation, build_problem, right_hand_sides, variable_bounds
from uplift.allocation.solve import spend_penalty
from uplift.specs import load_spec
from uplift.specs.planning import CostCatalogue, PlanningPolicy, apply_overrides

__all__ = ["synthetic_effects", "main"]

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("meta", "flyer", "email")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-67")
MUNICIPALITIES = ("Den Haag", "Delft", "Zoetermeer", "Rijswijk", "Westland")


def synthetic_effects(n_segments: int, n_messages: int, *, seed: int = 0) -> pd.DataFrame:
    """``n_segments x n_messages x 3`` cells; effects ~ N(0.003, 0.003) per contact, some negative; each
    segment has a municipality and a share of people with a migration background (uniform 0.1-0.8) and
    in poorer neighbourhoods (0 in half the segments, else uniform 0-0.6), for the shipped policy's floors."""
    rng = np.random.default_rng(seed)
    segments = pd.DataFrame(
        {
            "segment": [f"seg{i:04d}" for i in range(n_segments)],
            "size": rng.integers(300, 8_000, n_segments),
            "gender": rng.choice(["female", "male"], n_segments),
            "age_band": rng.choice(AGE_BANDS, n_segments),
        }
    )
    # drawn after the columns above, from a stream of their own: the effects stay those of the table without them
    extra = np.random.default_rng([seed, 1])
    segments["municipality"] = extra.choice(MUNICIPALITIES, n_segments)
    segments["group__migration_background"] = extra.uniform(0.1, 0.8, n_segments)
    segments["group__poorer_neighbourhoods"] = np.where(extra.random(n_segments) < 0.5, 0.0,
                                                        extra.uniform(0.0, 0.6, n_segments))
    parts = []
    for m in range(n_messages):
        for channel in CHANNELS:
            part = segments.assign(message=f"m{m}", channel=channel, arm=f"m{m}@{channel}")
            part["effect"] = rng.normal(0.003, 0.003, n_segments)
            part["effect_sd"] = rng.uniform(0.0005, 0.003, n_segments)
            part["base_rate"] = 0.004
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up: imports, first HiGHS call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _at_new_budgets(prepared, budgets: np.ndarray) -> list[float]:
    """Times of ``prepared.plan`` at each of ``budgets`` after the first (the warm-up), as :func:`_timed`."""
    remaining = iter(budgets)
    return _timed(lambda: prepared.plan(budget=float(next(remaining))), len(budgets) - 1)


def _at_new_budgets_unpriced(prepared, budgets: np.ndarray) -> list[float]:
    """As :func:`_at_new_budgets`, without pricing the rules."""
    remaining = iter(budgets)
    return _timed(lambda: prepared.plan(budget=float(next(remaining)), prices=False), len(budgets) - 1)


def _bare_linprog(effects: pd.DataFrame, costs: CostCatalogue, policy: PlanningPolicy, budget: float) -> Callable:
    problem = build_problem(check_effects(effects, costs), costs, policy)
    base = Allocation.empty(problem)
    fundable = problem.effect >= 0
    eps = spend_penalty(problem, problem.effect, fundable)
    scale = float(problem.effect[fundable].max())
    c = np.concatenate([-problem.effect, eps * problem.tier_cost, [0.0, 0.0]]) / scale
    b_ub = right_hand_sides(problem, budget=budget, base=base)
    bounds = variable_bounds(problem, fundable=fundable, base=base)
    b_eq = np.zeros(problem.a_eq.shape[0])

    def run() -> None:
        res = linprog(c, A_ub=problem.a_ub, b_ub=b_ub, A_eq=problem.a_eq, b_eq=b_eq, bounds=bounds,
                      method="highs-ds")
        if res.status != 0:
            raise RuntimeError(res.message)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, time the configurations and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=556)
    parser.add_argument("--messages", type=int, default=6, help="arms = messages x 3 channels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60_000.0)
    args = parser.parse_args(argv)

    costs = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
    policy = load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy)
    effects = synthetic_effects(args.segments, args.messages)
    greedy = apply_overrides(policy, {"exploration_share": 0.0})
    tight = apply_overrides(policy, {
        "max_segment_share": 0.004,
        "fairness_floors": [
            {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.6},
            {"name": "over_45", "where": {"age_band": ["45-54", "55-67"]}, "kind": "conversion_share",
             "min_share": 0.5},
        ],
    })
    confident = apply_overrides(tight, {"fairness_floors": [
        {**f.model_dump(), "confidence": 0.9} if f.kind == "conversion_share" else f.model_dump()
        for f in tight.fairness_floors]})
    bare = _timed(_bare_linprog(effects, costs, greedy, args.budget), args.repeats)
    base = statistics.median(bare)
    status = plan(effects, budget=args.budget, costs=costs, policy=policy).status
    tight_status = plan(effects, budget=args.budget, costs=costs, policy=tight).status
    rows = [("bare linprog, full exploitation LP (reference)", bare)]
    for label, pol, refs in (("`plan(..., prices=False)`, default policy: no rule priced", policy, True),):
        rows.append((label, _timed(lambda p=pol, r=refs: plan(effects, budget=args.budget, costs=costs, policy=p,
                                                              references=r, prices=False), args.repeats)))
    configurations = [
        ("plan(), no exploration, no reference plans", greedy, False),
        ("plan(), no exploration, with reference plans", greedy, True),
        (f"plan(), exploration {policy.exploration_share:.0%} x {policy.exploration_draws} draws, no references",
         policy, False),
        (f"plan(), exploration {policy.exploration_share:.0%} x {policy.exploration_draws} draws, with references "
         "(default)", policy, True),
    ]
    configurations.append(
        ("plan(), binding rules (women 60% of spend, 45+ 50% of conversions, segment cap 0.4%), default "
         "exploration, with references", tight, True)
    )
    configurations.append(
        ("plan(), the same binding rules with the 45+ floor held with 90% confidence (margin re-solves)",
         confident, True)
    )
    for label, pol, refs in configurations:
        rows.append((label, _timed(lambda p=pol, r=refs: plan(effects, budget=args.budget, costs=costs, policy=p,
                                                              references=r), args.repeats)))
    # above what the cells can usefully take under those rules, spend itself becomes worth buying and the
    # LP buys dear contacts before cheap ones: the reach curves are put in order at their tangents
    # (docs/planning.md, "The tangent rounds")
    high = 1.5 * args.budget
    for label, pol in ((f"the binding rules at EUR {high:,.0f} (reach curves put in order)", tight),
                       (f"the binding rules with the 90% confidence at EUR {high:,.0f}", confident)):
        rows.append((f"plan(), {label}", _timed(lambda p=pol: plan(effects, budget=high, costs=costs, policy=p),
                                                 args.repeats)))
    # what the service pays for a new budget once the request's table, policy and costs are prepared
    prepared = prepare_plan(effects, costs=costs, policy=policy)
    rows.append(("prepared plan at a new budget (`prepare_plan(...)` kept), default policy, with references",
                 _at_new_budgets(prepared, np.linspace(0.5, 1.5, args.repeats + 1) * args.budget)))
    rows.append(("prepared plan at a new budget, the binding rules, every rule priced (re-solves without each "
                 "binding one)", _at_new_budgets(prepare_plan(effects, costs=costs, policy=tight),
                                                 np.linspace(0.5, 1.0, args.repeats + 1) * args.budget)))
    rows.append(("prepared plan at a new budget, the binding rules, no rule priced",
                 _at_new_budgets_unpriced(prepare_plan(effects, costs=costs, policy=tight),
                                          np.linspace(0.5, 1.0, args.repeats + 1) * args.budget)))
    rows.append(("prepared plan at a new budget, the binding rules with the 90% confidence",
                 _at_new_budgets(prepare_plan(effects, costs=costs, policy=confident),
                                 np.linspace(0.5, 1.0, args.repeats + 1) * args.budget)))
    rows.append(("`prepare_plan()` alone (contract check + LP matrices)",
                 _timed(lambda: prepare_plan(effects, costs=costs, policy=policy), args.repeats)))
    rows.append(("`prepare_plan()` alone, the binding rules with the 90% confidence (+ "
                 f"{confident.floor_draws} drawn LPs)",
                 _timed(lambda: prepare_plan(effects, costs=costs, policy=confident), args.repeats)))
    print(f"{len(effects):,} cells ({args.segments} segments x {args.messages * len(CHANNELS)} arms), "
          f"budget EUR {args.budget:,.0f}, policy serve/policy.yaml (status {status}; binding rules: {tight_status}), "
          f"{args.repeats} runs each\n")
    print("| configuration | median s | min s | x bare linprog |")
    print("|---|---:|---:|---:|")
    for label, times in rows:
        median = statistics.median(times)
        print(f"| {label} | {median:.3f} | {min(times):.3f} | {median / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
