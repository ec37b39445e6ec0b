"""Running the randomised waves: who is assigned which arm, when, and who registers within the window."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.data.vocabulary import NO_MESSAGE
from uplift.simulate.effects import (
    baseline_probability,
    channel_multipliers,
    message_lifts,
    registration_probabilities,
    stage_rates,
)
from uplift.simulate.population import Population
from uplift.specs.region import LATER_EVENTS, RegionSpec

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


@dataclass(frozen=True)
class _Arms:
    """Every arm's label, message, channel and cost per contact, by arm number (0: the holdout)."""

    label: np.ndarray
    message: np.ndarray
    channel: np.ndarray
    cost: np.ndarray

    @classmethod
    def of(cls, spec: RegionSpec) -> _Arms:
        return cls(
            label=np.array(spec.arm_names(), dtype=object),
            message=np.array([NO_MESSAGE] + [m for m in spec.messages for _ in spec.channels], dtype=object),
            channel=np.array([NO_MESSAGE] + [c for _ in spec.messages for c in spec.channels], dtype=object),
            cost=np.array([0.0] + [spec.channels[c].cost_eur for _ in spec.messages for c in spec.channels]),
        )


@dataclass(frozen=True)
class _Response:
    """Every person's true response: baseline, lift per message, multiplier per channel and the chance of going
    on from registration to each later funnel event."""

    baseline: np.ndarray
    lifts: np.ndarray
    multipliers: np.ndarray
    continuation: np.ndarray

    @classmethod
    def of(cls, spec: RegionSpec, population: Population) -> _Response:
        people = population.attributes()
        return cls(
            baseline=baseline_probability(spec, people),
            lifts=message_lifts(spec, people),
            multipliers=channel_multipliers(spec, people),
            continuation=np.cumprod(stage_rates(spec, population.persona), axis=1),
        )


@dataclass
class _Waves:
    """What the waves so far left: who registered and when, how many waves showed each person each message, the
    truth's float block (filled wave by wave, at most one row per person and wave, trimmed at the end) and each
    wave's assignments."""

    registered: np.ndarray
    registered_at: np.ndarray
    shown: np.ndarray
    probabilities: np.ndarray
    filled: int = 0
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    @classmethod
    def start(cls, spec: RegionSpec, people: int, waves: int) -> _Waves:
        return cls(
            registered=np.zeros(people, dtype=bool),
            registered_at=np.zeros(people, dtype=np.int64),
            shown=np.zeros((people, len(spec.messages)), dtype=np.int16),
            probabilities=np.empty((people * waves, len(spec.arm_names()) + len(LATER_EVENTS))),
        )


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
    arms = _Arms.of(spec)
    response = _Response.of(spec, population)
    state = _Waves.start(spec, len(population), waves)
    for wave in range(1, waves + 1):
        _run_wave(spec, wave, response, state, wave_rng(seed, STREAM_WAVE, wave, chunk))
    exposures = _exposures(state, arms, population)
    who = np.flatnonzero(state.registered)
    return CampaignLog(exposures=exposures, truth=_truth(state, exposures, population, arms),
                       registered=who, registered_at=state.registered_at[who])


def _run_wave(spec: RegionSpec, wave: int, response: _Response, state: _Waves, rng: np.random.Generator) -> None:
    """One wave: reach the people not yet registered, assign each an arm at a time in the wave, write their true
    probabilities into the truth's block and draw who registers (and when); ``state`` carries the result."""
    idx = np.flatnonzero(~state.registered)
    if spec.waves.reach < 1.0:
        idx = idx[rng.random(len(idx)) < spec.waves.reach]
    m = len(idx)
    probs = np.array(list(spec.wave_probabilities(wave).values()))
    cumulative = np.cumsum(probs)
    cumulative /= cumulative[-1]
    arm = np.searchsorted(cumulative, rng.random(m), side="right")
    assigned_at = _assignment_times(spec, wave, rng.random(m))

    n_p = len(probs)
    rows = slice(state.filled, state.filled + m)
    p = state.probabilities[rows, :n_p]
    p[:] = registration_probabilities(
        response.baseline[idx],
        response.lifts[idx],
        response.multipliers[idx],
        state.shown[idx],
        wear_out=spec.wear_out,
        min_relative_lift=spec.min_relative_lift,
        max_probability=spec.max_probability,
    )
    state.probabilities[rows, n_p:] = response.continuation[idx]
    state.filled += m
    hit = rng.random(m) < p[np.arange(m), arm]
    delay = _registration_delay_seconds(m, spec, rng)
    state.registered[idx[hit]] = True
    state.registered_at[idx[hit]] = assigned_at[hit] + delay[hit] * NS_PER_SECOND

    treated = arm > 0
    state.shown[idx[treated], (arm[treated] - 1) // len(spec.channels)] += 1
    state.parts.append(
        {
            "idx": idx,
            "wave": np.full(m, wave, dtype=np.int64),
            "arm": arm,
            "assigned_at": assigned_at,
            "probability": probs[arm],
        }
    )


def _assignment_times(spec: RegionSpec, wave: int, draws: np.ndarray) -> np.ndarray:
    """Assignment times (ns since the epoch) in a wave: its start plus a jitter of ``draws`` (uniform in [0, 1))
    times the declared jitter, in whole seconds."""
    start_ns = np.datetime64(spec.waves.start, "ns").astype(np.int64)
    offset = np.floor(draws * (spec.waves.jitter_hours * 3600.0)).astype(np.int64)
    return start_ns + ((wave - 1) * spec.waves.gap_days * _SECONDS_PER_DAY + offset) * NS_PER_SECOND


def _stacked(state: _Waves, key: str) -> np.ndarray:
    return np.concatenate([part[key] for part in state.parts])


def _exposures(state: _Waves, arms: _Arms, population: Population) -> pd.DataFrame:
    """The exposures contract: one row per person and wave randomised, in wave order."""
    idx, arm = _stacked(state, "idx"), _stacked(state, "arm")
    person_ids = population.audience["person_id"].to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "person_id": pd.Series(person_ids[idx], dtype="str"),
            "wave": _stacked(state, "wave"),
            "arm": pd.Series(arms.label[arm], dtype="str"),
            "message": pd.Series(arms.message[arm], dtype="str"),
            "channel": pd.Series(arms.channel[arm], dtype="str"),
            "assigned_at": to_utc(_stacked(state, "assigned_at")),
            "assignment_probability": _stacked(state, "probability"),
            "cost_eur": arms.cost[arm],
        }
    )


def _truth(state: _Waves, exposures: pd.DataFrame, population: Population, arms: _Arms) -> pd.DataFrame:
    """The truth: one row per exposures row, its person's true probabilities under every arm and of every later
    funnel event."""
    columns = [f"{P_PREFIX}{a}" for a in arms.label] + [f"{Q_PREFIX}{e}" for e in LATER_EVENTS]
    truth = pd.DataFrame(state.probabilities[: state.filled], columns=columns, copy=False)
    truth.insert(0, "persona", pd.Series(population.persona[_stacked(state, "idx")], dtype="str"))
    truth.insert(0, "wave", exposures["wave"].to_numpy())
    truth.insert(0, "person_id", exposures["person_id"])
    return truth
