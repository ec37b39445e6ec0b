"""Plans of the planning benchmark's table under several policies, to check that a change of the planner's code
changes no plan: ``python benchmarks/plan_objectives.py --out A.json`` under one source tree (``PYTHONPATH``),
again under another, then ``python benchmarks/plan_objectives.py --compare A.json B.json``.

Per plan it records the exploitation LP's objective with the exploration (expected conversions of the LP's
fractional contacts), the rounded plan's expected conversions, its status, conflicts and notes. The table is
:func:`benchmarks.bench_planning.synthetic_effects` without its composition columns and the policies are stated
here in the fields every version of the policy has, so any two trees plan the same problems.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
BASE = {"min_spend": {"flyer": 500.0}, "max_spend": {"linkedin": 3000.0}, "max_segment_share": 0.25,
        "holdout_share": 0.10, "exploration_share": 0.10, "exploration_draws": 8, "floor_draws": 16, "interval": 0.8,
        "seed": 20250101}
"""The shipped policy's rules without its floors."""
SPEND_FLOORS = [
    {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.40},
    {"name": "over_45", "where": {"age_band": ["45-54", "55-67"]}, "kind": "spend_share", "min_share": 0.30},
]
BINDING = {"max_segment_share": 0.004, "fairness_floors": [
    {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.6},
    {"name": "over_45", "where": {"age_band": ["45-54", "55-67"]}, "kind": "conversion_share", "min_share": 0.5}]}


def _plans() -> dict[str, dict]:
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_planning import synthetic_effects
    from uplift.allocation import prepare_plan
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    costs = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
    base = {**BASE, "fairness_floors": SPEND_FLOORS}
    binding = {**base, **BINDING}
    confident = {**binding, "fairness_floors": [{**f, "confidence": 0.9} if f["kind"] == "conversion_share" else f
                                                for f in BINDING["fairness_floors"]]}
    conflicting = {**base, "min_spend": {**base["min_spend"], "linkedin": 2000.0},
                   "max_spend": {**base["max_spend"], "linkedin": 2000.0},
                   "fairness_floors": [{**SPEND_FLOORS[0], "min_share": 0.97}]}
    effects = synthetic_effects(556, 6)
    effects = effects[[c for c in effects.columns if not c.startswith("group__") and c != "municipality"]]
    out = {}
    for name, policy, budgets in (("default", base, (30_000, 60_000, 90_000)),
                                  ("no_exploration", {**base, "exploration_share": 0.0}, (60_000,)),
                                  ("binding", binding, (60_000, 90_000)), ("confident", confident, (60_000, 90_000)),
                                  ("conflicting", conflicting, (60_000,))):
        prepared = prepare_plan(effects, costs=costs, policy=PlanningPolicy.model_validate(policy))
        for budget in budgets:
            explored, solution, _ = prepared._explored_and_exploited(float(budget))
            result = prepared.plan(budget=float(budget))
            out[f"{name}@{budget}"] = {
                "lp": float(prepared.problem.effect @ (solution.allocation + explored).x),
                "conversions": result.totals.expected_conversions, "status": result.status,
                "conflicts": list(result.conflicts), "notes": list(result.notes)}
    return out


def _compare(a: dict, b: dict) -> int:
    worst = 0.0
    for key in a:
        gap = max(abs(a[key][f] - b[key][f]) / max(abs(a[key][f]), 1e-12) for f in ("lp", "conversions"))
        same = all(a[key][f] == b[key][f] for f in ("status", "conflicts", "notes"))
        worst = max(worst, gap)
        print(f"{key}: LP objective {a[key]['lp']:.10f} / {b[key]['lp']:.10f}, relative difference {gap:.2e}, "
              f"status, conflicts and notes {'the same' if same else 'DIFFER'}")
    print(f"largest relative difference: {worst:.2e}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Write the plans' figures (``--out``) or compare two such files (``--compare``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path)
    args = parser.parse_args(argv)
    if args.compare:
        return _compare(*(json.loads(p.read_text()) for p in args.compare))
    if args.out is None:
        parser.error("give --out FILE or --compare A B")
    args.out.write_text(json.dumps(_plans(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
