"""The plan as its channels run it: what a line that cannot tell cells apart keeps of the planned conversions.

LinkedIn cannot select a gender and a flyer only a neighbourhood, so their lines reach all the cells they cannot
tell apart, in proportion to their people (:func:`uplift.handoff.as_run`); the planner buys such a line whole
(:mod:`uplift.allocation.channellines`), at the channel's minimum or not at all. For every seed this simulates a
world and builds its segment table exactly as the decision benchmark does (:func:`benchmarks.decisions._one_world`),
plans with the shipped policy (scaled to the population) at each budget, and scores under the simulator's true
effects: the plan as planned, the plan as run, and the oracle plan (planned on the true effects) as planned and as
run, each as a share of the oracle as planned, for the planner as shipped (``lines``: each channel bought on the
cells it can tell apart, at its minimum line size; ``lines_no_minimum``: the same without the minimums) and for the
planner blind to the channels' targeting (``cells``: every channel bought per age band x gender x municipality cell,
no minimums, :func:`cell_by_cell`), both against the latter's oracle as planned (the most any plan on these
estimates' cells can promise). Per seed it also plans at ``--demo-budget`` EUR as ``uplift run`` does (rule prices
and reference plans), with the channels' minimum line sizes, without them, and cell by cell: the seconds the plan
takes and its hand-off's lines, and how many of them are below their channel's minimum.

    python -m benchmarks.bench_asrun --people 100000 --seeds 1 2 --budget-shares 0.05 0.2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))


def score_world(seed: int, settings, say, demo_budget: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (seed, policy, budget_share, plan, spend, true conversions) for one world, and its demo plans
    (:func:`demo_plans`)."""
    from benchmarks.decisions import _one_world, full_reach_spend, scaled_policy
    from uplift.allocation import evaluate_plan, plan
    from uplift.handoff import as_run
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy
    from uplift.specs.region import RegionSpec

    costs = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
    shipped = load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy)
    region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    municipalities = tuple(m.name for m in region.municipalities)
    estimated, truth, _, _ = _one_world(seed, settings, ROOT, say)
    sizes = estimated.drop_duplicates("segment").set_index("segment")["size"].to_dict()
    policy = scaled_policy(shipped, settings.people, set(estimated["channel"]))
    capacity = full_reach_spend(estimated, costs)
    catalogues = {"lines": costs, "lines_no_minimum": without_minimums(costs), "cells": cell_by_cell(costs)}
    rows = []
    for label, pol in (("shipped", policy), ("no_exploration", policy.model_copy(update={"exploration_share": 0.0}))):
        for share in settings.budget_shares:
            budget = round(share * capacity, 2)
            say(f"seed {seed}: {label} at {share:.0%} of full reach (EUR {budget:,.0f})")
            for planner, catalogue in catalogues.items():
                for name, table in (("recommended", estimated), ("oracle", truth)):
                    cells = plan(table, budget=budget, costs=catalogue, policy=pol, prices=False,
                                 references=False).cells
                    run = as_run(cells, sizes, costs=costs, municipalities=municipalities)
                    for how, scored in (("planned", cells), ("as_run", run)):
                        value = evaluate_plan(scored, truth)
                        rows.append({"seed": seed, "policy": label, "budget_share": share, "planner": planner,
                                     "plan": name, "how": how, "spend": value["spend"],
                                     "true_conversions": value["expected_conversions"]})
    frame = pd.DataFrame(rows)
    oracle = frame[(frame["planner"] == "cells") & (frame["plan"] == "oracle") & (frame["how"] == "planned")].set_index(
        ["policy", "budget_share"])["true_conversions"]
    frame["share_of_oracle"] = frame["true_conversions"] / frame.set_index(["policy", "budget_share"]).index.map(oracle)
    return frame, demo_plans(estimated, costs, policy, region, seed, demo_budget)


def without_minimums(costs):
    """``costs`` without the channels' minimum line sizes (lines still bought whole)."""
    return costs.model_copy(update={"channels": {
        name: channel.model_copy(update={"min_line_spend": 0.0, "min_print_run": 0})
        for name, channel in costs.channels.items()}})


def cell_by_cell(costs):
    """``costs`` without the channels' targeting and minimum line sizes: the planner then buys every channel cell by
    cell (no channel lines, no minimums), the plan a planner blind to the channels' targeting makes."""
    return costs.model_copy(update={"channels": {
        name: channel.model_copy(update={"targeting": None, "handoff": None, "min_line_spend": 0.0, "min_print_run": 0})
        for name, channel in costs.channels.items()}})


def demo_plans(estimated, costs, policy, region, seed: int, budget: float) -> pd.DataFrame:
    """The plan at ``budget`` with rule prices and references, with and without the channels' minimum line sizes:
    seconds, lines handed off and lines below their channel's minimum."""
    import datetime as dt

    from uplift.allocation import plan
    from uplift.handoff import areas_from_region, handoff_tables
    from uplift.specs import load_spec
    from uplift.specs.handoff import HandoffSpec

    spec = load_spec(ROOT / "serve" / "handoff.yaml", HandoffSpec)
    areas = areas_from_region(region)
    rows = []
    for label, catalogue in (("lines, minimums", costs), ("lines, no minimums", without_minimums(costs)),
                             ("cell by cell", cell_by_cell(costs))):
        start = time.perf_counter()
        result = plan(estimated, budget=budget, costs=catalogue, policy=policy)
        seconds = time.perf_counter() - start
        handoff = handoff_tables(result.cells, costs=costs, policy=policy, spec=spec, areas=areas, wave=1,
                                 start=dt.date(2026, 3, 2), min_size=50)
        files = [f for f in handoff.manifest["files"] if "below_minimum" in f]
        rows.append({"seed": seed, "planner": label, "budget": budget, "seconds": round(seconds, 2),
                     "lines": sum(f["lines"] for f in files), "below_minimum": sum(f["below_minimum"] for f in files),
                     "spend": round(result.totals.spend, 2),
                     "expected_conversions": round(result.totals.estimated_conversions, 2)})
    return pd.DataFrame(rows)


def main() -> None:
    from benchmarks.decisions import DecisionSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--budget-shares", type=float, nargs="+", default=[0.05, 0.2])
    parser.add_argument("--demo-budget", type=float, default=2000.0, help="EUR of the plan timed with rule prices")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as CSV")
    args = parser.parse_args()
    settings = DecisionSettings(people=args.people, seeds=tuple(args.seeds), budget_shares=tuple(args.budget_shares),
                                frontier_ratios=(), true_form=False)
    start = time.perf_counter()
    scored = [score_world(s, settings, lambda m: print(m, flush=True), args.demo_budget) for s in settings.seeds]
    frame = pd.concat([f for f, _ in scored], ignore_index=True)
    demo = pd.concat([d for _, d in scored], ignore_index=True)
    table = frame.pivot_table(index=["policy", "budget_share", "planner", "plan"], columns="how",
                              values="share_of_oracle", aggfunc="mean")[["planned", "as_run"]]
    print(table.round(3).to_string())
    print(demo.to_string(index=False))
    if args.out:
        frame.to_csv(args.out, index=False)
    print(f"{time.perf_counter() - start:,.0f} s")


if __name__ == "__main__":
    main()
