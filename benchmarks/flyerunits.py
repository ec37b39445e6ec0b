"""Flyer lines per neighbourhood against per municipality, side by side on captured family worlds.

For each world (a folder written by :class:`benchmarks.worlds.WorldData`, e.g. the family benchmark's ``--cache``)
and budget: the shipped policy's plan and its oracle (the same solver on the true effects) made twice, once with a
flyer line per municipality and message (the segment table alone) and once per print unit and message (with the
world's places, :func:`uplift.places.places_table`: neighbourhoods, small ones merged to the anonymity floor). Each
plan's cells are scored under the world's true cell effects (:func:`uplift.evaluation.compare_with_oracle`), so
a neighbourhood line gains where its mix of cells responds better; the truth is per cell, not per neighbourhood.
Reported per world and budget: true conversions, share of each way's own oracle and of the better oracle, the flyer
lines and units the recommended plan buys, and the seconds each way took.

    python -m benchmarks.flyerunits --worlds out/cache/family-1001-1001-100000x4-f5 ... --out out/bench-flyerunits
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.family import _policies, budgets_at, world_tables
from benchmarks.report import markdown_table
from benchmarks.worlds import WorldData

ROOT = Path(__file__).resolve().parents[1]


def world_places(world: WorldData, estimated: pd.DataFrame, segment_spec, min_size: int) -> pd.DataFrame:
    """The places of the world's targetable cells: its people (one row each, their last wave's attributes) per
    cell and print unit, with the shares of the priority groups (the world region's deprivation)."""
    from uplift.pipeline import load_priority_groups
    from uplift.places import places_table

    people = world.rows.frame.drop_duplicates("person_id", keep="last")
    return places_table(people, estimated["segment"].astype(str), segment_spec, min_size=min_size,
                        groups=load_priority_groups(region=world.region), source=world.name)


def _flyer_lines(prepared, budget: float) -> tuple[int, int, float]:
    """The recommended plan's flyer lines, the print units (or municipalities) they cover and the flyer spend."""
    result = prepared.plan(budget=budget, prices=False, references=False)
    cells = result.cells
    flyer = cells[(cells["channel"] == "flyer") & (cells["contacts"] > 0)]
    if result.unit_lines is not None:
        lines = result.unit_lines[result.unit_lines["channel"] == "flyer"]
        return len(lines), int(lines["unit"].nunique()), float(lines["spend"].sum())
    place = flyer["segment"].str.extract(r"municipality=([^|]+)")[0]
    return int(len(set(zip(flyer["message"], place, strict=True)))), int(place.nunique()), float(flyer["spend"].sum())


def neighbourhood_floor(policy, min_contacts: float):
    """``policy`` with its coverage floors per municipality replaced by one per print unit: every unit with residents
    of poorer neighbourhoods at least ``min_contacts`` flyer contacts with them."""
    from uplift.specs.planning import PlanningPolicy

    floors = [f.model_dump() for f in policy.coverage_floors if f.area != "municipality"]
    floors.append({"name": "poorer_units", "area": "neighbourhood", "group": "poorer_neighbourhoods",
                   "channels": ["flyer"], "min_contacts": min_contacts, "segment_kinds": ["targetable"]})
    return PlanningPolicy.model_validate({**policy.model_dump(), "coverage_floors": floors})


def score_world(folder: Path, budget_shares: Sequence[float], say, unit_floor: float | None = None) -> pd.DataFrame:
    """One world's rows of the comparison (see the module's docstring); with ``unit_floor``, a third way: per print
    unit under :func:`neighbourhood_floor`."""
    from uplift.allocation import prepare_plan
    from uplift.evaluation import compare_with_oracle
    from uplift.pipeline import load_segment_spec
    from uplift.specs.disclosure import DisclosurePolicy

    world = WorldData.load(folder)
    spec = load_segment_spec()
    _, estimated, truth = world_tables(world, spec)
    people = int(world.rows.frame["person_id"].nunique())
    costs, policies = _policies(ROOT, people, set(estimated["channel"]))
    policy = policies["shipped"]
    places = world_places(world, estimated, spec, max(spec.min_size, DisclosurePolicy().threshold))
    budgets = budgets_at(estimated, costs, budget_shares)
    say(f"{world.name}: {len(estimated)} cells, {places['unit'].nunique()} print units, budgets {budgets}")
    out = []
    ways = [("municipality", None, policy), ("neighbourhood", places, policy)]
    if unit_floor is not None:
        ways.append((f"neighbourhood, {unit_floor:g} per poorer unit", places, neighbourhood_floor(policy, unit_floor)))
    for lines, where, rules in ways:
        start = time.perf_counter()
        plans = compare_with_oracle(estimated, truth, budgets=budgets, costs=costs, policy=rules, places=where).plans
        seconds = time.perf_counter() - start
        prepared = prepare_plan(estimated, costs=costs, policy=rules, places=where)
        for budget, share in zip(budgets, budget_shares, strict=True):
            at = plans[plans["budget"] == budget].set_index("plan")
            bought, units, spend = _flyer_lines(prepared, budget)
            out.append({"world": world.name, "budget_share": share, "budget": budget, "flyer_lines": lines,
                        "status": at.loc["recommended", "status"],
                        "true_conversions": at.loc["recommended", "true_conversions"],
                        "oracle_true_conversions": at.loc["oracle", "true_conversions"],
                        "share_of_own_oracle": at.loc["recommended", "share_of_oracle"],
                        "lines_bought": bought, "places_bought": units, "flyer_spend": spend,
                        "seconds": seconds})
        say(f"{world.name}: {lines} lines in {seconds:.0f} s")
    frame = pd.DataFrame(out)
    best = frame.groupby(["world", "budget"])["oracle_true_conversions"].transform("max")
    frame["share_of_best_oracle"] = frame["true_conversions"] / best
    return frame


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.flyerunits", description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=Path, nargs="+", required=True, help="captured world folders")
    p.add_argument("--budget-shares", type=float, nargs="+", default=[0.1])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--unit-floor", type=float, help="also plan per unit with this many flyer contacts per poorer unit "
                                                    "in place of the coverage floor per municipality")
    args = p.parse_args(argv)

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    frame = pd.concat([score_world(f, args.budget_shares, say, args.unit_floor) for f in args.worlds],
                      ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "flyerunits.csv", index=False)
    command = "python -m benchmarks.flyerunits " + shlex.join(argv if argv is not None else sys.argv[1:])
    columns = ["world", "budget_share", "flyer_lines", "status", "true_conversions", "share_of_own_oracle",
               "share_of_best_oracle", "lines_bought", "places_bought", "flyer_spend", "seconds"]
    (args.out / "report.md").write_text("\n".join([
        "# Flyer lines per neighbourhood against per municipality", "", f"`{command}`", "",
        markdown_table(frame[columns].round(3)), ""]))
    say(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
