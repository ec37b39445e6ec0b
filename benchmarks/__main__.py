"""``python -m benchmarks [--quick] --out DIR --hillstrom PATH [--seeds ...]``: the evidence report.

Writes ``DIR/report.md`` and its PNG figures: targeting quality on a real experiment
(:mod:`benchmarks.targeting`), plans against the oracle on the simulator
(:mod:`benchmarks.decisions`), speed and memory (:mod:`benchmarks.speed`). ``--quick`` runs in
minutes; the full mode is for the README figures. Every size can be set on the command line.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.decisions import DecisionSettings, run_decisions
from benchmarks.netview import NetLevels
from benchmarks.report import render_report, write_figures
from benchmarks.speed import SpeedSettings, run_speed
from benchmarks.targeting import LEARNER_NOTES, TargetingSettings, run_targeting
from uplift.data.tableio import write_table

__all__ = ["main", "parse_args", "SECTIONS"]

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("targeting", "decisions", "speed")

QUICK = {"outcomes": ["visit"], "repeats": 2, "folds": 3, "seeds": [1], "budget_shares": [0.05, 0.2],
         "people": 20_000, "waves": 3, "sim_folds": 3, "speed_rows": 50_000, "forest_sample": 10_000,
         "scoring_args": "--rows 300000 --throughput-rows 100000",
         "service_args": "--people 20000 --requests 100 --time-limit 20 --repeats 2",
         "frontier_ratios": [0.3, 0.6, 1.2], "frontier_repeats": 1}
FULL = {"outcomes": ["visit", "conversion"], "repeats": 5, "folds": 5, "seeds": [1, 2, 3],
        "budget_shares": [0.02, 0.05, 0.1, 0.2, 0.4], "people": 100_000, "waves": 4, "sim_folds": 5,
        "speed_rows": 1_000_000, "forest_sample": 100_000, "scoring_args": "", "service_args": "",
        "frontier_ratios": [0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0], "frontier_repeats": 3}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; sizes left unset take the quick or the full defaults."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="minutes instead of the full mode")
    p.add_argument("--out", type=Path, required=True, help="folder for report.md and the figures")
    p.add_argument("--hillstrom", type=Path, default=ROOT.parent / "shared" / "data" / "hillstrom.csv",
                   help="experiment CSV for the targeting benchmark (any randomised multi-arm CSV with --mapping)")
    p.add_argument("--mapping", type=Path, default=ROOT / "features" / "datasets" / "hillstrom.yaml")
    p.add_argument("--outcomes", nargs="+")
    p.add_argument("--repeats", type=int)
    p.add_argument("--folds", type=int)
    p.add_argument("--learners", nargs="+", choices=list(LEARNER_NOTES), default=list(LEARNER_NOTES))
    p.add_argument("--rows", type=int, help="use a seeded sample of the experiment's rows")
    p.add_argument("--net-value", type=float, default=1.0,
                   help="value of one conversion for the net-value view of the targeting benchmark")
    p.add_argument("--net-costs", nargs="*", type=float, default=[0.03, 0.07, 0.10],
                   help="costs per contact of the net-value view (none = skip it); the defaults bracket the "
                        "break-even of Hillstrom's visits at a value of 1 (average effects 7.7 and 4.5 pp)")
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--budget-shares", nargs="+", type=float, help="budgets as shares of the full-reach spend")
    p.add_argument("--people", type=int)
    p.add_argument("--waves", type=int)
    p.add_argument("--sim-folds", type=int, help="CV folds of the pooled model on the simulator")
    p.add_argument("--messages", nargs="+", help="simulate only these messages (tiny runs)")
    p.add_argument("--channels", nargs="+", help="simulate only these channels (tiny runs)")
    p.add_argument("--frontier-ratios", nargs="*", type=float,
                   help="noise ratios of the decisions' noise frontier (none = skip it)")
    p.add_argument("--frontier-repeats", type=int, help="noise draws per ratio of the noise frontier")
    p.add_argument("--no-true-form", action="store_true",
                   help="skip planning from the simulator's response model fitted to each world (minutes per world)")
    p.add_argument("--speed-rows", type=int, help="person-waves for the speed benchmark")
    p.add_argument("--speed-learners", nargs="+", choices=["pooled", "t_shared"], default=["pooled", "t_shared"],
                   help="our learners timed on all rows")
    p.add_argument("--forest-sample", type=int, help="rows the uplift forest is fitted on before scaling")
    p.add_argument("--planning-segments", type=int, help="segments of the planning benchmark (556 = 10,008 cells)")
    p.add_argument("--threads", type=int, default=1, help="LightGBM threads per fit")
    p.add_argument("--no-external", action="store_true", help="do not run bench_scoring / bench_service")
    p.add_argument("--scoring-args", help="arguments for benchmarks/bench_scoring.py (quick: --rows 300000)")
    p.add_argument("--service-args", help="arguments for benchmarks/bench_service.py (default: its own)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks and write the report; returns the exit code."""
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    results, skipped, seconds = {}, {}, {}
    if "targeting" in args.only:
        if not args.hillstrom.exists():
            skipped["targeting"] = f"{args.hillstrom} does not exist (pass --hillstrom PATH)"
        else:
            start = time.perf_counter()
            settings = TargetingSettings(csv=args.hillstrom, mapping=args.mapping, outcomes=tuple(args.outcomes),
                                         repeats=args.repeats, folds=args.folds, learners=tuple(args.learners),
                                         rows=args.rows, threads=args.threads,
                                         net=NetLevels(args.net_value, tuple(args.net_costs))
                                         if args.net_costs else None)
            results["targeting"] = run_targeting(settings, root=ROOT, progress=say)
            seconds["targeting"] = time.perf_counter() - start
    if "decisions" in args.only:
        start = time.perf_counter()
        settings = DecisionSettings(people=args.people, waves=args.waves, seeds=tuple(args.seeds),
                                    budget_shares=tuple(args.budget_shares), folds=args.sim_folds,
                                    messages=tuple(args.messages) if args.messages else None,
                                    channels=tuple(args.channels) if args.channels else None, threads=args.threads,
                                    frontier_ratios=tuple(args.frontier_ratios),
                                    frontier_repeats=args.frontier_repeats, true_form=not args.no_true_form)
        results["decisions"] = run_decisions(settings, root=ROOT, progress=say)
        seconds["decisions"] = time.perf_counter() - start
        for name in ("plans", "floors"):  # the scored plans and floors, for analyses beyond the report
            write_table(getattr(results["decisions"], name), out / f"decisions_{name}.csv")
    if "speed" in args.only:
        start = time.perf_counter()
        planning = ("--repeats", "3") + (("--segments", str(args.planning_segments)) if args.planning_segments else ())
        settings = SpeedSettings(rows=args.speed_rows, forest_sample=args.forest_sample, threads=args.threads,
                                 learners=tuple(args.speed_learners),
                                 planning_argv=planning, external=not args.no_external,
                                 external_argv={"scoring": tuple(shlex.split(args.scoring_args)),
                                                "service": tuple(shlex.split(args.service_args))})
        results["speed"] = run_speed(settings, workdir=out / "speed_work", progress=say)
        seconds["speed"] = time.perf_counter() - start
    for name in SECTIONS:
        if name not in args.only:
            skipped.setdefault(name, "not selected (--only)")
    figures = write_figures(out, **results)
    header = [
        f"# uplift benchmarks ({'quick' if args.quick else 'full'} mode)", "",
        f"Command: `python -m benchmarks {shlex.join(argv if argv is not None else sys.argv[1:])}`  ",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"Python {platform.python_version()}; section times: "
        + (", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) or "none"),
    ]
    text = render_report(header=header, figures=figures, skipped=skipped, **results)
    (out / "report.md").write_text(text)
    say(f"wrote {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
