"""What each shipped floor costs in truth on the family of worlds, and whether it holds there:
``python -m benchmarks.floorcost --out DIR --cache DIR``.

On the first ten generated worlds of the family benchmark (:mod:`benchmarks.family`, seeds 101-110) and
Haaglanden's seeds 1-2, at 5, 10 and 20% of the full-reach spend, the segment table is planned with the
shipped policy (``serve/policy.yaml``, scaled to the world as :func:`benchmarks.decisions.scaled_policy` does),
with each of its floors removed in turn (``without_<floor>``), with all of them removed (``no_floors``), and
with a conversion-share floor held at 90% confidence added (``with_<floor>``, :data:`CONVERSION_FLOOR`; the
shipped policy has none, so that its claim is tested too). Every plan is scored under the world's truth
(:func:`uplift.evaluation.compare_with_oracle`). Per world, budget and floor (:func:`floor_rows`):

- the recommended plan's true conversions with the floor and without it, both as a share of the oracle that
  need not hold the floor; the true conversions the floor gives up, and the oracle's own (what the floor
  costs a planner who knows the truth);
- the planner's own stated price of the rule (:class:`uplift.allocation.prices.RulePrice` of the plan with
  the floor: the expected conversions of the plan without it beyond the plan, with its interval) next to
  the true conversions given up: is the stated price honest?
- whether the floor binds at that plan, and whether it holds under the truth (a spend or contact share
  always must; a conversion share at its stated confidence), and for a coverage floor its worst area's
  contacts over its minimum;
- a floor the world's segment table cannot apply (a priority group its data do not count, nobody in the
  group) is ``not applicable``, with the reason.

Over the worlds (:func:`floor_summary`), per floor and per kind of world (generated or Haaglanden; handing
over every attribute the region's response model reads, or fewer): means, worsts and counts.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.decisions import scaled_policy
from benchmarks.family import (
    FamilySettings,
    budgets_at,
    family_worlds,
    load_world,
    missing_form_attributes,
    world_tables,
)
from benchmarks.headline import HeadlineRow, record
from benchmarks.report import markdown_table
from benchmarks.worlds import WorldData
from uplift.specs.planning import CostCatalogue, FairnessFloor, PlanningPolicy

__all__ = ["CONVERSION_FLOOR", "FloorStudy", "FloorCostResult", "floor_policies", "floor_rows", "floor_summary",
           "main", "run_floorcost", "score_world_floors"]

ROOT = Path(__file__).resolve().parents[1]

CONVERSION_FLOOR = FairnessFloor(name="women_conversions", where={"gender": "female"}, kind="conversion_share",
                                 min_share=0.40, confidence=0.9, segment_kinds=("targetable",))
"""The conversion-share floor added when the shipped policy has none held with a confidence: women's share of
the plan's expected conversions at least the 40% the shipped ``women`` floor asks of the spend, held with 90%
confidence under the effects' uncertainty."""


@dataclass(frozen=True)
class FloorStudy:
    """One floor's price: the plans of policy ``with_policy`` (that holds it) against those of ``without_policy``
    (the same policy without it). ``floor`` is the floor's name (``all floors`` for every floor at once) and
    ``kind`` its kind (``spend_share``, ``contact_share``, ``conversion_share``, ``coverage`` or ``all``)."""

    floor: str
    kind: str
    with_policy: str
    without_policy: str
    confidence: float = float("nan")


def floor_policies(policy: PlanningPolicy, added: FairnessFloor | None = CONVERSION_FLOOR,
                   ) -> tuple[dict[str, PlanningPolicy], tuple[FloorStudy, ...]]:
    """The policies to plan with and the floors' studies: ``shipped`` (``policy``), ``without_<floor>`` for every
    fairness and coverage floor of it, ``no_floors``, and -- when ``policy`` has no conversion-share floor held
    with a confidence above 0.5 -- ``with_<added>`` (``policy`` plus ``added``)."""
    policies = {"shipped": policy}
    studies = []
    floors = [(f.name, f.kind, f.confidence if f.kind == "conversion_share" else float("nan"))
              for f in policy.fairness_floors] + [(c.name, "coverage", float("nan")) for c in policy.coverage_floors]
    for name, kind, confidence in floors:
        policies[f"without_{name}"] = policy.model_copy(update={
            "fairness_floors": tuple(f for f in policy.fairness_floors if f.name != name),
            "coverage_floors": tuple(c for c in policy.coverage_floors if c.name != name)})
        studies.append(FloorStudy(name, kind, "shipped", f"without_{name}", confidence))
    policies["no_floors"] = policy.model_copy(update={"fairness_floors": (), "coverage_floors": ()})
    studies.append(FloorStudy("all floors", "all", "shipped", "no_floors"))
    confident = any(f.kind == "conversion_share" and f.confidence > 0.5 for f in policy.fairness_floors)
    if added is not None and not confident:
        policies[f"with_{added.name}"] = policy.model_copy(
            update={"fairness_floors": (*policy.fairness_floors, added)})
        studies.append(FloorStudy(added.name, added.kind, f"with_{added.name}", "shipped", added.confidence))
    return policies, tuple(studies)


def _rule_name(study: FloorStudy) -> str:
    return f"{'coverage' if study.kind == 'coverage' else 'fairness'} floor {study.floor!r}"


def _priced(prepared, budget: float, policy_name: str, studies: Sequence[FloorStudy]) -> list[dict]:
    """The plan of ``prepared`` at ``budget`` with its rule prices: one row per floor of ``studies`` held by
    ``policy_name`` (status, stated cost and interval; ``applies`` False with the reason when the plan is not
    bound by it)."""
    result = prepared.plan(budget=budget, references=False, prices=True)
    rules = {r.rule: r for r in result.rules}
    checks = {f.name: f for f in result.floors}
    ratio = max(prepared.promise.ratio, 0.0) if prepared.promise is not None else float("nan")
    rows = []
    for study in studies:
        if study.with_policy != policy_name or study.kind == "all":
            continue
        rule, check = rules.get(_rule_name(study)), checks.get(study.floor)
        reason = ""
        if check is not None and check.status == "not_applicable":
            reason = check.reason or "a plan over this kind of segment (its segment_kinds)"
        elif rule is None:
            reason = _no_rule_reason(prepared, study)
        rows.append({"budget": float(budget), "floor": study.floor, "applies": not reason, "reason": reason,
                     "plan_status": result.status, "rule_status": rule.status if rule else "",
                     "stated_cost": rule.cost if rule else float("nan"),
                     "stated_lo": rule.lo if rule else float("nan"), "stated_hi": rule.hi if rule else float("nan"),
                     "promise_ratio": ratio})
    return rows


def _no_rule_reason(prepared, study: FloorStudy) -> str:
    """Why the plan of ``prepared`` has no rule for ``study``'s floor (it declares one for every floor it holds)."""
    from uplift.allocation.effects import GROUP_PREFIX, counts_group

    cover = next((c for c in prepared.policy.coverage_floors if c.name == study.floor), None)
    if cover is None:
        return "the plan declares no rule for it"
    if cover.group is None:
        return f"the segment table has no {cover.area} area"
    if not counts_group(prepared.frame, cover.group):
        return (f"its segments do not count priority group {cover.group!r} (the data lack attributes its rule "
                "reads)")
    if not (prepared.frame[GROUP_PREFIX + cover.group].fillna(0) > 0).any():
        return f"nobody in priority group {cover.group!r} in any segment (the region has no such people)"
    return f"no {cover.area} area with people in priority group {cover.group!r}"


def score_world_floors(world: WorldData, segment_spec, *, root: Path, people: int, budget_shares: Sequence[float],
                       ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, tuple[FloorStudy, ...]]:
    """Plan ``world``'s targetable segment table with every policy of :func:`floor_policies` at every budget and
    score the plans under its truth. Returns the plans (:data:`uplift.evaluation.PLAN_SCORE_COLUMNS` plus
    ``policy`` and ``budget_share``), the floors under the truth (:data:`uplift.evaluation.FLOOR_COLUMNS` plus
    ``policy``), the rule prices of the plans holding each floor (:func:`_priced`) and the studies."""
    from uplift.allocation import prepare_plan
    from uplift.evaluation import compare_with_oracle
    from uplift.specs import load_spec

    _, estimated, truth = world_tables(world, segment_spec)
    costs = load_spec(root / "serve" / "costs.yaml", CostCatalogue)
    shipped = scaled_policy(load_spec(root / "serve" / "policy.yaml", PlanningPolicy), people,
                            set(estimated["channel"]))
    policies, studies = floor_policies(shipped)
    budgets = budgets_at(estimated, costs, budget_shares)
    shares = dict(zip(budgets, budget_shares, strict=True))
    plans, floors, prices = [], [], []
    for name, policy in policies.items():
        compared = compare_with_oracle(estimated, truth, budgets=budgets, costs=costs, policy=policy)
        plans.append(compared.plans.assign(policy=name, budget_share=compared.plans["budget"].map(shares)))
        floors.append(compared.floors.assign(policy=name))
        if any(s.with_policy == name and s.kind != "all" for s in studies):
            prepared = prepare_plan(estimated, costs=costs, policy=policy, source="estimated")
            prices += [{**row, "policy": name} for budget in budgets
                       for row in _priced(prepared, budget, name, studies)]
    return (pd.concat(plans, ignore_index=True), pd.concat(floors, ignore_index=True), pd.DataFrame(prices),
            studies)


FLOOR_ROW_COLUMNS: tuple[str, ...] = (
    "world", "kind", "data", "budget", "budget_share", "floor", "floor_kind", "applies", "reason", "binds",
    "rule_status", "share_with", "share_without", "own_share_with", "own_share_without", "true_cost",
    "oracle_true_cost", "stated_cost", "stated_lo", "stated_hi", "stated_covers", "estimated_cost", "promise_ratio",
    "holds", "true_share", "min_share", "confidence", "worst_area_contacts",
)
"""Columns of :func:`floor_rows`: ``share_with`` / ``share_without`` the recommended plans' true conversions with
and without the floor over those of the oracle without it (``own_share_*``: over their own oracle's);
``true_cost`` the true conversions the recommended plan gives up for the floor, ``oracle_true_cost`` the
oracle's; ``stated_cost`` / ``stated_lo`` / ``stated_hi`` the plan's own price of the rule (expected conversions
on the estimates, NaN when it does not bind or for all floors at once), ``stated_covers`` whether that interval
holds ``true_cost``; ``estimated_cost`` the two recommended plans' estimated conversions apart; ``holds`` /
``true_share`` the floor under the truth at the plan holding it; ``worst_area_contacts`` a coverage floor's
worst area's contacts over its minimum."""


def floor_rows(plans: pd.DataFrame, floors: pd.DataFrame, prices: pd.DataFrame, studies: Sequence[FloorStudy],
               ) -> pd.DataFrame:
    """One row per world x budget x study (:data:`FLOOR_ROW_COLUMNS`) from the frames of :func:`score_world_floors`
    with ``world``, ``kind`` and ``data`` columns added (several worlds at once)."""
    keys = ["world", "budget"]

    def plan(policy: str, which: str) -> pd.DataFrame:
        return plans[(plans["policy"] == policy) & (plans["plan"] == which)].set_index(keys)

    out = []
    for study in studies:
        rec_with, rec_without = plan(study.with_policy, "recommended"), plan(study.without_policy, "recommended")
        oracle_with, oracle_without = plan(study.with_policy, "oracle"), plan(study.without_policy, "oracle")
        best = oracle_without["true_conversions"].reindex(rec_with.index)
        frame = pd.DataFrame({
            "kind": rec_with["kind"], "data": rec_with["data"], "budget_share": rec_with["budget_share"],
            "floor": study.floor, "floor_kind": study.kind, "confidence": study.confidence,
            "share_with": rec_with["true_conversions"] / best,
            "share_without": rec_without["true_conversions"].reindex(rec_with.index) / best,
            "own_share_with": rec_with["share_of_oracle"],
            "own_share_without": rec_without["share_of_oracle"].reindex(rec_with.index),
            "true_cost": rec_without["true_conversions"].reindex(rec_with.index) - rec_with["true_conversions"],
            "oracle_true_cost": best - oracle_with["true_conversions"].reindex(rec_with.index),
            "estimated_cost": (rec_without["estimated_conversions"].reindex(rec_with.index)
                               - rec_with["estimated_conversions"]),
        }, index=rec_with.index)
        out.append(_with_checks(frame, study, floors, prices))
    return pd.concat(out).reset_index()[list(FLOOR_ROW_COLUMNS)]


def _with_checks(frame: pd.DataFrame, study: FloorStudy, floors: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (indexed by world, budget) with the study's floor under the truth and its stated price."""
    keys = ["world", "budget"]
    held = floors[(floors["policy"] == study.with_policy) & (floors["plan"] == "recommended")]
    if study.kind == "all":
        applicable = prices[(prices["policy"] == study.with_policy) & prices["applies"].astype(bool)]
        mine = held.merge(applicable[[*keys, "floor"]], on=[*keys, "floor"])  # the shipped floors that apply
        frame["holds"] = mine.groupby(keys)["holds"].all().reindex(frame.index)
        frame["true_share"] = frame["min_share"] = float("nan")
        frame["applies"] = frame["holds"].notna()
        frame["reason"] = np.where(frame["applies"], "", "no floor applies")
        frame["rule_status"] = ""
        frame["binds"] = np.nan
        for column in ("stated_cost", "stated_lo", "stated_hi", "promise_ratio"):
            frame[column] = float("nan")
    else:
        mine = held[held["floor"] == study.floor].set_index(keys).reindex(frame.index)
        frame["holds"], frame["true_share"], frame["min_share"] = mine["holds"], mine["true_share"], mine["min_share"]
        price = prices[(prices["policy"] == study.with_policy) & (prices["floor"] == study.floor)]
        price = price.set_index(keys).reindex(frame.index)
        for column in ("applies", "reason", "rule_status", "stated_cost", "stated_lo", "stated_hi", "promise_ratio"):
            frame[column] = price[column]
        frame["binds"] = price["rule_status"] == "binds"
        applies = frame["applies"].astype(bool)
        for column in ("holds", "true_share", "binds"):
            frame[column] = frame[column].astype(object).where(applies, np.nan)
    frame["stated_covers"] = ((frame["stated_lo"] <= frame["true_cost"] + 1e-9)
                              & (frame["true_cost"] <= frame["stated_hi"] + 1e-9)).where(frame["stated_cost"].notna())
    frame["worst_area_contacts"] = frame["true_share"] if study.kind == "coverage" else float("nan")
    return frame


def floor_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per floor and per kind of world (all; generated or Haaglanden; all or fewer attributes): worlds where it
    applies, plans where it binds, holds under the truth (of the applicable plans), the mean and worst share of
    the oracle with and without it, the mean true conversions it gives up against the mean stated price (over
    the plans where it binds; ``binding_estimated_cost_mean`` the same plans' estimated conversions apart, the
    plan without the floor made afresh) and how many stated intervals held the truth; a share floor's smallest
    true share less its minimum (``worst_margin``) and a coverage floor's worst area.
    ``p_holds``: for a conversion floor held with a confidence, the chance of so few plans holding were each to
    hold with that probability (one-sided binomial)."""
    out = []
    groups = [("all", rows), *rows.groupby("kind"), *rows.groupby("data")]
    for worlds, group in groups:
        for (floor, kind), g in group.groupby(["floor", "floor_kind"], sort=False):
            applies = g[g["applies"].astype(bool)]
            binding = applies[applies["binds"].fillna(False).astype(bool)]
            priced = binding[binding["stated_cost"].notna()]
            out.append({
                "worlds": worlds, "floor": floor, "floor_kind": kind,
                "world_count": int(g["world"].nunique()), "applies_in": int(applies["world"].nunique()),
                "plans": len(applies), "binds": int(len(binding)) if kind != "all" else np.nan,
                "holds": int(applies["holds"].fillna(False).astype(bool).sum()),
                "holds_share": float(applies["holds"].astype(float).mean()) if len(applies) else float("nan"),
                "p_holds": _holding_p(applies),
                "share_with_mean": float(applies["share_with"].mean()),
                "share_with_worst": float(applies["share_with"].min()),
                "share_without_mean": float(applies["share_without"].mean()),
                "share_without_worst": float(applies["share_without"].min()),
                "true_cost_mean": float(applies["true_cost"].mean()),
                "oracle_true_cost_mean": float(applies["oracle_true_cost"].mean()),
                "binding_true_cost_mean": float(priced["true_cost"].mean()) if len(priced) else float("nan"),
                "binding_stated_cost_mean": float(priced["stated_cost"].mean()) if len(priced) else float("nan"),
                "binding_estimated_cost_mean": float(priced["estimated_cost"].mean()) if len(priced) else float("nan"),
                "stated_covers": int(priced["stated_covers"].astype(bool).sum()), "priced": len(priced),
                "worst_margin": float((applies["true_share"].astype(float) - applies["min_share"]).min())
                if kind not in ("coverage", "all") and len(applies) else float("nan"),
                "worst_area_contacts": float(applies["worst_area_contacts"].min()) if kind == "coverage"
                else float("nan"),
            })
    return pd.DataFrame(out)


def _holding_p(plans: pd.DataFrame) -> float:
    """For a conversion floor held with a confidence: the one-sided binomial p-value of so few of ``plans``
    holding under the truth if each held with that probability (NaN for the other floors)."""
    from scipy.stats import binomtest

    confidence = plans["confidence"].dropna()
    if plans.empty or confidence.empty:
        return float("nan")
    held = int(plans["holds"].astype(bool).sum())
    return float(binomtest(held, len(plans), float(confidence.iloc[0]), alternative="less").pvalue)


@dataclass(frozen=True)
class FloorCostResult:
    """The floors' rows (:data:`FLOOR_ROW_COLUMNS`), the plans and floors they come from, and the run's time."""

    settings: FamilySettings
    rows: pd.DataFrame = field(repr=False)
    plans: pd.DataFrame = field(repr=False)
    floors: pd.DataFrame = field(repr=False)
    seconds: float = 0.0


def run_floorcost(settings: FamilySettings, *, root: Path = ROOT, segment_spec=None,
                  progress: Callable[[str], None] | None = None) -> FloorCostResult:
    """Run the benchmark over ``settings.worlds``; see the module docstring."""
    from uplift.pipeline import load_segment_spec

    say = progress or (lambda _m: None)
    spec = segment_spec or load_segment_spec(str(root / "features" / "segments.yaml"))
    start = time.perf_counter()
    plans, floors, rows = [], [], []
    for world_spec in settings.worlds:
        world = load_world(world_spec, settings, root=root, say=say)
        data = "fewer attributes" if missing_form_attributes(world) else "all attributes"
        tag = {"world": world_spec.name, "kind": world_spec.kind, "data": data}
        say(f"{world_spec.name}: segment table, plans at {len(settings.budget_shares)} budgets per policy")
        scored, held, prices, studies = score_world_floors(world, spec, root=root, people=settings.people,
                                                           budget_shares=settings.budget_shares)
        plans.append(scored.assign(**tag))
        floors.append(held.rename(columns={"kind": "floor_kind"}).assign(**tag))
        rows.append(floor_rows(plans[-1], floors[-1], prices.assign(**tag), studies))
        everything = rows[-1][rows[-1]["floor"] == "all floors"]
        say(f"{world_spec.name}: with every floor {everything['share_with'].mean():.1%} of the oracle without them, "
            f"without {everything['share_without'].mean():.1%}")
    return FloorCostResult(settings=settings, rows=pd.concat(rows, ignore_index=True),
                           plans=pd.concat(plans, ignore_index=True), floors=pd.concat(floors, ignore_index=True),
                           seconds=time.perf_counter() - start)


def render_floorcost(result: FloorCostResult, command: str) -> str:
    """The benchmark's Markdown report."""
    s = result.settings
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    conv = lambda v: f"{v:.1f}"  # noqa: E731
    summary = floor_summary(result.rows)
    summary["holds"] = [f"{h} / {p}" for h, p in zip(summary["holds"], summary["plans"], strict=True)]
    summary["stated covers"] = [f"{c} / {p}" for c, p in zip(summary["stated_covers"], summary["priced"], strict=True)]
    columns = ["worlds", "floor", "floor_kind", "applies_in", "plans", "binds", "holds", "p_holds", "share_with_mean",
               "share_without_mean", "share_with_worst", "share_without_worst", "true_cost_mean",
               "oracle_true_cost_mean", "binding_true_cost_mean", "binding_stated_cost_mean",
               "binding_estimated_cost_mean", "stated covers", "worst_margin", "worst_area_contacts"]
    rows = result.rows.copy()
    failed = rows[rows["applies"].astype(bool) & (rows["holds"] == False)]  # noqa: E712
    not_applicable = rows[~rows["applies"].astype(bool)].drop_duplicates(["world", "floor"])
    return "\n".join([
        "# What each shipped floor costs in truth, and whether it holds", "",
        f"Command: `{command}`  ",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {len(s.worlds)} worlds of {s.people:,} people x "
        f"{s.waves} waves, budgets {', '.join(f'{b:.0%}' for b in s.budget_shares)} of the full-reach spend; "
        f"{result.seconds:.0f} s.", "",
        "Per floor (shares: the recommended plan's true conversions over the oracle's that need not hold the floor, "
        "means over worlds and budgets; costs in true conversions given up; the stated price over the plans where "
        "the floor binds):", "",
        markdown_table(summary[columns], {"share_with_mean": pct, "share_without_mean": pct, "share_with_worst": pct,
                                          "share_without_worst": pct, "true_cost_mean": conv,
                                          "oracle_true_cost_mean": conv, "binding_true_cost_mean": conv,
                                          "binding_stated_cost_mean": conv, "binding_estimated_cost_mean": conv,
                                          "worst_margin": lambda v: f"{100 * v:+.1f} pt", "worst_area_contacts": ".2f",
                                          "binds": ".0f", "p_holds": ".3f"}), "",
        f"Floors that failed under the truth ({len(failed)}):", "",
        markdown_table(failed[["world", "budget_share", "floor", "floor_kind", "min_share", "true_share",
                               "confidence"]]) if len(failed) else "none", "",
        "Floors not applicable:", "",
        markdown_table(not_applicable[["world", "floor", "reason"]]) if len(not_applicable) else "none", "",
        "Per world, budget and floor:", "",
        markdown_table(rows.drop(columns=["reason"]), {c: pct for c in ("share_with", "share_without",
                                                                        "own_share_with", "own_share_without")}), "",
    ])


def headline_rows(result: FloorCostResult) -> list[HeadlineRow]:
    """The README's figures of the floors (:mod:`benchmarks.headline`)."""
    summary = floor_summary(result.rows).set_index(["worlds", "floor"])
    s = result.settings
    generated = sum(w.kind == "family" for w in s.worlds)
    on = (f"{generated} generated regions + Haaglanden ({len(s.worlds) - generated} seeds), {s.people:,} people x "
          f"{s.waves} waves, budgets {', '.join(f'{b:.0%}' for b in s.budget_shares)} of full reach")
    every = summary.loc[("all", "all floors")]
    rows = [HeadlineRow("plan's share of the oracle with every shipped floor / without them (mean)",
                        f"{100 * every['share_with_mean']:.1f}% / {100 * every['share_without_mean']:.1f}%", on)]
    shipped = result.rows[(result.rows["floor_kind"].isin(["spend_share", "contact_share", "coverage"]))
                          & result.rows["applies"].astype(bool)]
    held = int(shipped["holds"].astype(bool).sum())
    line = f"{held} / {len(shipped)}"
    if CONVERSION_FLOOR.name in result.rows["floor"].values:
        c = summary.loc[("all", CONVERSION_FLOOR.name)]
        line += f"; conversion floor at {CONVERSION_FLOOR.confidence:.0%}: {c['holds']} / {c['plans']}"
    rows.append(HeadlineRow("shipped spend, contact and coverage floors holding under the truth (plans)", line, on))
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.floorcost", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for report.md and the tables")
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(101, 111)),
                   help="the generated worlds' seeds (region seed = world seed)")
    p.add_argument("--haaglanden-seeds", nargs="*", type=int, default=[1, 2], help="Haaglanden worlds (seeds)")
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--waves", type=int, default=4)
    p.add_argument("--budget-shares", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the pooled model")
    p.add_argument("--threads", type=int, default=1, help="LightGBM threads per fit")
    p.add_argument("--cache", type=Path,
                   help="folder of captured worlds (benchmarks.family --cache); a world it lacks is captured into it")
    p.add_argument("--messages", nargs="+", help="simulate only these messages (tiny runs)")
    p.add_argument("--channels", nargs="+", help="simulate only these channels (tiny runs)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = FamilySettings(
        worlds=family_worlds(0, 0, args.haaglanden_seeds, args.seeds), people=args.people, waves=args.waves,
        budget_shares=tuple(args.budget_shares), folds=args.folds, threads=args.threads, cache=args.cache,
        messages=tuple(args.messages) if args.messages else None,
        channels=tuple(args.channels) if args.channels else None)

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    result = run_floorcost(settings, progress=say)
    command = "python -m benchmarks.floorcost " + shlex.join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("floors.csv", result.rows), ("summary.csv", floor_summary(result.rows)),
                        ("plans.csv", result.plans), ("truth-floors.csv", result.floors)):
        _write_atomic(args.out / name, frame.to_csv(index=False))
    _write_atomic(args.out / "report.md", render_floorcost(result, command))
    record(args.out, "benchmarks.floorcost", headline_rows(result), argv=argv)
    say(f"wrote {args.out / 'report.md'}")
    return 0


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
