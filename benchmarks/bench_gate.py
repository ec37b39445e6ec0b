"""Benchmark of the champion gate on the simulator: what it decides between two campaign models, and whether its
intervals are honest.

One simulated world (the demo's by default: 100,000 people x 4 waves, seed 7), the two models ``uplift run``
trains (``pooled_lightgbm`` and ``t_shared_lightgbm``), each validated on the same split. For every budget:

* **the gate's figures**: each model's plan (from the segment table of its training rows only) valued on the
  held-out rows, and the paired gain of the second over the first, with the one-sided bound the gate decides on
  (:func:`uplift.tracking.evidence.plan_evidence`);
* **the truth**: what each plan truly adds, its contacts times the simulator's true segment effects;
* **calibration**: the held-out outcomes are drawn again ``--redraws`` times from the simulator's true
  probabilities (the arms as randomised, the plans fixed); how often the two-sided interval whose lower end is
  the gate's bound covers the gain the rows truly hold, the spread of the estimate against its standard error,
  and how often the gate would promote.

Run: ``.venv/bin/python benchmarks/bench_gate.py`` (about 10 min on 2 cores); quick: ``--people 20000 --waves 3``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _world(people: int, waves: int, seed: int):
    from uplift.features import build_training_table
    from uplift.pipeline import load_feature_set
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.region import RegionSpec

    region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    world = simulate(region, people=people, waves=waves, seed=seed)
    table = build_training_table(world.audience, world.exposures, world.enrolments, load_feature_set("default"),
                                 source="bench world")
    return world, table


def _models(table, names: list[str], folds: int | None):
    """Per model name: its validation report and the segment table of its training rows (the gate's)."""
    from uplift.modeling.validation import validate_model
    from uplift.pipeline import load_segment_spec
    from uplift.segments import build_segment_table
    from uplift.specs import load_spec
    from uplift.specs.model import ModelSpec

    spec = load_segment_spec()
    out = {}
    for name in names:
        model = load_spec(ROOT / "models" / f"{name}.yaml", ModelSpec)
        if folds:
            model = model.model_copy(update={"cv": model.cv.model_copy(update={"folds": folds})})
        report = validate_model(model, table)
        out[name] = (report, build_segment_table(report.train, report.oof, spec, folds=report.folds, heldout_fold=None))
    return out


def _true_conversions(cells: pd.DataFrame, true_effects: pd.Series) -> float:
    funded = cells[cells["contacts"] > 0]
    return float(sum(c * true_effects.get((s, a), np.nan) for s, a, c in zip(funded["segment"], funded["arm"],
                                                                             funded["contacts"], strict=True)))


def _term_truth(term, true_p: pd.DataFrame) -> float:
    """What a term's Hajek ratio estimates on these rows: its coefficient x the weighted mean true rate."""
    shares = term.shares.reindex(columns=true_p.columns, fill_value=0.0).to_numpy()
    weight = term.row_weight
    return term.coefficient * float((weight * (shares * true_p.to_numpy()).sum(axis=1)).sum() / weight.sum())


def run(args: argparse.Namespace) -> list[dict]:
    from uplift.allocation import plan
    from uplift.modeling.policyvalue import ipw_contrast
    from uplift.modeling.truthcheck import true_outcome_probabilities
    from uplift.pipeline import default_planning
    from uplift.segments import truth_segment_effects
    from uplift.tracking.evidence import plan_terms

    started = time.perf_counter()
    world, table = _world(args.people, args.waves, args.seed)
    models = _models(table, args.models, args.folds)
    (first, (report, champion)), (second, (_, challenger)) = models.items()
    planning = default_planning()
    test, train = report.test, report.train
    true_p = true_outcome_probabilities(test.frame[["person_id", "wave"]], world.truth, test.arms, "registration")
    train_p = true_outcome_probabilities(train.frame[["person_id", "wave"]], world.truth, train.arms, "registration")
    true_effects = truth_segment_effects(train, train_p, planning.segments).set_index(["segment", "arm"])["true_effect"]
    arm, propensity, y = test.frame["arm"].to_numpy(), test.propensity(), test.frame["outcome"].to_numpy()
    own_p = true_p.to_numpy()[np.arange(len(arm)), pd.Index(true_p.columns).get_indexer(arm)]
    alpha = 2 * (1 - args.confidence)
    rows = []
    for budget in args.budgets:
        common = dict(rows=test, planning=planning, budget=budget)
        mine = plan_terms("the challenger", challenger, sign=1.0, **common)
        theirs = plan_terms("the champion", champion, sign=-1.0, **common)
        terms = mine.terms + theirs.terms
        gain = ipw_contrast(y, arm, propensity, terms, alpha=alpha)
        held_truth = sum(_term_truth(t, true_p) for t in terms)
        rng = np.random.default_rng(args.seed)
        draws = [ipw_contrast((rng.uniform(size=len(arm)) < own_p).astype(int), arm, propensity, terms, alpha=alpha)
                 for _ in range(args.redraws)]
        cells = {name: plan(segments[segments["kind"] == "targetable"], budget=budget, costs=planning.costs,
                            policy=planning.policy, references=False).cells
                 for name, segments in ((first, champion), (second, challenger))}
        rows.append({
            "budget": budget,
            f"{second} - {first}: gain": f"{gain.value:+.1f} [{gain.lo:+.1f}, {gain.hi:+.1f}]",
            "promoted": "yes" if gain.lo > 0 else "no",
            f"true: {first}": round(_true_conversions(cells[first], true_effects), 1),
            f"true: {second}": round(_true_conversions(cells[second], true_effects), 1),
            "true gain on the held-out rows": round(held_truth, 1),
            "coverage": float(np.mean([d.lo <= held_truth <= d.hi for d in draws])),
            "sd of estimate": round(float(np.std([d.value for d in draws])), 1),
            "mean se": round(float(np.mean([d.se for d in draws])), 1),
            "promoted (redraws)": float(np.mean([d.lo > 0 for d in draws])),
        })
    print(f"{len(table.frame):,} person-waves, {len(test.frame):,} held out; {time.perf_counter() - started:.0f} s")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--waves", type=int, default=4)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--models", nargs=2, default=["pooled_lightgbm", "t_shared_lightgbm"],
                   help="champion, then challenger (names in models/)")
    p.add_argument("--folds", type=int, help="cross-fitting folds (default: the specs')")
    p.add_argument("--budgets", nargs="+", type=float, default=[1_000, 2_000, 5_000])
    p.add_argument("--confidence", type=float, default=0.95, help="of the gate's one-sided bound")
    p.add_argument("--redraws", type=int, default=300)
    args = p.parse_args(argv)
    table = pd.DataFrame(run(args))
    print(f"intervals: two-sided {2 * args.confidence - 1:.0%} (lower end = the gate's one-sided "
          f"{args.confidence:.0%} bound); coverage and promotion rates over {args.redraws} redraws")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
