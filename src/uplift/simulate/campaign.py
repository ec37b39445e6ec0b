"""Running the randomised waves: who is assigned which arm, when, and who registers within the window."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.simulate.effects import (
    baseline_probability,
    channel_multipliers,
    message_lifts,
    registration_probabilities,
    stage_rates,
)
from uplift.simulate.population import Population
from uplift.specs.region import LATER_EVENTS, RegionSpec
from uplift.vocabulary import NO_MESSAGE

__all__ = [
    "CampaignLog",
    "run_campaign",
    "wave_rng",
    "to_utc",
    "P_PREFIX",
    "Q_PREFIX",
    "NS_PER_SECOND",
    "STREAM_POPULATION",
    "STREAM_WAVE",
    "STREAM_FUNNEL",
]

P_PREFIX = "p__"
"""Truth column prefix: ``p__<arm>`` = P(registration within the window | arm)."""
Q_PREFIX = "q__"
"""Truth column prefix: ``q__<event>`` = P(reaching the event | registered)."""
NS_PER_SECOND = 1_000_000_000
_SECONDS_PER_DAY = 86_400

# random streams: one per purpose (and per wave), so adding waves leaves earlier draws unchanged
STREAM_POPULATION, STREAM_WAVE, STREAM_FUNNEL = 1, 2, 3


def wave_rng(seed: int, stream: int, wave: int = 0, chunk: int | None = None) -> np.random.Generator:
    """The random generator of one stream (population, wave, funnel) of a simulation; a world simulated in
    chunks of people (:mod:`uplift.simulate.chunked`) has one per chunk as well."""
    entropy = [seed, stream, wave] + ([] if chunk is None else [chunk])
    return np.random.default_rng(np.random.SeedSequence(entropy))


def to_utc(ns: np.ndarray) -> pd.Series:
    """Nanoseconds since the epoch -> a ``datetime64[ns, UTC]`` Series (positional index)."""
    return pd.Series(pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True))


@dataclass(frozen=True)
class CampaignLog:
    """What the waves produced.

    Attributes
    ----------
    exposures : the exposures contract, one row per (person, wave) randomised, in wave order.
    truth : one row per exposures row (same order): ``person_id``, ``wave``, ``persona``,
        ``p__<arm>`` for every arm and ``q__<event>`` for every later funnel event.
    registered : positions (in the population) of the people who registered.
    registered_at : their registration times, ns since the epoch (UTC).
    """

    exposures: pd.DataFrame = field(repr=False)
    truth: pd.DataFrame = field(repr=False)
    registered: np.ndarray = field(repr=False)
    registered_at: np.ndarray = field(repr=False)


def _registration_delay_seconds(n: int, spec: RegionSpec, rng: np.random.Generator) -> np.ndarray:
    """Exponential delay with the declared mean, cut at the attribution window: in [1 s, window)."""
    mean = spec.registration_delay_days
    window = spec.attribution_days
    u = rng.random(n)
    days = -mean * np.log1p(-u * (1.0 - np.exp(-window / mean)))
    return np.clip(np.floor(days * _SECONDS_PER_DAY), 1, window * _SECONDS_PER_DAY - 1).astype(np.int64)


def run_campaign(
    spec: RegionSpec, population: Population, *, waves: int, seed: int, chunk: int | None = None
) -> CampaignLog:
    """Randomise the eligible people wave by wave and draw registrations from their true probabilities.

    A person who registered in an earlier wave is not randomised again; everyone else is
    reached with probability ``spec.waves.reach`` and then assigned an arm with the wave's
    probabilities (:meth:`RegionSpec.wave_probabilities`). Wear-out counts the earlier waves
    in which the person was shown each message. ``chunk`` names the chunk of people of a world simulated in
    chunks (its own random streams); None for a world simulated whole.
    """
    arms = spec.arm_names()
    n_messages, n_channels = len(spec.messages), len(spec.channels)
    arm_message = np.array([NO_MESSAGE] + [m for m in spec.messages for _ in spec.channels], dtype=object)
    arm_channel = np.array([NO_MESSAGE] + [c for _ in spec.messages for c in spec.channels], dtype=object)
    arm_cost = np.array([0.0] + [spec.channels[c].cost_eur for _ in spec.messages for c in spec.channels])
    arm_labels = np.array(arms, dtype=object)

    people = population.attributes()
    baseline = baseline_probability(spec, people)
    lifts = message_lifts(spec, people)
    multipliers = channel_multipliers(spec, people)
    continuation = np.cumprod(stage_rates(spec, population.persona), axis=1)
    person_ids = population.audience["person_id"].to_numpy(dtype=object)

    n = len(population)
    registered = np.zeros(n, dtype=bool)
    registered_at = np.zeros(n, dtype=np.int64)
    shown = np.zeros((n, n_messages), dtype=np.int16)
    start_ns = np.datetime64(spec.waves.start, "ns").astype(np.int64)
    jitter_seconds = spec.waves.jitter_hours * 3600.0

    # the truth's float block, filled wave by wave (at most n rows per wave), trimmed at the end
    n_p = len(arms)
    probabilities = np.empty((n * waves, n_p + len(LATER_EVENTS)))
    filled = 0
    parts: list[dict[str, np.ndarray]] = []
    for wave in range(1, waves + 1):
        rng = wave_rng(seed, STREAM_WAVE, wave, chunk)
        idx = np.flatnonzero(~registered)
        if spec.waves.reach < 1.0:
            idx = idx[rng.random(len(idx)) < spec.waves.reach]
        m = len(idx)
        probs = np.array(list(spec.wave_probabilities(wave).values()))
        cumulative = np.cumsum(probs)
        cumulative /= cumulative[-1]
        arm = np.searchsorted(cumulative, rng.random(m), side="right")
        offset = np.floor(rng.random(m) * jitter_seconds).astype(np.int64)
        assigned_at = start_ns + ((wave - 1) * spec.waves.gap_days * _SECONDS_PER_DAY + offset) * NS_PER_SECOND

        p = probabilities[filled : filled + m, :n_p]
        p[:] = registration_probabilities(
            baseline[idx],
            lifts[idx],
            multipliers[idx],
            shown[idx],
            wear_out=spec.wear_out,
            min_relative_lift=spec.min_relative_lift,
            max_probability=spec.max_probability,
        )
        probabilities[filled : filled + m, n_p:] = continuation[idx]
        filled += m
        hit = rng.random(m) < p[np.arange(m), arm]
        delay = _registration_delay_seconds(m, spec, rng)
        registered[idx[hit]] = True
        registered_at[idx[hit]] = assigned_at[hit] + delay[hit] * NS_PER_SECOND

        treated = arm > 0
        shown[idx[treated], (arm[treated] - 1) // n_channels] += 1

        parts.append(
            {
                "idx": idx,
                "wave": np.full(m, wave, dtype=np.int64),
                "arm": arm,
                "assigned_at": assigned_at,
                "probability": probs[arm],
            }
        )

    def stacked(key: str) -> np.ndarray:
        return np.concatenate([part[key] for part in parts])

    idx, arm = stacked("idx"), stacked("arm")
    exposures = pd.DataFrame(
        {
            "person_id": pd.Series(person_ids[idx], dtype="str"),
            "wave": stacked("wave"),
            "arm": pd.Series(arm_labels[arm], dtype="str"),
            "message": pd.Series(arm_message[arm], dtype="str"),
            "channel": pd.Series(arm_channel[arm], dtype="str"),
            "assigned_at": to_utc(stacked("assigned_at")),
            "assignment_probability": stacked("probability"),
            "cost_eur": arm_cost[arm],
        }
    )
    columns = [f"{P_PREFIX}{a}" for a in arms] + [f"{Q_PREFIX}{e}" for e in LATER_EVENTS]
    truth = pd.DataFrame(probabilities[:filled], columns=columns, copy=False)
    truth.insert(0, "persona", pd.Series(population.persona[idx], dtype="str"))
    truth.insert(0, "wave", exposures["wave"].to_numpy())
    truth.insert(0, "person_id", exposures["person_id"])
    who = np.flatnonzero(registered)
    return CampaignLog(exposures=exposures, truth=truth, registered=who, registered_at=registered_at[who])
