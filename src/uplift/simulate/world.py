"""A simulated campaign world (the three inputs plus the truth), writing it to disk, and its true effects."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from uplift.data.tableio import write_table
from uplift.data.vocabulary import FUNNEL_EVENTS, HOLDOUT
from uplift.errors import DataError, SchemaError, SpecError
from uplift.simulate.campaign import (
    P_PREFIX,
    Q_PREFIX,
    STREAM_FUNNEL,
    STREAM_POPULATION,
    run_campaign,
    wave_rng,
)
from uplift.simulate.funnel import draw_funnel
from uplift.simulate.population import draw_population
from uplift.specs.region import LATER_EVENTS, RegionSpec

__all__ = ["CampaignWorld", "simulate", "simulate_chunk", "check_sizes", "write_world", "true_effects", "FORMATS"]

FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class CampaignWorld:
    """A simulated campaign: the three anonymised inputs and the truth behind them.

    Attributes
    ----------
    audience, exposures, enrolments : frames that satisfy the contracts in :mod:`uplift.data.contracts`.
    truth : one row per exposures row (same order): ``person_id``, ``wave``, ``persona``,
        ``p__<arm>`` for every arm and ``q__<event>`` for every funnel event after registration.
    arms : every arm, the control first.
    control : the control arm (``"holdout"``).
    attribution_days : the window in which a registration counts for its wave.
    """

    audience: pd.DataFrame = field(repr=False)
    exposures: pd.DataFrame = field(repr=False)
    enrolments: pd.DataFrame = field(repr=False)
    truth: pd.DataFrame = field(repr=False)
    arms: tuple[str, ...]
    control: str = HOLDOUT
    attribution_days: int = 28

    @property
    def treatment_arms(self) -> tuple[str, ...]:
        """Every arm but the control, in declaration order."""
        return tuple(a for a in self.arms if a != self.control)


def simulate(spec: RegionSpec, *, people: int, waves: int, seed: int) -> CampaignWorld:
    """Simulate ``waves`` randomised waves over ``people`` residents of the region ``spec``.

    The same arguments always give identical frames; the random streams of the population,
    of each wave and of the funnel are separate, so e.g. the population does not depend on
    the number of waves.

    The audience carries the required columns and the optional ones the region gives
    (``spec.given_attributes``); the simulation itself uses every attribute of every person.

    Parameters
    ----------
    spec : the region; re-validated here, so a ``model_copy(update=...)`` that broke it is caught.
    people : number of residents (>= 1).
    waves : number of waves (>= 1); wave arm weights beyond those declared are uniform.
    seed : non-negative integer seed.

    Returns
    -------
    CampaignWorld

    Raises
    ------
    SpecError
        If the spec is invalid or ``people``, ``waves`` or ``seed`` are out of range.
    """
    check_sizes(people=people, waves=waves, seed=seed)
    return simulate_chunk(spec.updated(), people=people, waves=waves, seed=seed)


def check_sizes(**sizes: int) -> None:
    """``people`` and ``waves`` must be integers >= 1, ``seed`` >= 0 (the others >= 1)."""
    for name, value in sizes.items():
        low = 0 if name == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SpecError(f"simulate: {name} must be an integer >= {low}, got {value!r}")


def simulate_chunk(
    spec: RegionSpec, *, people: int, waves: int, seed: int, chunk: int | None = None,
    person_ids: np.ndarray | None = None,
) -> CampaignWorld:
    """The world of ``people`` residents on the random streams of ``chunk`` (None: of a world simulated whole,
    as :func:`simulate`); ``person_ids`` as :func:`~uplift.simulate.population.draw_population` takes them.
    ``spec`` must be validated already."""
    population = draw_population(spec, people=people, rng=wave_rng(seed, STREAM_POPULATION, 0, chunk),
                                 person_ids=person_ids)
    log = run_campaign(spec, population, waves=waves, seed=seed, chunk=chunk)
    enrolments = draw_funnel(
        spec,
        person_ids=population.audience["person_id"].to_numpy(dtype=object)[log.registered],
        persona=population.persona[log.registered],
        registered_at=log.registered_at,
        rng=wave_rng(seed, STREAM_FUNNEL, 0, chunk),
    )
    return CampaignWorld(
        audience=population.audience[list(spec.audience_columns())],
        exposures=log.exposures,
        enrolments=enrolments,
        truth=log.truth,
        arms=spec.arm_names(),
        control=HOLDOUT,
        attribution_days=spec.attribution_days,
    )


def write_world(
    world: CampaignWorld, out_dir: str | Path, fmt: Literal["parquet", "csv"] = "parquet"
) -> dict[str, Path]:
    """Write ``audience``, ``exposures`` and ``enrolments`` as ``<name>.<fmt>`` into ``out_dir``.

    The truth goes to ``out_dir/truth/truth.parquet`` whatever ``fmt`` is (nothing in training
    reads it). Every file is written atomically; the same world gives the same bytes.

    Returns
    -------
    dict mapping ``"audience"``, ``"exposures"``, ``"enrolments"``, ``"truth"`` to the paths written.

    Raises
    ------
    SchemaError
        If ``fmt`` is not ``"parquet"`` or ``"csv"``.
    """
    if fmt not in FORMATS:
        raise SchemaError(f"write_world: format {fmt!r} is not supported; expected one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    written = {
        name: write_table(getattr(world, name), out / f"{name}.{fmt}")
        for name in ("audience", "exposures", "enrolments")
    }
    written["truth"] = write_table(world.truth, out / "truth" / "truth.parquet")
    return written


def true_effects(
    truth: pd.DataFrame, arms: tuple[str, ...] | list[str], control: str = HOLDOUT, outcome: str = "registration"
) -> pd.DataFrame:
    """True uplift of every treatment arm over ``control`` per truth row.

    For ``registration`` the uplift is ``p__<arm> - p__<control>``; for a later funnel event it is
    multiplied by ``q__<event>`` (continuation never depends on the arm).

    Parameters
    ----------
    truth : the truth frame of a :class:`CampaignWorld` (or read from ``truth/truth.parquet``).
    arms : the arms, control included.
    control : the control arm.
    outcome : a funnel event.

    Returns
    -------
    DataFrame indexed like ``truth`` with one float column per treatment arm (in ``arms`` order).

    Raises
    ------
    DataError
        If ``outcome`` is not a funnel event or ``control`` is not among ``arms``.
    SchemaError
        If ``truth`` lacks a ``p__<arm>`` or ``q__<event>`` column.
    """
    arms = tuple(arms)
    if outcome not in FUNNEL_EVENTS:
        raise DataError(f"true_effects: outcome {outcome!r} is not a funnel event; valid: {', '.join(FUNNEL_EVENTS)}")
    if control not in arms:
        raise DataError(f"true_effects: control {control!r} is not among arms {list(arms)}")
    needed = [f"{P_PREFIX}{a}" for a in arms] + ([f"{Q_PREFIX}{outcome}"] if outcome in LATER_EVENTS else [])
    missing = [c for c in needed if c not in truth.columns]
    if missing:
        raise SchemaError(f"truth: missing column(s) {missing}; expected p__<arm> per arm and "
                          "q__<event> per later event")
    base = truth[f"{P_PREFIX}{control}"]
    effects = pd.DataFrame(
        {a: truth[f"{P_PREFIX}{a}"] - base for a in arms if a != control}, index=truth.index, dtype=float
    )
    if outcome in LATER_EVENTS:
        effects = effects.mul(truth[f"{Q_PREFIX}{outcome}"], axis=0)
    return effects
