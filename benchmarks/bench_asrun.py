"""The plan as its channels run it: what a line that cannot tell cells apart keeps of the planned conversions.

The planner buys contacts per age band x gender x municipality cell on every channel; LinkedIn cannot select a
gender and a flyer only a neighbourhood, so their lines reach all the cells they cannot tell apart, in proportion
to their people (:func:`uplift.handoff.as_run`). For every seed this simulates a world and builds its segment table
exactly as the decision benchmark does (:func:`benchmarks.decisions._one_world`), plans with the shipped policy
(scaled to the population) at each budget, and scores under the simulator's true effects: the plan as planned, the
plan as run, and the oracle plan (planned on the true effects) as planned and as run, each as a share of the oracle
as planned.

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


def score_world(seed: int, settings, say) -> pd.DataFrame:
    """Rows (seed, policy, budget_share, plan, spend, true conversions) for one world."""
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
    rows = []
    for label, pol in (("shipped", policy), ("no_exploration", policy.model_copy(update={"exploration_share": 0.0}))):
        for share in settings.budget_shares:
            budget = round(share * capacity, 2)
            say(f"seed {seed}: {label} at {share:.0%} of full reach (EUR {budget:,.0f})")
            for name, table in (("recommended", estimated), ("oracle", truth)):
                cells = plan(table, budget=budget, costs=costs, policy=pol, prices=False, references=False).cells
                run = as_run(cells, sizes, costs=costs, municipalities=municipalities)
                for how, scored in (("planned", cells), ("as_run", run)):
                    value = evaluate_plan(scored, truth)
                    rows.append({"seed": seed, "policy": label, "budget_share": share, "plan": name, "how": how,
                                 "spend": value["spend"], "true_conversions": value["expected_conversions"]})
    frame = pd.DataFrame(rows)
    oracle = frame[(frame["plan"] == "oracle") & (frame["how"] == "planned")].set_index(
        ["policy", "budget_share"])["true_conversions"]
    frame["share_of_oracle"] = frame["true_conversions"] / frame.set_index(["policy", "budget_share"]).index.map(oracle)
    return frame


def main() -> None:
    from benchmarks.decisions import DecisionSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--budget-shares", type=float, nargs="+", default=[0.05, 0.2])
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as CSV")
    args = parser.parse_args()
    settings = DecisionSettings(people=args.people, seeds=tuple(args.seeds), budget_shares=tuple(args.budget_shares),
                                frontier_ratios=(), true_form=False)
    start = time.perf_counter()
    frame = pd.concat([score_world(s, settings, lambda m: print(m, flush=True)) for s in settings.seeds],
                      ignore_index=True)
    table = frame.pivot_table(index=["policy", "budget_share", "plan"], columns="how", values="share_of_oracle",
                              aggfunc="mean")[["planned", "as_run"]]
    print(table.round(3).to_string())
    if args.out:
        frame.to_csv(args.out, index=False)
    print(f"{time.perf_counter() - start:,.0f} s")


if __name__ == "__main__":
    main()
