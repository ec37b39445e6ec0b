"""The decision benchmark on a family of worlds: ``python -m benchmarks.family --out DIR [--worlds 20]``.

Every estimator choice judged on one simulated region is judged on one answer to "which message works
for whom". This benchmark plans on many: ``--worlds N`` regions drawn from ``features/regions/family.yaml``
(region and world seeds ``--first-seed`` .. ``--first-seed + N - 1``) plus Haaglanden (``--haaglanden-seeds``),
each simulated at the default size (100,000 people x 4 waves), the pooled model validated as
``uplift train`` does, the segment table built and planned at every budget. Per world, under the
simulator's truth (:func:`uplift.evaluation.compare_with_oracle`):

- the share of the oracle of the recommended plan with the shipped policy and without exploration,
  and of the two reference plans made from the same estimates (the single best message, the even split);
- planned / true: what the plan expected against what it buys, and whether its interval covered it;
- the stages the segment estimator kept on that world's data (:mod:`uplift.segments.stages`);
- optionally (``--true-form``, minutes per world) the share of plans from the simulator's own response
  model fitted to the rows (:mod:`uplift.evaluation.trueform`): the best case; and (``--declared``) the
  share of plans from the targetable stages as the spec declares them, none dropped.

Over the worlds: the mean, the 10th percentile and the worst of each share. ``--cache DIR`` keeps each
world's rows, out-of-sample predictions and truth (:class:`benchmarks.worlds.WorldData`), so a second
run re-judges the estimator without refitting the model.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.decisions import full_reach_spend, scaled_policy
from benchmarks.headline import HeadlineRow, record
from benchmarks.report import markdown_table
from benchmarks.worlds import WorldData, capture_world, segment_table, world_region

__all__ = ["FamilySettings", "FamilyResult", "WorldSpec", "family_summary", "family_worlds", "main",
           "missing_form_attributes", "promise_by_share", "run_family", "score_world"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WorldSpec:
    """A world of the benchmark: a region (``haaglanden`` or ``random:SEED``) simulated with ``seed``."""

    region: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.region.replace('random:', 'family-')}-{self.seed}"

    @property
    def kind(self) -> str:
        return "haaglanden" if self.region == "haaglanden" else "family"


def family_worlds(count: int, first_seed: int, haaglanden_seeds: Sequence[int] = (1, 2),
                  seeds: Sequence[int] | None = None) -> tuple[WorldSpec, ...]:
    """``count`` generated worlds (region seed = world seed, from ``first_seed`` on; or the given ``seeds``)
    and Haaglanden's."""
    generated = tuple(seeds) if seeds else tuple(range(first_seed, first_seed + count))
    return (tuple(WorldSpec(f"random:{s}", s) for s in generated)
            + tuple(WorldSpec("haaglanden", s) for s in haaglanden_seeds))


@dataclass(frozen=True)
class FamilySettings:
    """Sizes of the family benchmark; see the module docstring."""

    worlds: tuple[WorldSpec, ...]
    people: int = 100_000
    waves: int = 4
    budget_shares: tuple[float, ...] = (0.05, 0.1, 0.2)
    folds: int = 5
    threads: int = 1
    true_form: bool = False
    declared: bool = False
    cache: Path | None = None
    messages: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FamilyResult:
    """Per world x policy x budget x plan (``plans``), per world (``worlds``) and the stages each world's
    data kept (``stages``: world, stage, kept, and the held-out evidence)."""

    settings: FamilySettings
    plans: pd.DataFrame = field(repr=False)
    worlds: pd.DataFrame = field(repr=False)
    stages: pd.DataFrame = field(repr=False)
    seconds: float = 0.0


def load_world(spec: WorldSpec, settings: FamilySettings, *, root: Path, say: Callable[[str], None]) -> WorldData:
    """The world from the cache when it holds it at these sizes, else captured (and cached)."""
    folder = None
    if settings.cache is not None:
        folder = settings.cache / f"{spec.name}-{settings.people}x{settings.waves}-f{settings.folds}"
        if (folder / "world.json").exists():
            return WorldData.load(folder)
    world = capture_world(world_region(root, spec.region), name=spec.name, people=settings.people,
                          waves=settings.waves, seed=spec.seed, root=root, folds=settings.folds,
                          threads=settings.threads, messages=settings.messages, channels=settings.channels, say=say)
    if folder is not None:
        world.save(folder)
    return world


def _policies(root: Path, people: int, channels: set[str]):
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    costs = load_spec(root / "serve" / "costs.yaml", CostCatalogue)
    shipped = scaled_policy(load_spec(root / "serve" / "policy.yaml", PlanningPolicy), people, channels)
    return costs, {"shipped": shipped, "no_exploration": shipped.model_copy(update={"exploration_share": 0.0})}


def world_tables(world: WorldData, segment_spec) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The world's segment table (both kinds, with its priority groups), its targetable cells and their true
    effects: what every benchmark that plans on a captured world starts from."""
    from uplift.evaluation import true_effects_table
    from uplift.segments import truth_segment_effects

    segments = segment_table(world, segment_spec)
    estimated = segments[segments["kind"] == "targetable"].reset_index(drop=True)
    truth = true_effects_table(estimated, truth_segment_effects(world.rows, world.true_p, segment_spec))
    return segments, estimated, truth


def budgets_at(estimated: pd.DataFrame, costs, budget_shares: Sequence[float]) -> list[float]:
    """EUR budgets at ``budget_shares`` of the spend that reaches every targetable cell once on every channel."""
    capacity = full_reach_spend(estimated, costs)
    return [round(share * capacity, 2) for share in budget_shares]


def score_world(world: WorldData, segment_spec, *, root: Path, people: int, budget_shares: Sequence[float],
                true_form: bool = False, declared: bool = False) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Build the world's segment table, plan at every budget and score the plans under its truth.

    Returns the plans (columns of :data:`uplift.evaluation.PLAN_SCORE_COLUMNS` plus ``source``,
    ``policy`` and ``budget_share``), a per-world summary (estimates against the truth) and the stage
    choice (:func:`uplift.segments.stage_table` of the targetable kind). ``source`` is ``estimates``
    (the segment table), ``fitted_true_form`` (with ``true_form``) or ``declared`` (with ``declared``:
    the targetable stages as the spec declares them, none dropped; planned without exploration).
    """
    from uplift.evaluation import compare_with_oracle, true_effects_table
    from uplift.segments import stage_table

    segments, estimated, truth = world_tables(world, segment_spec)
    costs, policies = _policies(root, people, set(estimated["channel"]))
    budgets = budgets_at(estimated, costs, budget_shares)
    shares = dict(zip(budgets, budget_shares, strict=True))
    plans = []
    tables = {"estimates": (estimated, tuple(policies))}
    if true_form and not missing_form_attributes(world):
        from benchmarks.decisions import fitted_true_form

        fitted = fitted_true_form(world, segment_spec)
        tables["fitted_true_form"] = (true_effects_table(estimated, fitted, source="fitted true form"),
                                      ("no_exploration",))
    if declared:
        method = segment_spec.effect_method("targetable").model_copy(update={"select_stages": False})
        as_declared = segment_table(world, segment_spec.model_copy(update={"effects": {**segment_spec.effects,
                                                                                       "targetable": method}}))
        tables["declared"] = (as_declared[as_declared["kind"] == "targetable"].reset_index(drop=True),
                              ("no_exploration",))
    for source, (table, names) in tables.items():
        for name in names:
            scored = compare_with_oracle(table, truth, budgets=budgets, costs=costs, policy=policies[name]).plans
            plans.append(scored.assign(source=source, policy=name, budget_share=scored["budget"].map(shares)))
    est, true = estimated["effect"].to_numpy(float), truth["effect"].to_numpy(float)
    covered = (true >= estimated["lo"].to_numpy(float)) & (true <= estimated["hi"].to_numpy(float))
    summary = {"cells": len(estimated), "segments": int(estimated["segment"].nunique()),
               "corr": float(np.corrcoef(est, true)[0, 1]) if est.std() > 0 and true.std() > 0 else float("nan"),
               "cell_coverage_80": float(covered.mean()), **_within_arm_spread(estimated, truth),
               **_promise_ratio(segments)}
    return pd.concat(plans, ignore_index=True), summary, stage_table(segments, kind="targetable")


def missing_form_attributes(world: WorldData) -> tuple[str, ...]:
    """The audience attributes the region's response model reads that the world's rows lack (a world
    handing over fewer attributes): its true form cannot be fitted to the rows, so it has no best case."""
    from uplift.simulate.conditions import _BOOL_FIELDS, _LIST_FIELDS

    region = world.region
    conditions = ([m.when for m in region.baseline.modifiers]
                  + [a.when for m in region.messages.values() for a in m.adjustments]
                  + [f.when for c in region.channels.values() for f in c.modifiers])
    used = {name for when in conditions for name in (*_LIST_FIELDS, *_BOOL_FIELDS)
            if name != "persona" and getattr(when, name) is not None}
    return tuple(sorted(used - set(world.rows.frame.columns)))


def _promise_ratio(segments: pd.DataFrame) -> dict[str, float]:
    """The held-out ratio the targetable table's promise is calibrated by (:mod:`uplift.segments.promise`)."""
    record = ((segments.attrs.get("stages") or {}).get("targetable") or {}).get("promise")
    if not record:
        return {}
    out = {"promise_ratio": record["ratio"], "promise_ratio_se": record["ratio_se"]}
    for alt in ((segments.attrs.get("stages") or {}).get("targetable") or {}).get("promise_by_share") or ():
        out[f"promise_ratio@{alt['top_share']:g}"] = alt["ratio"]
        out[f"promise_ratio_se@{alt['top_share']:g}"] = alt["ratio_se"]
    return out


def promise_by_share(plans: pd.DataFrame, worlds: pd.DataFrame, interval: float = 0.8) -> pd.DataFrame:
    """Per share of the best-looking cells the promise could be calibrated at (the worlds'
    ``promise_ratio@<share>``) and per kind of world: the recommended plans' mean planned / true and the
    share of their intervals covering the truth, had the promise been calibrated at that share (the
    estimates' own half-width recovered from the calibration the plan was shown with)."""
    from scipy.stats import norm

    from uplift.segments.promise import PromiseCalibration, promise_of

    z = float(norm.ppf(0.5 + interval / 2))
    rec = plans[(plans["source"] == "estimates") & (plans["plan"] == "recommended")]
    info = worlds.set_index("world")
    shares = sorted(float(c.split("@")[1]) for c in worlds.columns if c.startswith("promise_ratio@"))
    rows = []
    for r in rec.itertuples():
        w = info.loc[r.world]
        ratio, se, estimated = max(w["promise_ratio"], 0.0), w["promise_ratio_se"], r.estimated_conversions
        shown = (r.planned_hi - r.planned_lo) / 2
        own = np.sqrt(max(shown**2 - (z * se * estimated) ** 2, 0.0)) / ratio if ratio > 0 else float("nan")
        for q in shares:
            line = PromiseCalibration(w[f"promise_ratio@{q:g}"], w[f"promise_ratio_se@{q:g}"], q, 0)
            centre, lo, hi = promise_of(line, planned=estimated, half_width=own, interval=interval)
            rows.append({"share": q, "world": r.world, "kind": w["kind"], "data": w.get("data", ""),
                         "ratio": centre / r.true_conversions, "covered": lo <= r.true_conversions <= hi})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    out = []
    for col in (None, "kind", "data"):
        groups = [("all", frame)] if col is None else list(frame.groupby(col))
        for name, g in groups:
            agg = g.groupby("share").agg(planned_over_true=("ratio", "mean"), covered=("covered", "mean"),
                                         plans=("covered", "size")).reset_index()
            out.append(agg.assign(worlds=name))
    return pd.concat(out, ignore_index=True)[["worlds", "share", "planned_over_true", "covered", "plans"]]


def _within_arm_spread(estimated: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Row-weighted, over the arms: the estimates' spread within each arm against the truth's, and their
    correlation within the arms (what decides which segments a message x channel funds)."""
    frame = pd.DataFrame({"arm": estimated["arm"], "w": estimated["rows"].astype(float),
                          "est": estimated["effect"].astype(float), "true": truth["effect"].astype(float)})
    ratios, corrs = [], []
    for _, g in frame.groupby("arm"):
        w = g["w"].to_numpy()
        e = g["est"].to_numpy() - np.average(g["est"], weights=w)
        t = g["true"].to_numpy() - np.average(g["true"], weights=w)
        se, st = np.sqrt(np.average(e**2, weights=w)), np.sqrt(np.average(t**2, weights=w))
        ratios.append(se / st if st > 0 else np.nan)
        corrs.append(np.average(e * t, weights=w) / (se * st) if se > 0 and st > 0 else np.nan)
    return {"within_arm_spread_ratio": float(np.nanmean(ratios)), "within_arm_corr": float(np.nanmean(corrs))}


def world_figures(plans: pd.DataFrame) -> dict[str, float]:
    """One world's shares of the oracle (means over the budgets), planned / true and intervals covering."""
    est = plans[plans["source"] == "estimates"]
    out = {}
    for policy in ("shipped", "no_exploration"):
        rec = est[(est["policy"] == policy) & (est["plan"] == "recommended")]
        key = "shipped" if policy == "shipped" else "no_exploration"
        out[key] = float(rec["share_of_oracle"].mean())
        ratio = rec["planned_conversions"] / rec["true_conversions"]
        out[f"{key}_planned_over_true"] = float(ratio.mean())
        out[f"{key}_estimated_over_true"] = float((rec["estimated_conversions"] / rec["true_conversions"]).mean())
        out[f"{key}_covered"] = int(((rec["true_conversions"] >= rec["planned_lo"])
                                     & (rec["true_conversions"] <= rec["planned_hi"])).sum())
        out[f"{key}_plans"] = len(rec)
    greedy = est[est["policy"] == "no_exploration"]
    for ref in ("single_best_message", "even"):
        out[ref] = float(greedy.loc[greedy["plan"] == ref, "share_of_oracle"].mean())
    for source in ("fitted_true_form", "declared"):
        other = plans[(plans["source"] == source) & (plans["plan"] == "recommended")]
        out[source] = float(other["share_of_oracle"].mean()) if len(other) else float("nan")
    return out


def family_summary(worlds: pd.DataFrame, columns: Sequence[str] = ("shipped", "no_exploration", "single_best_message",
                                                                   "even", "fitted_true_form", "declared"),
                   ) -> pd.DataFrame:
    """Per kind of world (generated or Haaglanden; handing over all the audience attributes the response
    model reads or fewer; and all together): the mean, 10th percentile and worst of each share, and the
    mean planned / true and intervals covering."""
    rows = []
    groups = [("all", worlds), *worlds.groupby("kind")]
    if "data" in worlds:
        groups += list(worlds.groupby("data"))
    for kind, group in groups:
        row = {"worlds": kind, "n": len(group)}
        for c in columns:
            values = group[c].dropna()
            if values.empty:
                continue
            row[f"{c} mean"] = float(values.mean())
            row[f"{c} p10"] = float(np.percentile(values, 10))
            row[f"{c} worst"] = float(values.min())
        for key in ("shipped", "no_exploration"):
            row[f"{key} planned/true"] = float(group[f"{key}_planned_over_true"].mean())
            if f"{key}_estimated_over_true" in group:
                row[f"{key} estimated/true"] = float(group[f"{key}_estimated_over_true"].mean())
            row[f"{key} covered"] = f"{int(group[f'{key}_covered'].sum())} / {int(group[f'{key}_plans'].sum())}"
        rows.append(row)
    return pd.DataFrame(rows)


def run_family(settings: FamilySettings, *, root: Path = ROOT, segment_spec=None,
               progress: Callable[[str], None] | None = None) -> FamilyResult:
    """Run the benchmark over ``settings.worlds``; see the module docstring."""
    from uplift.pipeline import load_segment_spec

    say = progress or (lambda _m: None)
    spec = segment_spec or load_segment_spec(str(root / "features" / "segments.yaml"))
    start = time.perf_counter()
    plans, rows, stages = [], [], []
    for world_spec in settings.worlds:
        world = load_world(world_spec, settings, root=root, say=say)
        say(f"{world_spec.name}: segment table, plans at {len(settings.budget_shares)} budgets")
        scored, summary, chosen = score_world(world, spec, root=root, people=settings.people,
                                              budget_shares=settings.budget_shares, true_form=settings.true_form,
                                              declared=settings.declared)
        plans.append(scored.assign(world=world_spec.name, kind=world_spec.kind))
        stages.append(chosen.assign(world=world_spec.name))
        data = "fewer attributes" if missing_form_attributes(world) else "all attributes"
        rows.append({"world": world_spec.name, "kind": world_spec.kind, "data": data, **world_figures(scored),
                     **summary})
        say(f"{world_spec.name}: shipped {rows[-1]['shipped']:.1%}, no exploration {rows[-1]['no_exploration']:.1%}, "
            f"single best message {rows[-1]['single_best_message']:.1%}")
    return FamilyResult(settings=settings, plans=pd.concat(plans, ignore_index=True), worlds=pd.DataFrame(rows),
                        stages=pd.concat(stages, ignore_index=True), seconds=time.perf_counter() - start)


def combined_family(folders: Sequence[Path], settings: FamilySettings) -> FamilyResult:
    """One result from runs over parts of the worlds (each folder as ``main`` writes it), e.g. parts run side by
    side on separate cores; ``seconds`` is the parts' time added up."""
    def read(name: str) -> pd.DataFrame:
        return pd.concat([pd.read_csv(folder / name) for folder in folders], ignore_index=True)

    seconds = 0.0
    for folder in folders:
        found = re.search(r"; ([0-9]+) s\.", (folder / "report.md").read_text())
        seconds += float(found.group(1)) if found else float("nan")
    worlds = read("worlds.csv")
    order = {spec.name: i for i, spec in enumerate(settings.worlds)}
    missing = sorted(set(order) - set(worlds["world"]))
    if missing:
        raise ValueError(f"--combine: no results for world(s) {', '.join(missing)} in {', '.join(map(str, folders))}")
    worlds = worlds.sort_values("world", key=lambda w: w.map(order)).reset_index(drop=True)
    return FamilyResult(settings=settings, plans=read("plans.csv"), worlds=worlds, stages=read("stages.csv"),
                        seconds=seconds)


def render_family(result: FamilyResult, command: str) -> str:
    """The family benchmark's Markdown report."""
    s = result.settings
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    ratio = lambda v: f"{v:.2f}"  # noqa: E731
    summary = family_summary(result.worlds)
    shares = [c for c in summary.columns if c.endswith((" mean", " p10", " worst"))]
    worlds = result.worlds.copy()
    worlds["shipped covered"] = [f"{c} / {n}"
                                 for c, n in zip(worlds["shipped_covered"], worlds["shipped_plans"], strict=True)]
    worlds["stages kept"] = worlds["world"].map(
        result.stages[result.stages["kept"]].groupby("world")["stage"].agg(lambda s: ", ".join(s)))
    columns = ["world", "kind", "data", "shipped", "no_exploration", "single_best_message", "even", "fitted_true_form",
               "declared",
               "shipped_planned_over_true", "shipped_estimated_over_true", "shipped covered", "promise_ratio", "corr",
               "within_arm_corr", "within_arm_spread_ratio",
               "stages kept"]
    kept = result.stages.groupby("stage")["kept"].agg(["sum", "count"]).reset_index()
    return "\n".join([
        "# The decision benchmark on a family of worlds", "",
        f"Command: `{command}`  ",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {len(s.worlds)} worlds of {s.people:,} people x "
        f"{s.waves} waves, budgets {', '.join(f'{b:.0%}' for b in s.budget_shares)} of the full-reach spend; "
        f"{result.seconds:.0f} s.", "",
        "Shares of the oracle (means over the budgets), over the worlds:", "",
        markdown_table(summary, {**{c: pct for c in shares},
                                 "shipped planned/true": ratio, "no_exploration planned/true": ratio,
                                 "shipped estimated/true": ratio, "no_exploration estimated/true": ratio}), "",
        "Per world:", "",
        markdown_table(worlds[[c for c in columns if c in worlds.columns]],
                       {"shipped": pct, "no_exploration": pct, "single_best_message": pct, "even": pct,
                        "fitted_true_form": pct, "declared": pct, "shipped_planned_over_true": ratio,
                        "shipped_estimated_over_true": ratio, "promise_ratio": ratio, "corr": ratio,
                        "within_arm_corr": ratio, "within_arm_spread_ratio": ratio}), "",
        "The promise calibrated at other shares of the best-looking cells (`promise_top_share`; recommended "
        "plans, both policies):", "",
        markdown_table(promise_by_share(result.plans, result.worlds),
                       {"planned_over_true": ratio, "covered": pct, "share": lambda v: f"{v:g}"}), "",
        "Stages kept by the worlds' own held-out evidence (worlds keeping it / worlds):", "",
        markdown_table(kept.rename(columns={"sum": "kept", "count": "worlds"})), "",
    ])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.family", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for report.md and the per-world tables")
    p.add_argument("--worlds", type=int, default=20, help="generated worlds")
    p.add_argument("--first-seed", type=int, default=1001, help="region and world seed of the first generated world")
    p.add_argument("--seeds", nargs="+", type=int,
                   help="the generated worlds' seeds (instead of --worlds/--first-seed)")
    p.add_argument("--haaglanden-seeds", nargs="*", type=int, default=[1, 2], help="Haaglanden worlds (seeds)")
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--waves", type=int, default=4)
    p.add_argument("--budget-shares", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the pooled model")
    p.add_argument("--threads", type=int, default=1, help="LightGBM threads per fit")
    p.add_argument("--true-form", action="store_true", help="also plan from the fitted true form (minutes per world)")
    p.add_argument("--declared", action="store_true",
                   help="also plan from the targetable stages as declared, none dropped (no exploration)")
    p.add_argument("--cache", type=Path, help="folder keeping each world's rows, predictions and truth")
    p.add_argument("--messages", nargs="+", help="simulate only these messages (tiny runs)")
    p.add_argument("--channels", nargs="+", help="simulate only these channels (tiny runs)")
    p.add_argument("--combine", type=Path, nargs="+",
                   help="only write the report of these runs' results together (runs over parts of the worlds)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = FamilySettings(
        worlds=family_worlds(args.worlds, args.first_seed, args.haaglanden_seeds, args.seeds), people=args.people,
        waves=args.waves, budget_shares=tuple(args.budget_shares), folds=args.folds, threads=args.threads,
        true_form=args.true_form, declared=args.declared, cache=args.cache,
        messages=tuple(args.messages) if args.messages else None,
        channels=tuple(args.channels) if args.channels else None)

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    result = combined_family(args.combine, settings) if args.combine else run_family(settings, progress=say)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.family " + shlex.join(argv if argv is not None else sys.argv[1:])
    result.worlds.to_csv(args.out / "worlds.csv", index=False)
    result.plans.to_csv(args.out / "plans.csv", index=False)
    result.stages.to_csv(args.out / "stages.csv", index=False)
    promise_by_share(result.plans, result.worlds).to_csv(args.out / "promise.csv", index=False)
    (args.out / "report.md").write_text(render_family(result, command))
    record(args.out, "benchmarks.family", headline_rows(result), argv=argv)
    say(f"wrote {args.out / 'report.md'}")
    return 0


def headline_rows(result: FamilyResult) -> list[HeadlineRow]:
    """The README's figures of the family (:mod:`benchmarks.headline`)."""
    summary = family_summary(result.worlds).set_index("worlds")
    s = result.settings
    generated = int((result.worlds["kind"] == "family").sum())
    haaglanden = int((result.worlds["kind"] == "haaglanden").sum())
    on = (f"{generated} generated regions + Haaglanden ({haaglanden} seeds), {s.people:,} people x {s.waves} waves, "
          f"budgets {', '.join(f'{b:.0%}' for b in s.budget_shares)} of full reach")
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    rows = []
    every = summary.loc["all"]
    rows.append(HeadlineRow("plan's share of the oracle, shipped policy: mean / 10th percentile / worst world",
                            f"{pct(every['shipped mean'])} / {pct(every['shipped p10'])} / "
                            f"{pct(every['shipped worst'])}",
                            on))
    rows.append(HeadlineRow("the same for the single best message / the even split (means)",
                            f"{pct(every['single_best_message mean'])} / {pct(every['even mean'])}", on))
    if "haaglanden" in summary.index:
        rows.append(HeadlineRow("plan's share of the oracle on Haaglanden (the demo region)",
                                pct(summary.loc["haaglanden", "shipped mean"]), on))
    rows.append(HeadlineRow("planned / true conversions (mean over plans) and 80% intervals covering the truth",
                            f"{every['shipped planned/true']:.2f}; {every['shipped covered']}", on))
    return rows


if __name__ == "__main__":
    sys.exit(main())
