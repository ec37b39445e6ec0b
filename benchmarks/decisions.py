"""Decisions on the simulator: the recommended plan's true incremental conversions as a share of the oracle's.

For every seed: simulate a world, build the training table, validate the pooled model
(``models/pooled_lightgbm.yaml``) exactly as ``uplift train`` does, build the targetable segment
table from its out-of-sample predictions, and plan with :func:`uplift.allocation.plan` at every
budget. :func:`uplift.evaluation.compare_with_oracle` scores each plan under the simulator's true
segment effects against the oracle plan (same solver on the true effects, same budget and policy).

The noise frontier (:func:`uplift.evaluation.noise_frontier`) plans the same world from reference
estimates of known noise (truth + Gaussian noise, shrunk by the exact posterior weight) without
exploration: the share of the oracle each noise level allows, the noise equivalent to the product's
own estimates, and how much more history the 95% goal would need at that rate.

Where the gap lives: the same world planned (no exploration) from tables that are half truth, half
estimate (:func:`uplift.evaluation.with_arm_levels`): our estimates with the true arm levels, the
truth with our arm levels, and the segments' persona mix with exact persona effects
(:func:`uplift.segments.truth_persona_mix`). And from the simulator's own response model with its
numbers fitted to the world's rows by maximum likelihood, given every row's true persona
(:mod:`uplift.evaluation.trueform`): what estimates that knew everything but the numbers would plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from uplift.evaluation import (
    compare_with_oracle,
    equivalent_noise_ratio,
    noise_frontier,
    true_effects_table,
    with_arm_levels,
)
from uplift.specs.planning import CostCatalogue, FairnessFloor, PlanningPolicy

__all__ = ["GAP_VARIANTS", "DecisionSettings", "DecisionResult", "fitted_true_form", "run_decisions", "scaled_policy",
           "full_reach_spend"]

REFERENCE_PEOPLE = 100_000
"""The population the shipped policy's channel minimums and maximums are written for (``uplift run``'s default)."""


@dataclass(frozen=True)
class DecisionSettings:
    """Sizes of the decision benchmark.

    Attributes
    ----------
    people, waves : simulated residents and waves per world.
    seeds : one world per seed.
    budget_shares : budgets as shares of :func:`full_reach_spend` (the cost of reaching every
        reachable person of every segment once on every channel).
    folds : cross-validation folds of the pooled model's validation (the spec says 5).
    messages, channels : optional subset of the region's messages / channels (tiny test worlds).
    threads : LightGBM threads per fit (:func:`benchmarks.targeting.with_threads`).
    frontier_ratios : noise ratios (noise sd / the true effects' spread) of the noise frontier; empty = none.
    frontier_repeats : noise draws per ratio.
    true_form : also plan from the fitted true form (:mod:`uplift.evaluation.trueform`; a few minutes
        per world of 100,000 people).
    """

    people: int = 20_000
    waves: int = 3
    seeds: tuple[int, ...] = (1,)
    budget_shares: tuple[float, ...] = (0.05, 0.2)
    folds: int = 3
    messages: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    threads: int = 1
    frontier_ratios: tuple[float, ...] = (0.3, 0.5, 0.8, 1.2)
    frontier_repeats: int = 1
    true_form: bool = True


@dataclass(frozen=True)
class DecisionResult:
    """Per seed and budget: plans scored under the truth, the floors, how good the estimates were, the
    noise frontier (columns of :data:`uplift.evaluation.FRONTIER_COLUMNS` plus ``seed``) and where the
    gap lives (``seed``, ``variant``, ``budget``, ``budget_share``, ``share_of_oracle``; see
    :data:`GAP_VARIANTS`)."""

    settings: DecisionSettings
    plans: pd.DataFrame = field(repr=False)
    floors: pd.DataFrame = field(repr=False)
    estimates: pd.DataFrame = field(repr=False)
    frontier: pd.DataFrame = field(repr=False)
    gap: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


GAP_VARIANTS: tuple[str, ...] = ("true_arm_levels", "true_deviations", "exact_persona_effects", "fitted_true_form")
"""Tables planned without exploration: our cell deviations with the truth's arm levels, the truth's
deviations with our arm levels, each segment's persona mix with exact persona effects, and the
simulator's own response model fitted to the world's rows (when :attr:`DecisionSettings.true_form`)."""


def full_reach_spend(segments: pd.DataFrame, costs: CostCatalogue) -> float:
    """EUR to reach every reachable person of every segment once on every channel of ``segments``."""
    sizes = segments.drop_duplicates("segment")["size"].to_numpy(dtype=float).sum()
    per_person = 0.0
    for name in sorted(segments["channel"].unique()):
        channel = costs.channel(name)
        per_person += sum(t.share * t.multiplier for t in channel.tiers) * channel.unit_cost
    return float(sizes * per_person)


def scaled_policy(policy: PlanningPolicy, people: int, channels: set[str]) -> PlanningPolicy:
    """The shipped policy with its channel minimums and maximums and its coverage floors' contacts
    scaled to ``people`` residents (they are written for :data:`REFERENCE_PEOPLE`) and limited to the
    channels present."""
    factor = people / REFERENCE_PEOPLE
    return policy.model_copy(update={
        "min_spend": {k: v * factor for k, v in policy.min_spend.items() if k in channels},
        "max_spend": {k: v * factor for k, v in policy.max_spend.items() if k in channels},
        "coverage_floors": tuple(c.model_copy(update={"min_contacts": c.min_contacts * factor})
                                 for c in policy.coverage_floors),
    })


def scaled_costs(costs: CostCatalogue, people: int) -> CostCatalogue:
    """The catalogue with each channel's smallest line (``min_line_spend``, ``min_print_run``) scaled to ``people``
    residents as the policy's minimums are (:func:`scaled_policy`): unchanged at :data:`REFERENCE_PEOPLE`, and a
    world of a few thousand people still has lines it can buy."""
    factor = people / REFERENCE_PEOPLE
    return costs.model_copy(update={"channels": {
        name: channel.model_copy(update={"min_line_spend": channel.min_line_spend * factor,
                                         "min_print_run": round(channel.min_print_run * factor)})
        for name, channel in costs.channels.items()}})


def _one_world(seed: int, settings: DecisionSettings, root: Path, say: Callable[[str], None]):
    from benchmarks.worlds import capture_world, segment_table, world_region
    from uplift.pipeline import load_feature_set, load_segment_spec
    from uplift.segments import truth_persona_mix, truth_segment_effects

    region = world_region(root, "haaglanden")
    world = capture_world(region, name=f"seed {seed}", people=settings.people, waves=settings.waves, seed=seed,
                          root=root, folds=settings.folds, threads=settings.threads, messages=settings.messages,
                          channels=settings.channels, say=say)
    segment_spec = load_segment_spec(str(root / "features" / "segments.yaml"))
    rows, true_p = world.rows, world.true_p
    segments = segment_table(world, segment_spec)  # with each segment's priority groups
    estimated = segments[segments["kind"] == "targetable"].reset_index(drop=True)
    truth = truth_segment_effects(rows, true_p, segment_spec)
    personas = segments[segments["kind"] == "persona"].merge(truth, on=["segment", "arm"])
    covered = (personas["true_effect"] >= personas["lo"]) & (personas["true_effect"] <= personas["hi"])
    persona_check = {"persona_cells": len(personas), "persona_coverage_80": float(covered.mean())}
    halves = {"exact_persona_effects": true_effects_table(estimated, truth_persona_mix(rows, true_p, segment_spec),
                                                          source="exact persona mix")}
    event = load_feature_set(str(root / "features" / "default.yaml")).outcome.event
    if settings.true_form and event == "registration":  # the true form models registration only
        say(f"seed {seed}: fit the simulator's response model to {len(rows.frame):,} person-waves")
        halves["fitted_true_form"] = true_effects_table(estimated, fitted_true_form(world, segment_spec),
                                                        source="fitted true form")
    return estimated, true_effects_table(estimated, truth), persona_check, halves


def fitted_true_form(world, segment_spec) -> pd.DataFrame:
    """Segment effects (``segment_spec``'s segments) of the simulator's response model fitted to a captured
    world's rows (:class:`benchmarks.worlds.WorldData`; :mod:`uplift.evaluation.trueform`), given every
    row's true persona."""
    from uplift.evaluation.trueform import fit_true_form, people_for_rows, shown_before, true_form
    from uplift.segments import truth_segment_effects

    region, frame = world.region, world.rows.frame
    truth = pd.DataFrame({"person_id": frame["person_id"].astype(str), "wave": frame["wave"],
                          "persona": world.truth_persona})
    form = true_form(region, people_for_rows(frame, truth, region), shown_before(frame, list(region.messages)))
    fit = fit_true_form(form, frame["outcome"].to_numpy(dtype=float), frame["arm"].astype(str).to_numpy())
    fitted = form.arm_probabilities(fit.theta, list(world.rows.arms))
    fitted.index = frame.index
    return truth_segment_effects(world.rows, fitted, segment_spec)


def _policies(policy: PlanningPolicy) -> list[tuple[str, PlanningPolicy]]:
    """The policies scored: the shipped one, without exploration, with its spend floors as
    conversion floors, in expectation and with 90% confidence (what a conversion floor achieves
    under the truth is only measurable here), and the shipped one without each of its floors in turn
    (``without_<floor>``: what holding the floor costs in truth)."""
    greedy = policy.model_copy(update={"exploration_share": 0.0})

    def as_conversions(confidence: float) -> tuple[FairnessFloor, ...]:
        return tuple(f.model_copy(update={"kind": "conversion_share", "confidence": confidence})
                     if f.kind == "spend_share" else f for f in policy.fairness_floors)

    without = [(f"without_{f.name}", policy.model_copy(update={
                   "fairness_floors": tuple(g for g in policy.fairness_floors if g.name != f.name),
                   "coverage_floors": tuple(g for g in policy.coverage_floors if g.name != f.name)}))
               for f in (*policy.fairness_floors, *policy.coverage_floors)]
    return [
        ("shipped", policy),
        ("no_exploration", greedy),
        ("conversion_floors", greedy.model_copy(update={"fairness_floors": as_conversions(0.5)})),
        ("conversion_floors_90", greedy.model_copy(update={"fairness_floors": as_conversions(0.9)})),
        *without,
    ]


def run_decisions(
    settings: DecisionSettings, *, root: Path, progress: Callable[[str], None] | None = None
) -> DecisionResult:
    """Run the benchmark; see the module docstring.

    The policies scored (:func:`_policies`): the shipped ``serve/policy.yaml`` (10% Thompson
    exploration), the same without exploration, and that with every spend floor as a share of
    expected conversions instead, held in expectation and with 90% confidence; and the shipped policy
    without each of its floors in turn. Channel minimums and maximums, the channels' smallest lines and
    coverage floors are scaled to the simulated population.
    """
    from uplift.specs import load_spec

    say = progress or (lambda _m: None)
    costs = scaled_costs(load_spec(root / "serve" / "costs.yaml", CostCatalogue), settings.people)
    shipped = load_spec(root / "serve" / "policy.yaml", PlanningPolicy)
    plans, floors, estimates, frontier, gap = [], [], [], [], []
    for seed in settings.seeds:
        estimated, truth, persona_check, tables = _one_world(seed, settings, root, say)
        policy = scaled_policy(shipped, settings.people, set(estimated["channel"]))
        capacity = full_reach_spend(estimated, costs)
        budgets = [round(share * capacity, 2) for share in settings.budget_shares]
        est, true = estimated["effect"].to_numpy(float), truth["effect"].to_numpy(float)
        sd = estimated["effect_sd"].to_numpy(float)
        covered = (true >= estimated["lo"].to_numpy(float)) & (true <= estimated["hi"].to_numpy(float))
        estimates.append({
            "seed": seed, "segments": int(estimated["segment"].nunique()), "cells": len(estimated),
            "corr": float(np.corrcoef(est, true)[0, 1]) if est.std() > 0 and true.std() > 0 else float("nan"),
            "mean_abs_error": float(np.mean(np.abs(est - true))), "mean_sd": float(np.mean(sd)),
            "true_sd_across_cells": float(true.std()), "coverage_80": float(covered.mean()),
            "equivalent_noise_ratio": equivalent_noise_ratio(est, true),
            "persona_mix_used": bool(estimated["persona_mix"].notna().any()),
            **persona_check, "full_reach_spend": capacity,
        })
        policies = dict(_policies(policy))
        for label, pol in policies.items():
            say(f"seed {seed}: plan and score at {len(budgets)} budgets ({label} policy)")
            result = compare_with_oracle(estimated, truth, budgets=budgets, costs=costs, policy=pol)
            shares = dict(zip(budgets, settings.budget_shares, strict=True))
            plans.append(result.plans.assign(seed=seed, policy=label, budget_share=result.plans["budget"].map(shares)))
            floors.append(result.floors.assign(seed=seed, policy=label))
        greedy = policies["no_exploration"]
        halves = {"true_arm_levels": with_arm_levels(estimated, truth, source="truth"),
                  "true_deviations": with_arm_levels(truth, estimated, source="estimates"), **tables}
        say(f"seed {seed}: where the gap lives ({len(halves)} tables x {len(budgets)} budgets)")
        for variant, table in halves.items():
            scored = compare_with_oracle(table, truth, budgets=budgets, costs=costs, policy=greedy).plans
            scored = scored[scored["plan"] == "recommended"]
            gap.append(pd.DataFrame({"seed": seed, "variant": variant, "budget": scored["budget"].to_numpy(),
                                     "budget_share": scored["budget"].map(
                                         dict(zip(budgets, settings.budget_shares, strict=True))),
                                     "share_of_oracle": scored["share_of_oracle"].to_numpy()}))
        if settings.frontier_ratios:
            say(f"seed {seed}: noise frontier at {len(settings.frontier_ratios)} noise levels "
                f"x {settings.frontier_repeats} draws")
            frontier.append(noise_frontier(truth, budgets=budgets, costs=costs, policy=greedy,
                                           ratios=settings.frontier_ratios, repeats=settings.frontier_repeats,
                                           seed=seed).assign(seed=seed))
    return DecisionResult(
        settings=settings,
        plans=pd.concat(plans, ignore_index=True),
        floors=pd.concat(floors, ignore_index=True),
        estimates=pd.DataFrame(estimates),
        frontier=pd.concat(frontier, ignore_index=True) if frontier else pd.DataFrame(),
        gap=pd.concat(gap, ignore_index=True),
    )
