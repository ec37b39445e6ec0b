"""The true response model: each person's registration probability under every arm, and funnel continuation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.simulate.conditions import matches
from uplift.specs.region import RegionSpec

__all__ = [
    "baseline_probability",
    "message_lifts",
    "channel_multipliers",
    "registration_probabilities",
    "stage_rates",
]


def baseline_probability(spec: RegionSpec, people: pd.DataFrame) -> np.ndarray:
    """Registration probability within the attribution window without a message (holdout), shape (n,).

    ``people`` is :meth:`Population.attributes` (audience plus ``persona`` and ``deprivation``).
    """
    persona_factor = people["persona"].map({k: p.baseline for k, p in spec.personas.items()}).to_numpy(float)
    p = spec.baseline.registration * persona_factor
    for modifier in spec.baseline.modifiers:
        p = np.where(matches(modifier.when, people), p * modifier.factor, p)
    return p


def message_lifts(spec: RegionSpec, people: pd.DataFrame) -> np.ndarray:
    """Relative lift of every message before channel and wear-out, shape (n, messages).

    Columns follow ``spec.messages``; the lift of the person's persona plus the matching adjustments.
    """
    columns = []
    for message in spec.messages.values():
        table = {k: message.lift.get(k, 0.0) for k in spec.personas}
        lift = people["persona"].map(table).to_numpy(float)
        for adjustment in message.adjustments:
            lift = lift + np.where(matches(adjustment.when, people), adjustment.add, 0.0)
        columns.append(lift)
    return np.column_stack(columns)


def channel_multipliers(spec: RegionSpec, people: pd.DataFrame) -> np.ndarray:
    """How strongly each channel carries a message to each person, shape (n, channels)."""
    columns = []
    for channel in spec.channels.values():
        factor = np.full(len(people), channel.multiplier)
        for modifier in channel.modifiers:
            factor = np.where(matches(modifier.when, people), factor * modifier.factor, factor)
        columns.append(factor)
    return np.column_stack(columns)


def registration_probabilities(
    baseline: np.ndarray,
    lifts: np.ndarray,
    multipliers: np.ndarray,
    shown_before: np.ndarray,
    *,
    wear_out: float,
    min_relative_lift: float,
    max_probability: float,
) -> np.ndarray:
    """Probability of registering within the window under every arm, shape (n, 1 + messages * channels).

    Column 0 is the holdout; then message-major ``message@channel`` as in
    :meth:`RegionSpec.arm_names`.

    Parameters
    ----------
    baseline : (n,) holdout probability.
    lifts : (n, M) relative lift per message (:func:`message_lifts`).
    multipliers : (n, C) channel multipliers (:func:`channel_multipliers`).
    shown_before : (n, M) how many earlier waves showed the person each message.
    wear_out : the lift shrinks by this factor per earlier showing.
    min_relative_lift : floor of the combined relative lift (e.g. -0.9).
    max_probability : cap of any probability.
    """
    worn = lifts * np.power(wear_out, shown_before)
    relative = np.maximum(worn[:, :, None] * multipliers[:, None, :], min_relative_lift)
    treated = baseline[:, None] * (1.0 + relative.reshape(len(baseline), -1))
    return np.minimum(np.column_stack([baseline, treated]), max_probability)


def stage_rates(spec: RegionSpec, persona: np.ndarray) -> np.ndarray:
    """P(step | previous step) for every later funnel event, shape (n, 5), columns as ``spec.funnel``.

    Depends on the person's persona only, never on the arm; capped at 0.99.
    """
    labels = pd.Series(persona)
    columns = []
    for stage in spec.funnel.values():
        factor = labels.map({k: stage.persona_factor.get(k, 1.0) for k in spec.personas}).to_numpy(float)
        columns.append(np.minimum(stage.rate * factor, 0.99))
    return np.column_stack(columns)
