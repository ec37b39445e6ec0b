"""Where a world's plans lose: the arms' levels or the cells' deviations within the arms.

    python -m benchmarks.planloss --cache out/cache --worlds family-102-102 haaglanden-2 --out out/planloss

Per cached world of the family benchmark (:mod:`benchmarks.family`, at 100,000 people x 4 waves), the
targetable segment table is built as shipped and the recommended plan (shipped policy without exploration)
is made at 5, 10 and 20% of the full-reach spend from three sets of effects, each scored under the
world's truth as a share of the oracle:

- ``estimates``: the table's effects;
- ``estimated levels + true deviations``: each arm's estimated level (its effects' mean over the cells,
  weighted by their rows) with the truth's deviations from the truth's level;
- ``true levels + estimated deviations``: the truth's level with the estimates' deviations.

What the second buys over the first is what the within-arm estimates cost; the third, what the levels cost.
``planloss.csv`` and ``report.md`` are written to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.report import markdown_table

__all__ = ["VARIANTS", "arm_levels_of", "hybrid_effects", "main", "plan_loss"]

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = ("estimates", "estimated levels + true deviations", "true levels + estimated deviations")


def arm_levels_of(arm: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per line, its arm's mean of ``values`` over the arm's lines, weighted by their ``rows``."""
    frame = pd.DataFrame({"arm": arm, "wv": rows * values, "w": rows})
    sums = frame.groupby("arm")[["wv", "w"]].sum()
    return pd.Series(arm).map(sums["wv"] / sums["w"]).to_numpy(dtype=float)


def hybrid_effects(arm: np.ndarray, rows: np.ndarray, estimate: np.ndarray,
                   truth: np.ndarray) -> dict[str, np.ndarray]:
    """The three sets of effects of :data:`VARIANTS` (see the module docstring)."""
    level_e, level_t = arm_levels_of(arm, rows, estimate), arm_levels_of(arm, rows, truth)
    return {VARIANTS[0]: estimate, VARIANTS[1]: level_e + (truth - level_t),
            VARIANTS[2]: level_t + (estimate - level_e)}


def plan_loss(world, segment_spec, *, root: Path = ROOT, people: int = 100_000,
              budget_shares: Sequence[float] = (0.05, 0.1, 0.2)) -> dict[str, float]:
    """The world's recommended plan's share of the oracle from each of :data:`VARIANTS` (means over the
    budgets), and the single best message's from the estimates; ``people`` scales the shipped policy's
    channel limits as the family benchmark does (the world's simulated people)."""
    from benchmarks.family import _policies, budgets_at, world_tables
    from uplift.evaluation import compare_with_oracle

    _, estimated, truth = world_tables(world, segment_spec)
    costs, policies = _policies(root, people, set(estimated["channel"]))
    budgets = budgets_at(estimated, costs, budget_shares)
    variants = hybrid_effects(estimated["arm"].to_numpy(), estimated["rows"].to_numpy(dtype=float),
                              estimated["effect"].to_numpy(dtype=float), truth["effect"].to_numpy(dtype=float))
    out = {"world": world.name}
    for name, effect in variants.items():
        plans = compare_with_oracle(estimated.assign(effect=effect), truth, budgets=budgets, costs=costs,
                                    policy=policies["no_exploration"]).plans
        out[name] = float(plans.loc[plans["plan"] == "recommended", "share_of_oracle"].mean())
        if name == VARIANTS[0]:
            out["single best message"] = float(plans.loc[plans["plan"] == "single_best_message",
                                                         "share_of_oracle"].mean())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.planloss", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="the family benchmark's cache of worlds")
    parser.add_argument("--worlds", nargs="+", required=True, help="world folders' names without the size suffix")
    parser.add_argument("--people", type=int, default=100_000, help="the cached worlds' people")
    parser.add_argument("--size", default="100000x4-f5", help="the cached worlds' size suffix")
    parser.add_argument("--out", type=Path, required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    from benchmarks.worlds import WorldData
    from uplift.pipeline import load_segment_spec

    spec = load_segment_spec(str(ROOT / "features" / "segments.yaml"))
    rows = []
    for name in args.worlds:
        folder = args.cache / f"{name}-{args.size}"
        if not (folder / "world.json").exists():
            parser.error(f"--worlds: no cached world at {folder}")
        rows.append(plan_loss(WorldData.load(folder), spec, people=args.people))
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    frame = pd.DataFrame(rows)
    frame = pd.concat([frame, frame.drop(columns="world").mean().to_frame().T.assign(world="mean")],
                      ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "planloss.csv.tmp"
    frame.to_csv(tmp, index=False)
    tmp.replace(args.out / "planloss.csv")
    shown = frame.assign(**{c: (100 * frame[c]).round(1) for c in frame.columns if c != "world"})
    text = (f"# Where the plans lose\n\nCommand: `python -m benchmarks.planloss {' '.join(argv)}`\n\n"
            "Recommended plan without exploration, share of the oracle in % (means over the budgets):\n\n"
            + markdown_table(shown) + "\n")
    (args.out / "report.md.tmp").write_text(text)
    (args.out / "report.md.tmp").replace(args.out / "report.md")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
