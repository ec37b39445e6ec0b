"""The closed loop on the simulator: programmes of many waves, each wave planned from the earlier ones.

For every seed one simulated region (its residents; their responses come from the simulator) runs five
programmes side by side, each with the same budget every wave and its own history:

- ``product``: wave 1 the even split; every later wave the product from all earlier waves of its own history:
  build the training table, validate the pooled model (``models/pooled_lightgbm.yaml``) as ``uplift train``
  does, the targetable segment table with each segment's priority groups and its people in the wave's audience
  (the table counts the people of the training rows, only those earlier waves drew), a plan with the shipped policy
  (``serve/policy.yaml``, Thompson exploration included), the wave designed from the plan
  (:func:`uplift.design.fromplan.design_from_plan`), its outcomes drawn by the simulator
  (:func:`uplift.simulate.assigned.run_assigned_wave`), what the plan promised against what happened
  (:func:`uplift.design.promised.promised_and_delivered`), appended;
- ``product_no_exploration``: the same with ``exploration_share: 0``;
- ``oracle``: every wave, wave 1 included, the shipped policy without exploration on the true effects of the
  people still to register (the truth scores and, for this reference only, plans; it never trains anything);
- ``even``: the even split every wave (:func:`uplift.allocation.reference_plans`' ``even``);
- ``test_then_best``: the even split for two waves, then everything on the message whose randomised arm-vs-
  holdout differences over those two waves were best (``single_best_message`` over those estimates).

Every plan becomes a wave through the same design from a plan (people who already registered are left out),
and a wave is scored by its true incremental registrations: the sum over its contacted people of the true
``P(arm) - P(holdout)`` given their history. The report gives each programme's share of the oracle's
registrations per wave and cumulatively, per seed, and the product's calibration wave by wave.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_asrun import without_minimums
from benchmarks.decisions import full_reach_spend, scaled_policy
from benchmarks.headline import HeadlineRow, record
from benchmarks.targeting import with_threads

__all__ = ["STRATEGIES", "LoopSettings", "LoopResult", "combined", "run_closed_loop", "loop_report", "shares_of_oracle"]

STRATEGIES = ("product", "product_no_exploration", "oracle", "even", "test_then_best")
"""The programmes of a seed (see the module docstring)."""


@dataclass(frozen=True)
class LoopSettings:
    """Sizes of the closed-loop benchmark.

    Attributes
    ----------
    people, waves, seeds : residents, waves per programme (>= 3), one region per seed.
    budget_share : each wave's budget as a share of :func:`benchmarks.decisions.full_reach_spend` over the
        first wave's segments.
    folds : cross-validation folds of the pooled model.
    messages, channels : optional subset of the region's (tiny runs).
    threads : LightGBM threads per fit.
    strategies : the programmes to run (``oracle`` always runs: every share is of it).
    line_minimums : hold the channels' smallest lines (``min_line_spend``, ``min_print_run``) as the catalogue
        declares them; a world of a few thousand people has a wave budget of a few hundred euros, too little for
        whole lines, so tiny runs may plan without them.
    """

    people: int = 20_000
    waves: int = 6
    seeds: tuple[int, ...] = (1,)
    budget_share: float = 0.2
    folds: int = 3
    messages: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    threads: int = 1
    strategies: tuple[str, ...] = STRATEGIES
    line_minimums: bool = True


@dataclass(frozen=True)
class LoopResult:
    """``waves``: one row per seed, programme and wave (``true_incremental``, ``spend``, ``contacts``, ``people``);
    ``calibration``: per seed, product programme and wave from 2, the plan's promise against the wave and the
    calibration; ``timings``: seconds per step (``seed``, ``step``, ``seconds``)."""

    settings: LoopSettings
    waves: pd.DataFrame = field(repr=False)
    calibration: pd.DataFrame = field(repr=False)
    timings: pd.DataFrame = field(repr=False)


@dataclass
class _Programme:
    """One programme's own history."""

    name: str
    exposures: pd.DataFrame
    enrolments: pd.DataFrame


class _Clock:
    """Seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, step: str, fn: Callable, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - t0


@dataclass(frozen=True)
class _World:
    """What every programme of a seed shares."""

    seed: int
    region: object
    audience: pd.DataFrame
    arms: tuple[str, ...]
    feature_set: object
    model_spec: object
    segment_spec: object
    groups: object
    costs: object
    policy: object
    budget: float


def _world(seed: int, settings: LoopSettings, root: Path) -> _World:
    from uplift.data.vocabulary import split_arm
    from uplift.pipeline import load_feature_set, load_priority_groups, load_segment_spec
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.model import ModelSpec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy
    from uplift.specs.region import RegionSpec

    region = load_spec(root / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    if settings.messages or settings.channels:
        region = region.subset(messages=list(settings.messages or region.messages),
                               channels=list(settings.channels or region.channels))
    audience = simulate(region, people=settings.people, waves=1, seed=seed).audience
    arms = tuple(region.updated().arm_names())
    arms = tuple(a for a in arms if a != "holdout")
    feature_set = load_feature_set(str(root / "features" / "default.yaml")).model_copy(update={
        "messages": tuple(dict.fromkeys(split_arm(a)[0] for a in arms)),
        "channels": tuple(dict.fromkeys(split_arm(a)[1] for a in arms))})
    spec = load_spec(root / "models" / "pooled_lightgbm.yaml", ModelSpec)
    spec = with_threads(spec.model_copy(update={"cv": spec.cv.model_copy(update={"folds": settings.folds})}),
                        settings.threads)
    costs = load_spec(root / "serve" / "costs.yaml", CostCatalogue)
    if not settings.line_minimums:
        costs = without_minimums(costs)
    channels = {split_arm(a)[1] for a in arms}
    policy = scaled_policy(load_spec(root / "serve" / "policy.yaml", PlanningPolicy), settings.people, channels)
    segment_spec = load_segment_spec(str(root / "features" / "segments.yaml"))
    groups = load_priority_groups(root / "serve" / "groups.yaml")
    skeleton = _audience_table(audience, None, arms, segment_spec, groups)
    budget = round(settings.budget_share * full_reach_spend(skeleton, costs), 2)
    return _World(seed, region, audience, arms, feature_set, spec, segment_spec, groups, costs, policy, budget)


def _start(world: _World, wave: int) -> dt.date:
    waves = world.region.waves
    return waves.start + dt.timedelta(days=(wave - 1) * waves.gap_days)


def _registered(enrolments: pd.DataFrame) -> set[str]:
    return set(enrolments.loc[enrolments["event"] == "registration", "person_id"].astype(str))


def _audience_table(people: pd.DataFrame, true_p: pd.DataFrame | None, arms: tuple[str, ...], segment_spec,
                    groups) -> pd.DataFrame:
    """A planner's table over ``people``'s targetable segments: size, each segment's priority groups, and the
    true effect per arm (mean true ``P(arm) - P(holdout)``; 0 without ``true_p``)."""
    from uplift.data.vocabulary import split_arm
    from uplift.features.library import age_band_of
    from uplift.segments.assign import SUPPRESSED, targetable_cells
    from uplift.segments.composition import segment_composition

    rows = people.assign(age_band=age_band_of(people["age"])).reset_index(drop=True)
    cells = targetable_cells(rows, segment_spec.dimensions, segment_spec.min_size)
    label = cells["segment"].to_numpy(dtype=object)
    shown = label != SUPPRESSED
    dims = cells.loc[shown].drop_duplicates("segment").set_index("segment")[list(segment_spec.dimensions)]
    size = pd.Series(label[shown]).value_counts()
    parts = []
    for arm in arms:
        effect = (pd.Series((true_p[arm] - true_p["holdout"]).to_numpy()[shown]).groupby(label[shown]).mean()
                  if true_p is not None else pd.Series(0.0, index=size.index))
        message, channel = split_arm(arm)
        parts.append(pd.DataFrame({"segment": size.index, "arm": arm, "message": message, "channel": channel,
                                   "size": size.to_numpy(), "effect": effect.reindex(size.index).to_numpy(),
                                   "effect_sd": 0.0, "kind": "targetable"}))
    table = pd.concat(parts, ignore_index=True).join(dims, on="segment")
    shares = segment_composition(rows, {"targetable": label}, groups)
    return table.merge(shares, on="segment", how="left")


def _true_probabilities(world: _World, prog: _Programme, people: pd.DataFrame, wave: int) -> pd.DataFrame:
    """The true ``P(arm)`` of every arm for ``people`` in ``wave`` given the programme's history (the truth)."""
    from uplift.simulate.assigned import run_assigned_wave

    probe = pd.DataFrame({"person_id": people["person_id"].astype(str).to_numpy(), "wave": wave, "arm": "holdout",
                          "assigned_at": pd.Timestamp(_start(world, wave), tz="UTC")})
    truth = run_assigned_wave(world.region, people=len(world.audience), seed=world.seed, assignment=probe,
                              history=prog.exposures, enrolments=prog.enrolments).truth
    return truth.filter(like="p__").rename(columns=lambda c: c[3:])


def _history_key(prog: _Programme) -> tuple:
    """What identifies a programme's history (two programmes with the same one plan the same from it)."""
    digest = pd.util.hash_pandas_object(prog.exposures[["person_id", "wave", "arm"]], index=False).sum()
    return len(prog.exposures), int(digest), len(prog.enrolments)


def _product_table(world: _World, prog: _Programme, clock: _Clock, cache: dict) -> tuple[pd.DataFrame, str]:
    """The product's targetable segment table from the programme's history (train, segments, groups); a history
    another programme already trained on (``cache``) is not trained on again."""
    key = ("table", _history_key(prog))
    if key not in cache:
        cache[key] = _trained_table(world, prog, clock)
    return cache[key]


def _trained_table(world: _World, prog: _Programme, clock: _Clock) -> tuple[pd.DataFrame, str]:
    from uplift.features import build_training_table
    from uplift.modeling.validation import validate_model
    from uplift.segments import build_segment_table
    from uplift.segments.composition import with_composition

    table = clock("features", build_training_table, world.audience, prog.exposures, prog.enrolments,
                  world.feature_set, source=prog.name)
    report = clock("train", validate_model, world.model_spec, table)
    rows, predictions = report.out_of_sample()
    folds, heldout = report.out_of_sample_folds()
    segments = clock("segments", build_segment_table, rows, predictions, world.segment_spec, folds=folds,
                     heldout_fold=heldout)
    segments = clock("segments", with_composition, segments, rows.frame, world.segment_spec, world.groups)
    return segments[segments["kind"] == "targetable"].reset_index(drop=True), f"{len(table.frame)} rows"


def _sized_for(table: pd.DataFrame, eligible: pd.DataFrame, segment_spec) -> pd.DataFrame:
    """The segment table with each segment's ``size`` the people of the wave's audience in it (the table counts the
    training rows' people, who are only those an earlier wave drew); segments with nobody left are dropped."""
    from uplift.design.cellpeople import planned_segments

    labels = planned_segments(eligible, table["segment"].unique(), segment_spec)
    size = pd.Series(labels[labels != ""]).value_counts()
    out = table.assign(size=table["segment"].map(size).fillna(0).astype(np.int64).to_numpy())
    return out[out["size"] > 0].reset_index(drop=True)


def _arm_estimates(prog: _Programme, arms: tuple[str, ...]) -> dict[str, float]:
    """Each arm's randomised difference from its cells' holdouts over the programme's waves so far (pooled:
    each cell's contacts times its difference, over all contacts)."""
    ex = prog.exposures
    conv = _converted(ex, prog.enrolments)
    frame = ex.assign(y=conv)
    rates = frame.groupby(["wave", "design_cell", "arm"])["y"].agg(["mean", "size"])
    out = {}
    for arm in arms:
        num = den = 0.0
        for (wave, cell, a), row in rates.iterrows():
            if a != arm or (wave, cell, "holdout") not in rates.index:
                continue
            num += row["size"] * (row["mean"] - rates.loc[(wave, cell, "holdout"), "mean"])
            den += row["size"]
        out[arm] = num / den if den else 0.0
    return out


def _converted(exposures: pd.DataFrame, enrolments: pd.DataFrame, days: int = 28) -> np.ndarray:
    """1 where the row's person registered within ``days`` of the row's assignment."""
    reg = enrolments[enrolments["event"] == "registration"][["person_id", "occurred_at"]]
    first = reg.groupby("person_id")["occurred_at"].min()
    at = pd.to_datetime(exposures["assigned_at"], utc=True)
    when = exposures["person_id"].map(first)
    return ((when >= at) & (when < at + pd.Timedelta(days=days))).to_numpy(dtype=int)


def _plans_evenly(strategy: str, wave: int) -> bool:
    """Whether ``strategy`` plans ``wave`` as the even split."""
    if strategy == "oracle":
        return False
    return wave == 1 or strategy == "even" or (strategy == "test_then_best" and wave <= 2)


def _plan_for(strategy: str, world: _World, prog: _Programme, wave: int, eligible: pd.DataFrame,
              clock: _Clock, cache: dict) -> tuple[pd.DataFrame, str]:
    """The wave's plan cells under ``strategy`` (and what it was made from)."""
    from uplift.allocation import plan, reference_plans

    if strategy == "oracle":
        true_p = clock("truth", _true_probabilities, world, prog, eligible, wave)
        table = _audience_table(eligible, true_p, world.arms, world.segment_spec, world.groups)
        greedy = world.policy.model_copy(update={"exploration_share": 0.0})
        result = clock("plan", plan, table, budget=world.budget, costs=world.costs, policy=greedy, references=False,
                       prices=False)
        return result.cells, "truth"
    if _plans_evenly(strategy, wave):
        table = _audience_table(eligible, None, world.arms, world.segment_spec, world.groups)
        return clock("plan", reference_plans, table, budget=world.budget, costs=world.costs,
                     policy=world.policy)["even"], "even"
    if strategy == "test_then_best":
        table = _audience_table(eligible, None, world.arms, world.segment_spec, world.groups)
        table["effect"] = table["arm"].map(_arm_estimates(prog, world.arms)).to_numpy(float)
        return clock("plan", reference_plans, table, budget=world.budget, costs=world.costs,
                     policy=world.policy)["single_best_message"], "waves 1-2"
    table, made_from = _product_table(world, prog, clock, cache)
    table = _sized_for(table, eligible, world.segment_spec)
    policy = world.policy if strategy == "product" else world.policy.model_copy(update={"exploration_share": 0.0})
    result = clock("plan", plan, table, budget=world.budget, costs=world.costs, policy=policy, references=False,
                   prices=False)
    return result.cells, made_from


def _run_wave(world: _World, prog: _Programme, wave: int, cells: pd.DataFrame, clock: _Clock):
    """Design the wave from ``cells``, draw its outcomes, append; returns (design, assigned wave)."""
    from uplift.design.fromplan import design_from_plan
    from uplift.simulate.assigned import run_assigned_wave
    from uplift.specs.experiment import ExperimentSpec

    start = _start(world, wave)
    spec = ExperimentSpec(name=f"{prog.name}-{wave}", wave=wave, arms=list(world.arms), holdout_share=0.1,
                          arm_weights="from_plan", salt=f"loop-{world.seed}-{wave}", outcome="registration",
                          attribution_days=28, minimum_detectable_effect=0.01, start=start,
                          end=start + dt.timedelta(days=27))
    design = clock("design", design_from_plan, cells, world.audience, spec, segment_spec=world.segment_spec,
                   costs=world.costs, registered=_registered(prog.enrolments), source=f"{prog.name} wave {wave}")
    outcome = clock("simulate", run_assigned_wave, world.region, people=len(world.audience), seed=world.seed,
                    assignment=design.exposures, history=prog.exposures, enrolments=prog.enrolments)
    prog.exposures = pd.concat([prog.exposures, design.exposures], ignore_index=True)
    prog.enrolments = pd.concat([prog.enrolments, outcome.enrolments], ignore_index=True)
    return design, outcome


def _true_incremental(design, outcome) -> float:
    """Sum over the wave's contacted people of the true ``P(arm) - P(holdout)``."""
    ex, truth = design.exposures, outcome.truth
    treated = (ex["arm"] != "holdout").to_numpy()
    p = truth.filter(like="p__").to_numpy()
    col = pd.Index([c[3:] for c in truth.filter(like="p__").columns]).get_indexer(ex["arm"])
    rows = np.arange(len(ex))
    lift = p[rows, col] - truth["p__holdout"].to_numpy()
    return float(lift[treated].sum())


def _calibration_row(world: _World, design, outcome, cells: pd.DataFrame, wave: int) -> dict:
    """What the plan promised against the wave's randomised estimates, and the calibration over its cells."""
    from uplift.design.promised import promised_and_delivered

    ex = design.exposures
    converted = _registered(outcome.enrolments)
    frame = ex.assign(registration=ex["person_id"].isin(converted).astype(int).to_numpy())
    result = promised_and_delivered(frame, cells, outcome_col="registration", level=0.95)
    total = result.total.iloc[0]
    return {"promised": float(total["promised"]), "promised_lo": float(total["promised_lo"]),
            "promised_hi": float(total["promised_hi"]), "realised": float(total["realised"]),
            "realised_lo": float(total["realised_lo"]), "realised_hi": float(total["realised_hi"]),
            "true": _true_incremental(design, outcome), **{f"calibration_{k}": v for k, v in
                                                            result.calibration.as_dict().items() if k != "level"}}


def _one_seed(seed: int, settings: LoopSettings, root: Path, say: Callable[[str], None]):
    clock = _Clock()
    world = clock("simulate", _world, seed, settings, root)
    empty_ex = pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
        ("person_id", "str"), ("wave", "int64"), ("arm", "str"), ("message", "str"), ("channel", "str"),
        ("assigned_at", "datetime64[ns, UTC]"), ("assignment_probability", "float64"), ("cost_eur", "float64"),
        ("design_cell", "str"))})
    empty_en = pd.DataFrame({"person_id": pd.Series(dtype="str"), "event": pd.Series(dtype="str"),
                             "occurred_at": pd.Series(dtype="datetime64[ns, UTC]")})
    strategies = tuple(dict.fromkeys(("oracle", *settings.strategies)))
    progs = {s: _Programme(s, empty_ex, empty_en) for s in strategies}
    waves, calibration, cache = [], [], {}
    for wave in range(1, settings.waves + 1):
        for name, prog in progs.items():
            t0 = time.perf_counter()
            even = _plans_evenly(name, wave)
            key = ("even wave", wave, _history_key(prog))
            if even and key in cache:  # the same even plan on the same history: the same wave
                row, prog.exposures, prog.enrolments = cache[key]
                waves.append({**row, "strategy": name})
                continue
            eligible = world.audience[~world.audience["person_id"].astype(str).isin(_registered(prog.enrolments))]
            cells, made_from = _plan_for(name, world, prog, wave, eligible, clock, cache)
            if not (cells["contacts"] > 0).any():  # the plan funds no cell: the wave contacts nobody
                waves.append({"seed": seed, "strategy": name, "wave": wave, "true_incremental": 0.0, "spend": 0.0,
                              "contacts": 0, "people": 0, "exploration_contacts": 0,
                              "planned_from": made_from, "seconds": time.perf_counter() - t0})
                say(f"seed {seed} wave {wave} {name}: the plan funds no cell; nobody contacted")
                continue
            design, outcome = _run_wave(world, prog, wave, cells, clock)
            true = _true_incremental(design, outcome)
            ex = design.exposures
            waves.append({"seed": seed, "strategy": name, "wave": wave, "true_incremental": true,
                          "spend": float(ex["cost_eur"].sum()), "contacts": int((ex["arm"] != "holdout").sum()),
                          "people": len(ex), "exploration_contacts": int(ex["exploration"].sum()),
                          "planned_from": made_from, "seconds": time.perf_counter() - t0})
            if even:
                cache[key] = (waves[-1], prog.exposures, prog.enrolments)
            if name.startswith("product") and made_from not in ("even",):
                calibration.append({"seed": seed, "strategy": name, "wave": wave,
                                    **clock("analyse", _calibration_row, world, design, outcome, cells, wave)})
            say(f"seed {seed} wave {wave} {name}: {true:,.1f} true incremental registrations, EUR "
                f"{ex['cost_eur'].sum():,.0f} ({time.perf_counter() - t0:.1f} s)")
    timings = pd.DataFrame([{"seed": seed, "step": k, "seconds": v} for k, v in clock.seconds.items()])
    return pd.DataFrame(waves), pd.DataFrame(calibration), timings


def run_closed_loop(settings: LoopSettings, *, root: Path,
                    progress: Callable[[str], None] | None = None) -> LoopResult:
    """Run every seed's programmes (see the module docstring)."""
    if settings.waves < 3:
        raise ValueError(f"waves must be at least 3 (test_then_best tests for two), got {settings.waves}")
    say = progress or (lambda _m: None)
    parts = [_one_seed(seed, settings, root, say) for seed in settings.seeds]
    return LoopResult(settings=settings, waves=pd.concat([p[0] for p in parts], ignore_index=True),
                      calibration=pd.concat([p[1] for p in parts], ignore_index=True),
                      timings=pd.concat([p[2] for p in parts], ignore_index=True))


def shares_of_oracle(waves: pd.DataFrame) -> pd.DataFrame:
    """Per seed, programme and wave: the wave's and the cumulative true incremental registrations as shares of
    the oracle's (``share``, ``cumulative_share``)."""
    frame = waves.sort_values(["seed", "strategy", "wave"]).copy()
    frame["cumulative"] = frame.groupby(["seed", "strategy"])["true_incremental"].cumsum()
    oracle = frame[frame["strategy"] == "oracle"].set_index(["seed", "wave"])
    key = pd.MultiIndex.from_frame(frame[["seed", "wave"]])
    frame["share"] = frame["true_incremental"].to_numpy() / oracle["true_incremental"].reindex(key).to_numpy()
    frame["cumulative_share"] = frame["cumulative"].to_numpy() / oracle["cumulative"].reindex(key).to_numpy()
    return frame


def _ceiling_lines(waves: pd.DataFrame) -> list[str]:
    """What an even first wave leaves reachable: wave 1 of the even split plus the oracle's later waves, over the
    oracle's whole programme (programmes' histories differ, so this is a guide, not a bound)."""
    oracle = waves[waves["strategy"] == "oracle"].pivot(index="seed", columns="wave", values="true_incremental")
    first = waves[(waves["strategy"] == "even") & (waves["wave"] == 1)].set_index("seed")["true_incremental"]
    if oracle.empty or first.empty:
        return []
    ceiling = (first + oracle.drop(columns=1).sum(axis=1)) / oracle.sum(axis=1)
    return ["", f"With the even split as wave 1 (no history yet), a programme that matched the oracle in every later "
                f"wave would reach {ceiling.min():.1%} to {ceiling.max():.1%} of the oracle's cumulative registrations "
                "(per seed)."]


def _promise_lines(cal: pd.DataFrame) -> list[str]:
    """How far the product's plans' promises were from the truth, wave by wave."""
    product = cal[cal["strategy"] == "product"]
    if product.empty:
        return []
    by_wave = product.groupby("wave")[["promised", "true"]].sum()
    inside = ((product["true"] >= product["promised_lo"]) & (product["true"] <= product["promised_hi"]))
    covered = ((product["true"] >= product["realised_lo"]) & (product["true"] <= product["realised_hi"]))
    return ["", "The product's promise over the true incremental registrations, per wave (summed over seeds): "
                + ", ".join(f"wave {w} {r.promised / r.true:.2f}" for w, r in by_wave.iterrows())
                + f"; the truth inside the plan's interval in {int(inside.sum())} of {len(product)} waves, inside the "
                  f"randomised estimate's 95% interval in {int(covered.sum())} of {len(product)}."]


def loop_report(result: LoopResult) -> str:
    """The closed-loop section of the report (markdown)."""
    s = result.settings
    shares = shares_of_oracle(result.waves)
    last = shares[shares["wave"] == s.waves]
    lines = [f"## The closed loop ({s.people:,} people, {s.waves} waves, seeds {', '.join(map(str, s.seeds))}, "
             f"budget {s.budget_share:.0%} of the full-reach spend per wave)", ""]
    cum = shares.pivot_table(index=["strategy", "wave"], columns="seed", values="cumulative_share")
    lines += ["Cumulative true incremental registrations as a share of the oracle's, per seed:", "",
              "| programme | wave | " + " | ".join(f"seed {x}" for x in cum.columns) + " | mean |",
              "|---|---|" + "---|" * (len(cum.columns) + 1)]
    for (strategy, wave), row in cum.iterrows():
        if strategy == "oracle":
            continue
        lines.append(f"| {strategy} | {wave} | " + " | ".join(f"{v:.1%}" for v in row) + f" | {row.mean():.1%} |")
    per = shares.pivot_table(index="strategy", columns="wave", values="share", aggfunc="mean")
    lines += ["", "Each wave's true incremental registrations as a share of the oracle's wave (mean over seeds):", "",
              "| programme | " + " | ".join(f"wave {w}" for w in per.columns) + " |",
              "|---|" + "---|" * len(per.columns)]
    for strategy, row in per.iterrows():
        if strategy != "oracle":
            lines.append(f"| {strategy} | " + " | ".join(f"{v:.1%}" for v in row) + " |")
    product = last[last["strategy"] == "product"].set_index("seed")["cumulative_share"]
    others = last[~last["strategy"].isin(["product", "oracle"])].pivot(index="seed", columns="strategy",
                                                                         values="cumulative_share")
    if len(product):
        beats = (others.lt(product, axis=0)).all(axis=1)
        lines += ["", f"Goal: the product's cumulative share beats every reference in every seed: "
                      f"{'met' if beats.all() else 'not met'} ({int(beats.sum())} of {len(beats)} seeds); "
                      f"reaches 90% of the oracle by wave {s.waves}: "
                      f"{'met' if (product >= 0.9).all() else 'not met'} (min {product.min():.1%}, "
                      f"mean {product.mean():.1%})."]
    lines += _ceiling_lines(result.waves)
    if not result.calibration.empty:
        cal = result.calibration
        lines += _promise_lines(cal)
        lines += ["", "The product's plans against their waves (95% intervals; calibration over the planned cells):",
                  "", "| programme | seed | wave | promised | delivered (randomised) | true | slope "
                      "| intercept /1,000 |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in cal.itertuples():
            lines.append(f"| {r.strategy} | {r.seed} | {r.wave} | {r.promised:,.0f} [{r.promised_lo:,.0f}, "
                         f"{r.promised_hi:,.0f}] | {r.realised:,.0f} [{r.realised_lo:,.0f}, {r.realised_hi:,.0f}] | "
                         f"{r.true:,.0f} | {r.calibration_slope:.2f} [{r.calibration_slope_lo:.2f}, "
                         f"{r.calibration_slope_hi:.2f}] | {1000 * r.calibration_intercept:+.2f} |")
    t = result.timings.groupby("step")["seconds"].sum().sort_values(ascending=False)
    lines += ["", "Time per step over all seeds and programmes (s): "
              + ", ".join(f"{k} {v:,.0f}" for k, v in t.items()) + "."]
    prod = result.waves[result.waves["strategy"] == "product"].groupby("seed")["seconds"].sum()
    if len(prod):
        lines.append(f"The product's own programme ({s.waves} waves): "
                     + ", ".join(f"seed {k} {v / 60:.1f} min" for k, v in prod.items()) + ".")
    return "\n".join(lines) + "\n"


def combined(folders: list[Path], settings: LoopSettings) -> LoopResult:
    """The results of several runs (their ``loop_*.csv``), e.g. seeds run in separate processes, as one."""
    from uplift.data.tableio import read_table

    def read(name: str) -> pd.DataFrame:
        parts = [read_table(f / name) for f in folders if (f / name).exists()]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    waves = read("loop_waves.csv")
    waves = waves[["seed", "strategy", "wave", "true_incremental", "spend", "contacts", "people",
                   "exploration_contacts", "planned_from", "seconds"]]
    seeds = tuple(sorted(int(x) for x in waves["seed"].unique()))
    return LoopResult(settings=settings.__class__(**{**settings.__dict__, "seeds": seeds}), waves=waves,
                      calibration=read("loop_calibration.csv"), timings=read("loop_timings.csv"))


def main(argv=None) -> None:
    """``python -m benchmarks.closedloop --out DIR [--people N --waves W --seeds ...] [--combine DIR ...]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.closedloop", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--waves", type=int, default=6)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--budget-share", type=float, default=0.2)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--messages", nargs="+")
    p.add_argument("--channels", nargs="+")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    p.add_argument("--combine", type=Path, nargs="+", help="only write the report of these runs' results together")
    a = p.parse_args(argv)
    settings = LoopSettings(people=a.people, waves=a.waves, seeds=tuple(a.seeds), budget_share=a.budget_share,
                            folds=a.folds, threads=a.threads, strategies=tuple(a.strategies),
                            messages=tuple(a.messages) if a.messages else None,
                            channels=tuple(a.channels) if a.channels else None)
    from uplift.data.tableio import atomic_path, write_table

    root = Path(__file__).resolve().parents[1]
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    def write(result: LoopResult) -> None:
        write_table(shares_of_oracle(result.waves), a.out / "loop_waves.csv")
        write_table(result.calibration, a.out / "loop_calibration.csv")
        write_table(result.timings, a.out / "loop_timings.csv")
        with atomic_path(a.out / "loop.md") as tmp:
            tmp.write_text(loop_report(result) + ("" if a.combine else
                                                  f"\nWall time {time.perf_counter() - t0:,.0f} s.\n"))

    if a.combine:
        result = combined(a.combine, settings)
        write(result)
        record(a.out, "benchmarks.closedloop", headline_rows(result), argv=argv)
    else:
        done = []
        for seed in settings.seeds:  # every seed's results are written as soon as it is done
            one = LoopSettings(**{**settings.__dict__, "seeds": (seed,)})
            done.append(run_closed_loop(one, root=root, progress=lambda m: print(m, flush=True)))
            so_far = LoopSettings(**{**settings.__dict__, "seeds": tuple(settings.seeds[:len(done)])})
            write(LoopResult(settings=so_far,
                             waves=pd.concat([r.waves for r in done], ignore_index=True),
                             calibration=pd.concat([r.calibration for r in done], ignore_index=True),
                             timings=pd.concat([r.timings for r in done], ignore_index=True)))
        record(a.out, "benchmarks.closedloop", headline_rows(LoopResult(
            settings=settings, waves=pd.concat([r.waves for r in done], ignore_index=True),
            calibration=pd.concat([r.calibration for r in done], ignore_index=True),
            timings=pd.concat([r.timings for r in done], ignore_index=True))), argv=argv)
    print((a.out / "loop.md").read_text())


def headline_rows(result: LoopResult) -> list[HeadlineRow]:
    """The README's figures of the closed loop (:mod:`benchmarks.headline`): each programme's cumulative share of
    the oracle at the last wave, mean and range over the seeds."""
    shares = shares_of_oracle(result.waves)
    last = shares[shares["wave"] == shares["wave"].max()]
    s = result.settings
    on = (f"closed loop, {s.people:,} people x {s.waves} waves, seeds {', '.join(map(str, s.seeds))}, "
          f"{s.budget_share:.0%} of the full-reach spend per wave")
    names = {"product": "the product (retrain, plan, design from the plan, analyse, every wave)",
             "product_no_exploration": "the product without exploration", "test_then_best":
             "test evenly for two waves, then the best message", "even": "the even split every wave"}
    rows = []
    for strategy, label in names.items():
        got = last.loc[last["strategy"] == strategy, "cumulative_share"]
        if len(got):
            rows.append(HeadlineRow(f"cumulative registrations by wave {s.waves} as a share of the oracle's: {label}",
                                    f"{got.mean():.1%} ({got.min():.1%}-{got.max():.1%})", on))
    return rows


if __name__ == "__main__":
    main()
