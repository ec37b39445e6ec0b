"""A wave's effect on the value along the funnel: each event labelled in its own window, the value
``Y_v = sum_e w_e label_e`` per person, and each arm's difference in mean value against the control with a
Welch interval (the value is not 0/1, so the exact intervals of a rate do not apply; the events' own
effects keep theirs, :func:`uplift.design.analyze`).

A person whose window of an event reaches past the end of the recorded data has no label for it (NaN)
and no value; the counts left out are reported per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from uplift.disclosure import Figure, Margin, Reference, Release, disclose
from uplift.errors import DataError
from uplift.features.outcome import label_outcome
from uplift.funnel.censoring import window_observed
from uplift.specs.disclosure import DisclosurePolicy
from uplift.specs.planning import ValueEvent

__all__ = ["VALUE_COLUMNS", "VALUE_RELEASE", "FunnelOutcomes", "funnel_outcomes", "value_differences",
           "released_value_differences"]

VALUE_COLUMNS = ("arm", "n", "converters", "value_per_person", "difference", "ci_low", "ci_high", "p_value", "df")
"""Per arm (the control first): people, people with any event of the value, mean value per person, and
against the control: the difference, its Welch interval, p-value and degrees of freedom (NaN on the control)."""

VALUE_RELEASE = Release(
    people=("n",),
    converters={"converters": "n"},
    figures=(Figure(columns=("value_per_person",), rests_on=("n", "converters")),
             Figure(columns=("difference", "ci_low", "ci_high", "p_value"), rests_on=("n", "converters"),
                    rests_on_reference=("n", "converters"))),
    margins=(Margin(name="the people over the arms", cells=("n",)),
             Margin(name="the converters over the arms", cells=("converters",))),
    reference=Reference(column="arm", value="holdout"),
    keep=("arm", "df"),
)
"""How a value table is released: people and people with any event counted under the policy, the value and
its difference withheld where a count they rest on (the arm's or the control's) is."""


@dataclass(frozen=True)
class FunnelOutcomes:
    """Per randomised person: each event's 0/1 label (NaN where its window is censored) and the value
    (NaN where any event's is); how many people each event leaves out."""

    frame: pd.DataFrame
    censored: dict[str, int]


def funnel_outcomes(rows: pd.DataFrame, enrolments: pd.DataFrame, events: Sequence[ValueEvent],
                    observed_until: pd.Timestamp) -> FunnelOutcomes:
    """``rows`` (person_id, wave, arm, assigned_at) with a column per event and ``value``."""
    keys = pd.DataFrame({"person_id": rows["person_id"], "wave": rows["wave"], "as_of": rows["assigned_at"]})
    out = rows[["person_id", "arm"]].reset_index(drop=True).copy()
    value = np.zeros(len(rows))
    censored = {}
    for e in events:
        y = label_outcome(keys, enrolments, e.outcome).astype(float)
        seen = window_observed(rows["assigned_at"], e.attribution_days, observed_until)
        y[~seen] = np.nan
        censored[e.event] = int((~seen).sum())
        out[e.event] = y
        value = value + e.weight * y
    out["value"] = value
    return FunnelOutcomes(frame=out, censored=censored)


def value_differences(frame: pd.DataFrame, *, control: str, alpha: float, events: Sequence[str],
                      value_col: str = "value") -> pd.DataFrame:
    """Per arm, :data:`VALUE_COLUMNS`, over the rows with a value (Welch's t at two-sided level ``alpha``).

    Raises
    ------
    DataError
        No rows with a value, or fewer than two of the control.
    """
    kept = frame[frame[value_col].notna()]
    y0 = kept.loc[kept["arm"] == control, value_col].to_numpy(float)
    if len(y0) < 2:
        raise DataError(f"value: {len(y0)} control ({control!r}) row(s) with every event's window over; expected "
                        "at least 2 to compare against")
    any_event = kept[list(events)].to_numpy(float).sum(axis=1) > 0
    rows = []
    arms = [control, *sorted(a for a in kept["arm"].unique() if a != control)]
    for a in arms:
        mask = (kept["arm"] == a).to_numpy()
        y = kept.loc[mask, value_col].to_numpy(float)
        row = {"arm": a, "n": int(mask.sum()), "converters": int(any_event[mask].sum()),
               "value_per_person": float(y.mean()) if len(y) else np.nan}
        row.update(_welch(y, y0, alpha) if a != control else dict.fromkeys(
            ("difference", "ci_low", "ci_high", "p_value", "df"), np.nan))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(VALUE_COLUMNS))


def _welch(y: np.ndarray, y0: np.ndarray, alpha: float) -> dict[str, float]:
    """The difference of means, its Welch interval at ``1 - alpha``, p-value and degrees of freedom."""
    diff = float(y.mean() - y0.mean()) if len(y) else np.nan
    if len(y) < 2:
        return {"difference": diff, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "df": np.nan}
    v1, v0 = y.var(ddof=1) / len(y), y0.var(ddof=1) / len(y0)
    se = np.sqrt(v1 + v0)
    if se == 0:  # every value equal within each arm: nothing to tell the difference from
        return {"difference": diff, "ci_low": diff, "ci_high": diff, "p_value": 1.0 if diff == 0 else 0.0,
                "df": np.nan}
    df = (v1 + v0) ** 2 / (v1**2 / (len(y) - 1) + v0**2 / (len(y0) - 1))
    t = stats.t.ppf(1 - alpha / 2, df)
    return {"difference": diff, "ci_low": diff - t * se, "ci_high": diff + t * se,
            "p_value": float(2 * stats.t.sf(abs(diff / se), df)), "df": float(df)}


def released_value_differences(table: pd.DataFrame, control: str, policy: DisclosurePolicy) -> pd.DataFrame:
    """``table`` as it may be released under ``policy`` (:data:`VALUE_RELEASE`, with ``control`` the reference)."""
    release = VALUE_RELEASE.model_copy(update={"reference": Reference(column="arm", value=control)})
    return disclose(table, release, policy, source="value analysis").reset_index(drop=True)
