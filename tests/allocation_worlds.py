"""Small effects tables with a known answer for the planner's tests (uplift.allocation), and checks of the
rules a plan must keep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uplift.specs.planning import CostCatalogue

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "serve"


def synthetic_effects(
    n_segments: int = 8,
    messages: tuple[str, ...] = ("recognition", "role_model"),
    channels: tuple[str, ...] = ("meta", "flyer", "email"),
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """A small segment x arm table with attribute columns; effects of order 1e-3 per contact."""
    rng = np.random.default_rng(seed)
    segments = pd.DataFrame(
        {
            "segment": [f"seg{i:02d}" for i in range(n_segments)],
            "size": rng.integers(800, 6000, n_segments),
            "gender": np.resize(["female", "male"], n_segments),
            "age_band": np.resize(["25-34", "45-54", "55-67", "18-24"], n_segments),
        }
    )
    parts = []
    for message in messages:
        for channel in channels:
            part = segments.copy()
            part["message"] = message
            part["channel"] = channel
            part["arm"] = f"{message}@{channel}"
            part["effect"] = rng.normal(0.004, 0.003, n_segments)
            part["effect_sd"] = rng.uniform(0.0005, 0.002, n_segments)
            part["base_rate"] = 0.004
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def hand_world(effect: float = 0.01, size: int = 10_000) -> tuple[pd.DataFrame, CostCatalogue]:
    """One segment, one arm, one channel with two reach tiers."""
    costs = CostCatalogue.model_validate(
        {
            "channels": {
                "meta": {
                    "cost_per_mille": 10.0,
                    "impressions_per_contact": 5,  # EUR 0.05 per contact
                    "tiers": [{"share": 0.4, "multiplier": 1.0}, {"share": 0.3, "multiplier": 2.0}],
                }
            }
        }
    )
    effects = pd.DataFrame(
        {
            "segment": ["women_45"],
            "size": [size],
            "arm": ["recognition@meta"],
            "message": ["recognition"],
            "channel": ["meta"],
            "effect": [effect],
            "effect_sd": [0.002],
            "base_rate": [0.003],
        }
    )
    return effects, costs


def reach_share(costs: CostCatalogue, channel: str) -> float:
    return costs.channel(channel).reachable_share


def two_segment_world(sd_a: float = 0.002) -> tuple[pd.DataFrame, CostCatalogue]:
    """Segments A and B (10,000 people each) on the hand world's meta curve, two messages: m1 lifts
    A (0.01) and m2 lifts B (0.012); each lifts the other segment by 0.002. Every cell loads 0.001
    per contact on one shared factor, besides its own error (``sd_a`` for A/m1, 0.003 for the others;
    ``effect_sd`` is their whole)."""
    _, costs = hand_world()
    effects = pd.DataFrame({
        "segment": ["A", "A", "B", "B"], "size": 10_000, "arm": ["m1@meta", "m2@meta", "m1@meta", "m2@meta"],
        "message": ["m1", "m2", "m1", "m2"], "channel": "meta", "effect": [0.01, 0.002, 0.002, 0.012],
        "effect_sd": np.hypot([sd_a, 0.003, 0.003, 0.003], 0.001), "base_rate": 0.003, "calibration_load_1": 0.001,
        "calibration_load_2": 0.0,
    })
    return effects, costs


def ordered_cost(contacts: float, size: float, channel) -> float:
    """EUR that ``contacts`` cost on a reach curve filled cheapest tier first."""
    cost, left = 0.0, contacts
    for tier in channel.tiers:
        take = min(left, tier.share * size)
        cost, left = cost + take * tier.multiplier * channel.unit_cost, left - take
    return cost


def assert_reach_curves_filled_in_order(cells: pd.DataFrame, costs: CostCatalogue) -> None:
    """Every (segment, channel) pays what its contacts cost with the cheaper tiers filled first: a
    reach curve sells no dear contact before the cheap ones (up to one contact's price per cell,
    from rounding contacts down to whole people)."""
    groups = cells.groupby(["segment", "channel"]).agg(contacts=("contacts", "sum"), spend=("spend", "sum"),
                                                       size=("size", "first"), n=("arm", "size"))
    for (_, ch), g in groups.iterrows():
        channel = costs.channel(ch)
        dearest = max(t.multiplier for t in channel.tiers) * channel.unit_cost
        assert g["spend"] == pytest.approx(ordered_cost(g["contacts"], g["size"], channel),
                                           abs=g["n"] * dearest + 1e-6), (ch, g.to_dict())


def check_hard_rules(result, effects, costs, policy, budget):
    """Budget, reach tiers, holdout, channel maxima (always) and segment share (when optimal)."""
    cells = result.cells.merge(effects[["segment", "arm", "size"]], on=["segment", "arm"])
    assert cells["spend"].sum() <= budget * (1 + 1e-9) + 1e-6
    per_seg = cells.groupby("segment").agg(contacts=("contacts", "sum"), holdout=("holdout_people", "sum"),
                                           size=("size", "first"), spend=("spend", "sum"))
    assert (per_seg["contacts"] + per_seg["holdout"] <= per_seg["size"]).all()
    assert (per_seg["contacts"] <= (1 - policy.holdout_share) * per_seg["size"] + 1e-6).all()
    per_group = cells.groupby(["segment", "channel"]).agg(contacts=("contacts", "sum"), size=("size", "first"))
    reach = np.array([reach_share(costs, ch) for ch in per_group.index.get_level_values("channel")])
    assert (per_group["contacts"] <= reach * per_group["size"] + 1e-6).all()
    assert_reach_curves_filled_in_order(cells, costs)
    per_channel = cells.groupby("channel")["spend"].sum()
    for channel, most in policy.max_spend.items():
        assert per_channel.get(channel, 0.0) <= most * (1 + 1e-9) + 1e-6
    if result.status == "optimal" and policy.max_segment_share < 1:
        # rounding contacts down may move a share by at most one contact's price per cell
        slack = cells["channel"].map(lambda ch: max(t.multiplier for t in costs.channel(ch).tiers)
                                     * costs.channel(ch).unit_cost).sum()
        assert (per_seg["spend"] <= policy.max_segment_share * (cells["spend"].sum() + slack) + slack).all()


def floor_odds(cells: pd.DataFrame, effects: pd.DataFrame, floor_segments, min_share: float,
                optimism: float = 0.0) -> float:
    """By hand: the probability, with independent normal cell errors, that a plan's conversion share
    in the segments ``floor_segments`` is at least ``min_share``, its expected slack lowered by
    ``optimism`` conversions."""
    from statistics import NormalDist

    merged = cells.merge(effects[["segment", "arm", "effect", "effect_sd"]], on=["segment", "arm"],
                         suffixes=("_plan", ""))
    a = np.where(merged["segment"].isin(list(floor_segments)), 1.0, 0.0) - min_share
    mean = float(np.sum(a * merged["contacts"] * merged["effect"]))
    sd = float(np.sqrt(np.sum((a * merged["contacts"] * merged["effect_sd"]) ** 2)))
    return NormalDist().cdf((mean - optimism) / sd)


def kind_table(kind: str, *, seed: int = 0) -> pd.DataFrame:
    """Effects shaped as the product's segment table of ``kind``: targetable cells carry gender and age band
    (persona "any"); persona segments carry their persona (gender and age band "any")."""
    effects = synthetic_effects(n_segments=8, channels=("meta", "flyer", "email"), seed=seed).assign(kind=kind)
    # each segment's share of the shipped priority groups (serve/groups.yaml), one value per segment
    number = effects["segment"].str.extract(r"(\d+)$", expand=False).astype(int)
    effects = effects.assign(group__migration_background=0.2 + 0.1 * (number % 5),
                             group__poorer_neighbourhoods=0.1 * (number % 4))
    if kind == "targetable":
        return effects.assign(persona="any", municipality=np.where(number % 2 == 0, "Delft", "Zoetermeer"))
    personas = effects["segment"].str.replace("seg0", "persona=p", regex=False)
    return effects.assign(segment=personas, persona=personas.str.removeprefix("persona="), gender="any", age_band="any",
                          municipality="any")
