"""``python -m benchmarks.funnel_value [--people N] [--seed S] [--budget EUR] --workdir DIR``: the value of a cell
as the weighted sum of the events' calibrated effects (what `uplift train --value-policy` makes,
:mod:`uplift.funnel.value`) against the value estimated directly on each row's ``Y_v = sum_e w_e label_e``.

Simulates the region of ``features/regions/haaglanden.yaml``, trains one model per event of
``serve/policy_funnel.yaml`` (``models/pooled_lightgbm.yaml``, MLflow in ``DIR``), then for both value tables:
how closely the targetable cells follow the simulator's true value (correlation, RMSE), the median sd and the
share of cells whose interval holds the true value, and a plan at ``--budget`` under the policy's rules: what it
promised and what it buys under the truth. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.report import markdown_table
from uplift.allocation import evaluate_plan, plan
from uplift.config import Settings
from uplift.data.trainingtable import TrainingTable
from uplift.funnel import OUTCOME_COLUMN, EventEstimates, value_plan_tables
from uplift.modeling.truthcheck import true_outcome_probabilities
from uplift.pipeline import load_feature_set, load_priority_groups, load_segment_spec
from uplift.segments import build_segment_table, truth_segment_effects
from uplift.segments.composition import with_composition
from uplift.segments.release import planner_table
from uplift.simulate import simulate
from uplift.simulate.world import write_world
from uplift.specs import load_spec, project_root
from uplift.specs.planning import CostCatalogue, PlanningPolicy
from uplift.specs.region import RegionSpec
from uplift.valuepipeline import train_value_and_log

__all__ = ["direct_value_table", "main"]

_SCALED = ("effect", "effect_sd", "lo", "hi", "observed", "observed_se", "model", "persona_mix", "base_rate")


def direct_value_table(estimates: Sequence[EventEstimates], spec) -> tuple[pd.DataFrame, TrainingTable]:
    """The value estimated as one outcome: the segment estimator on ``Y_v / W`` (between 0 and 1) with the
    predictions ``sum_e w_e pred_e / W``, every figure scaled back by ``W``; on the rows every event has."""
    from uplift.allocation.effects import shared_error_columns

    keys = estimates[0].rows.frame[["person_id", "wave"]]
    for e in estimates[1:]:
        keys = keys.merge(e.rows.frame[["person_id", "wave"]], on=["person_id", "wave"])
    aligned = [e.aligned(keys) for e in estimates]
    total = float(sum(a.event.weight for a in aligned))
    first = aligned[0]
    y = sum(a.event.weight * a.rows.frame["outcome"].to_numpy(float) for a in aligned)
    rows = TrainingTable(frame=first.rows.frame.assign(outcome=y / total), features=first.rows.features,
                         arms=first.rows.arms, control=first.rows.control, outcome="value", outcome_kind="continuous")
    predictions = pd.DataFrame(sum(a.event.weight * a.predictions.to_numpy(float) for a in aligned) / total,
                               columns=first.predictions.columns)
    table = build_segment_table(rows, predictions, spec, folds=first.folds, heldout_fold=first.heldout_fold)
    scaled = [c for c in _SCALED if c in table.columns] + shared_error_columns(table)
    table[scaled] = table[scaled].astype(float) * total
    return table, rows


def _quality(name: str, table: pd.DataFrame, truth: pd.Series, budget: float, costs, policy) -> dict:
    cells = table[table["kind"] == "targetable"].set_index(["segment", "arm"])
    true = truth.reindex(cells.index)
    covered = (cells["lo"] <= true) & (true <= cells["hi"])
    result = plan(table[table["kind"] == "targetable"], budget=budget, costs=costs, policy=policy,
                  references=False, prices=False)
    true_effects = truth.rename("effect").reset_index().merge(
        table[["segment", "arm", "size", "message", "channel"]], on=["segment", "arm"]).assign(effect_sd=0.0)
    bought = evaluate_plan(result.cells, true_effects)["expected_conversions"]
    return {"value table": name, "corr with truth": cells["effect"].corr(true),
            "RMSE": float(np.sqrt(((cells["effect"] - true) ** 2).mean())),
            "median sd": float(cells["effect_sd"].median()), f"{policy.interval:.0%} coverage": float(covered.mean()),
            "plan promised": float(result.cells["expected_conversions"].sum()), "plan's true value": bought}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget", type=float, default=20_000.0)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    root = project_root()
    region = load_spec(root / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    world = simulate(region, people=args.people, waves=region.waves.count, seed=args.seed)
    folder = args.workdir / "sim"
    write_world(world, folder)
    policy = load_spec(root / "serve" / "policy_funnel.yaml", PlanningPolicy)
    costs = load_spec(root / "serve" / "costs.yaml", CostCatalogue)
    spec = load_segment_spec()
    trained = train_value_and_log(root / "models" / "pooled_lightgbm.yaml", folder, load_feature_set("default"),
                                  policy, settings=Settings(workdir=args.workdir, experiment_name="funnel-bench"))
    estimates = [EventEstimates.from_report(e, trained.models[e.event].report) for e in policy.value_events]
    weighted, _ = value_plan_tables(planner_table(trained.segments), policy)
    direct, rows = direct_value_table(estimates, spec)
    direct = planner_table(with_composition(direct, rows.frame, spec, load_priority_groups()))
    true_p = sum(e.weight * true_outcome_probabilities(rows.frame[["person_id", "wave"]], world.truth, rows.arms,
                                                       e.event) for e in policy.value_events)
    truth = truth_segment_effects(rows, true_p, spec).set_index(["segment", "arm"])["true_effect"]
    plain = policy.model_copy(update={"value": None})
    table = pd.DataFrame([_quality("weighted sum of the events (shipped)", weighted, truth, args.budget, costs, plain),
                          _quality("direct on Y_v", direct.drop(columns=[OUTCOME_COLUMN], errors="ignore"), truth,
                                   args.budget, costs, plain)])
    print(markdown_table(table, {c: ".4g" for c in table.columns if c != "value table"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
