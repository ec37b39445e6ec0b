"""Outcomes of an externally designed wave: registrations and funnel events for a given assignment.

``simulate()`` randomises its own waves; this module answers "what would the simulated region have
done under *this* assignment?" (for example one made by ``uplift experiment design``), re-using the
simulator's population, response model and funnel so the two agree person by person.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.data.vocabulary import HOLDOUT
from uplift.errors import DataError, SchemaError
from uplift.simulate.campaign import (
    NS_PER_SECOND,
    P_PREFIX,
    Q_PREFIX,
    STREAM_POPULATION,
    _registration_delay_seconds,
    wave_rng,
)
from uplift.simulate.effects import (
    baseline_probability,
    channel_multipliers,
    message_lifts,
    registration_probabilities,
    stage_rates,
)
from uplift.simulate.funnel import draw_funnel
from uplift.simulate.population import Population, draw_population
from uplift.specs.region import LATER_EVENTS, RegionSpec

__all__ = ["AssignedWave", "run_assigned_wave", "STREAM_ASSIGNED_WAVE", "STREAM_ASSIGNED_FUNNEL"]

# random streams of assigned waves, apart from simulate()'s own (1 population, 2 waves, 3 funnel)
STREAM_ASSIGNED_WAVE, STREAM_ASSIGNED_FUNNEL = 4, 5


@dataclass(frozen=True)
class AssignedWave:
    """What an assigned wave produced.

    Attributes
    ----------
    enrolments : the new funnel events (enrolments contract), registrations of this wave and what followed.
    truth : one row per assignment row (same order): ``person_id``, ``wave``, ``persona``, ``p__<arm>`` and
        ``q__<event>``, as in :attr:`uplift.simulate.CampaignWorld.truth`.
    """

    enrolments: pd.DataFrame = field(repr=False)
    truth: pd.DataFrame = field(repr=False)


def run_assigned_wave(
    spec: RegionSpec,
    *,
    people: int,
    seed: int,
    assignment: pd.DataFrame,
    history: pd.DataFrame,
    enrolments: pd.DataFrame,
) -> AssignedWave:
    """Draw the registrations of one wave whose arms were assigned outside the simulator.

    The population is re-drawn exactly as :func:`uplift.simulate.simulate` draws it for the same
    ``spec``, ``people`` and ``seed``, so person ids, latent personas and true probabilities match
    the world the history came from. Wear-out counts the messages each person was shown in
    ``history`` before this wave. People who already registered (a ``registration`` in
    ``enrolments``) do not register again.

    Parameters
    ----------
    spec : the region the world was simulated from.
    people, seed : the arguments the world was simulated with.
    assignment : rows of the exposures contract for one wave (``person_id``, ``wave``, ``arm``,
        ``assigned_at``); arms must be arms of ``spec``. Not modified.
    history : the exposures of the earlier waves (exposures contract). Not modified.
    enrolments : the enrolments so far (enrolments contract). Not modified.

    Returns
    -------
    AssignedWave

    Raises
    ------
    SchemaError
        A needed column is missing.
    DataError
        The assignment spans several waves, repeats a person, names an unknown arm or person, or
        the history already has rows of this wave.
    """
    wave = _assigned_wave_number(assignment, history)
    spec = spec.updated()
    arm_idx = _arm_numbers(spec, assignment)
    population = draw_population(spec, people=people, rng=wave_rng(seed, STREAM_POPULATION))
    ids = pd.Index(population.audience["person_id"])
    pos = _population_positions(ids, assignment)

    p = _registration_probabilities(spec, population, pos, _shown_before(history, ids, pos, list(spec.messages)))
    m = len(pos)
    rng = wave_rng(seed, STREAM_ASSIGNED_WAVE, wave)
    already = set(enrolments.loc[enrolments["event"] == "registration", "person_id"].astype(str))
    eligible = ~assignment["person_id"].astype(str).isin(already).to_numpy()
    hit = (rng.random(m) < p[np.arange(m), arm_idx]) & eligible
    delay = _registration_delay_seconds(m, spec, rng)
    assigned_ns = (
        pd.to_datetime(assignment["assigned_at"],
                       utc=True).dt.tz_localize(None).astype("datetime64[ns]").to_numpy().astype(np.int64)
    )
    new = draw_funnel(
        spec,
        person_ids=population.audience["person_id"].to_numpy(dtype=object)[pos[hit]],
        persona=population.persona[pos[hit]],
        registered_at=assigned_ns[hit] + delay[hit] * NS_PER_SECOND,
        rng=wave_rng(seed, STREAM_ASSIGNED_FUNNEL, wave),
    )
    return AssignedWave(enrolments=new, truth=_assigned_truth(spec, population, pos, p, assignment, wave))


def _assigned_wave_number(assignment: pd.DataFrame, history: pd.DataFrame) -> int:
    """The one wave the assignment's rows are of, after the history's; raises when the rows do not make one wave
    of one row per person."""
    needed = ("person_id", "wave", "arm", "assigned_at")
    missing = [c for c in needed if c not in assignment.columns]
    if missing:
        raise SchemaError(f"assignment: missing column(s) {missing}")
    waves = assignment["wave"].unique()
    if len(waves) != 1:
        raise DataError(f"assignment: expected the rows of one wave, got waves {sorted(waves.tolist())}")
    wave = int(waves[0])
    if (history["wave"] >= wave).any():
        raise DataError(f"history: has rows of wave {wave} or later; an assigned wave must come after its history")
    if assignment["person_id"].duplicated().any():
        raise DataError("assignment: column 'person_id' repeats a person; expected one row per person")
    return wave


def _arm_numbers(spec: RegionSpec, assignment: pd.DataFrame) -> np.ndarray:
    """Each assignment row's arm as its number among the region's arms; raises on an arm the region lacks."""
    arms = spec.arm_names()
    arm_idx = pd.Index(arms).get_indexer(assignment["arm"])
    if (arm_idx < 0).any():
        bad = sorted(set(assignment["arm"][arm_idx < 0]))
        raise DataError(f"assignment: column 'arm' has {bad}, which region {spec.name!r} does not "
                        f"have; valid: {list(arms)}")
    return arm_idx


def _population_positions(ids: pd.Index, assignment: pd.DataFrame) -> np.ndarray:
    """Each assignment row's person as a position in the simulated population; raises on a person not in it."""
    pos = ids.get_indexer(assignment["person_id"].astype(str))
    if (pos < 0).any():
        bad = assignment["person_id"][pos < 0].head(3).tolist()
        raise DataError(f"assignment: {int((pos < 0).sum())} person id(s) are not in the "
                        f"simulated population (e.g. {bad})")
    return pos


def _registration_probabilities(spec: RegionSpec, population: Population, pos: np.ndarray,
                                shown: np.ndarray) -> np.ndarray:
    """(n, arms) true probability that each assigned person registers under each arm, worn out by ``shown``."""
    people_frame = population.attributes().iloc[pos].reset_index(drop=True)
    return registration_probabilities(
        baseline_probability(spec, people_frame),
        message_lifts(spec, people_frame),
        channel_multipliers(spec, people_frame),
        shown,
        wear_out=spec.wear_out,
        min_relative_lift=spec.min_relative_lift,
        max_probability=spec.max_probability,
    )


def _assigned_truth(spec: RegionSpec, population: Population, pos: np.ndarray, p: np.ndarray,
                    assignment: pd.DataFrame, wave: int) -> pd.DataFrame:
    """The truth of an assigned wave: one row per assignment row (same order), as in a simulated world's."""
    continuation = np.cumprod(stage_rates(spec, population.persona[pos]), axis=1)
    truth = pd.DataFrame(
        np.column_stack([p, continuation]),
        columns=[f"{P_PREFIX}{a}" for a in spec.arm_names()] + [f"{Q_PREFIX}{e}" for e in LATER_EVENTS],
    )
    truth.insert(0, "persona", pd.Series(population.persona[pos], dtype="str"))
    truth.insert(0, "wave", np.full(len(pos), wave, dtype=np.int64))
    truth.insert(0, "person_id", pd.Series(assignment["person_id"].astype(str).to_numpy(), dtype="str"))
    return truth


def _shown_before(history: pd.DataFrame, ids: pd.Index, pos: np.ndarray, messages: list[str]) -> np.ndarray:
    """(n, messages) count of earlier waves in which each assigned person was shown each message."""
    shown = np.zeros((len(pos), len(messages)), dtype=np.int16)
    contacts = history[history["arm"] != HOLDOUT]
    if contacts.empty:
        return shown
    row_of = pd.Series(np.arange(len(pos)), index=ids[pos])
    rows = row_of.reindex(contacts["person_id"].astype(str)).to_numpy()
    cols = pd.Index(messages).get_indexer(contacts["message"])
    keep = ~np.isnan(rows) & (cols >= 0)
    np.add.at(shown, (rows[keep].astype(np.int64), cols[keep]), 1)
    return shown
