"""What the disclosure policy leaves of a segment table: how many cells are small, how many figures are released.

Simulates the default region (all 18 arms), fits a small pooled learner (30 trees, two folds), builds the segment
table and releases it under ``serve/disclosure.yaml`` (:func:`uplift.segments.release.released_segments`). Prints
the small cells of the internal table and the released share of each raw figure, and the time the release takes.

Run: ``.venv/bin/python benchmarks/bench_disclosure.py --people 100000 --waves 4 --seed 7`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"name": "bench_disclosure", "learner": "pooled", "cv": {"folds": 2, "test_share": 0.3, "seed": 0},
         "lightgbm": {"n_estimators": 30, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 100, "n_jobs": 1}}


def segment_table(people: int, waves: int, seed: int):
    """The internal segment table of a small pooled model on a simulated default-region world."""
    from uplift.features import build_training_table
    from uplift.modeling.validation import validate_model
    from uplift.pipeline import load_feature_set, load_segment_spec
    from uplift.segments import build_segment_table
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.model import ModelSpec
    from uplift.specs.region import RegionSpec

    region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    world = simulate(region, people=people, waves=waves, seed=seed)
    table = build_training_table(world.audience, world.exposures, world.enrolments, load_feature_set("default"),
                                 source="simulated default region")
    report = validate_model(ModelSpec.model_validate(SMALL), table)
    folds, heldout = report.out_of_sample_folds()
    return build_segment_table(*report.out_of_sample(), load_segment_spec(), folds=folds, heldout_fold=heldout)


def main() -> None:
    from uplift.segments import released_segments
    from uplift.specs.disclosure import load_disclosure_policy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    policy = load_disclosure_policy()
    seg = segment_table(args.people, args.waves, args.seed)
    t, per_segment = policy.threshold, seg.drop_duplicates("segment")
    print(f"{args.people:,} people x {args.waves} waves, seed {args.seed}: {len(seg):,} rows, "
          f"{seg['segment'].nunique()} segments, {seg['arm'].nunique()} arms; threshold {t}, "
          f"base {policy.rounding_base}")
    print(f"internal: rows n_treated < {t}: {(seg['n_treated'] < t).sum()}; people_treated < {t}: "
          f"{(seg['people_treated'] < t).sum()}; converters_treated < {t}: {(seg['converters_treated'] < t).sum()}; "
          f"segments with people_control < {t}: {(per_segment['people_control'] < t).sum()}, "
          f"with converters_control < {t}: {(per_segment['converters_control'] < t).sum()}")
    start = time.perf_counter()
    released = released_segments(seg, policy)
    seconds = time.perf_counter() - start
    n = len(released)
    shown = {c: int(released[c].notna().sum()) for c in ("people_treated", "people_control", "base_rate", "observed")}
    secondary = int(released["withheld"].str.contains("hidden with a smaller cell").sum())
    print(f"released in {seconds:.2f} s: " + ", ".join(f"{c} {k:,} of {n:,}" for c, k in shown.items())
          + f"; {secondary} rows with a cell hidden to protect another")


if __name__ == "__main__":
    main()
