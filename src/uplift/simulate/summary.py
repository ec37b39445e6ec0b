"""Summaries of a simulated world: registrations attributed to each exposure, per-arm rates, funnel counts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.data.vocabulary import FUNNEL_EVENTS
from uplift.simulate.campaign import P_PREFIX
from uplift.simulate.world import CampaignWorld

__all__ = ["registered_in_window", "arm_summary", "funnel_counts", "persona_summary", "persona_totals",
           "persona_summary_from_totals"]


def registered_in_window(world: CampaignWorld) -> np.ndarray:
    """Per exposures row: did the person register within the attribution window after ``assigned_at``?"""
    regs = world.enrolments.loc[world.enrolments["event"] == "registration", ["person_id", "occurred_at"]]
    left = pd.DataFrame(
        {"row": np.arange(len(world.exposures)), "person_id": world.exposures["person_id"].to_numpy(),
         "assigned_at": world.exposures["assigned_at"].to_numpy()}
    )
    joined = left.merge(regs, on="person_id", how="inner", sort=False)
    window = pd.Timedelta(days=world.attribution_days)
    hit = (joined["occurred_at"] >= joined["assigned_at"]) & (joined["occurred_at"] < joined["assigned_at"] + window)
    out = np.zeros(len(world.exposures), dtype=bool)
    out[joined.loc[hit, "row"].to_numpy()] = True
    return out


def arm_summary(world: CampaignWorld) -> pd.DataFrame:
    """Per arm (``world.arms`` order): people reached, registrations, observed and true registration rate.

    ``true_rate`` is the mean of the truth's ``p__<arm>`` over the rows assigned to the arm, so it
    is what ``rate`` estimates.
    """
    registered = registered_in_window(world)
    arm = world.exposures["arm"].to_numpy()
    rows = []
    for name in world.arms:
        mine = arm == name
        reached = int(mine.sum())
        hits = int(registered[mine].sum())
        true = float(world.truth.loc[mine, f"{P_PREFIX}{name}"].mean()) if reached else np.nan
        rows.append((name, reached, hits, hits / reached if reached else np.nan, true))
    return pd.DataFrame(rows, columns=["arm", "reached", "registrations", "rate", "true_rate"]).set_index("arm")


def funnel_counts(world: CampaignWorld) -> pd.Series:
    """Number of people reaching each funnel event, in funnel order."""
    counts = world.enrolments.groupby("event")["person_id"].nunique()
    return counts.reindex(list(FUNNEL_EVENTS), fill_value=0).astype(int)


def persona_totals(world: CampaignWorld) -> pd.DataFrame:
    """Per latent persona, over the truth rows of the first wave: their number (``rows``) and the sum of every
    ``p__<arm>``; totals of several worlds (chunks of one) add up."""
    first = world.truth[world.truth["wave"] == world.truth["wave"].min()]
    columns = [f"{P_PREFIX}{a}" for a in world.arms]
    sums = first.groupby("persona", sort=True)[columns].sum()
    return sums.assign(rows=first.groupby("persona", sort=True).size().astype(float))


def persona_summary_from_totals(totals: pd.DataFrame, arms: tuple[str, ...], control: str) -> pd.DataFrame:
    """:func:`persona_summary` from :func:`persona_totals` (of one world, or added up over chunks)."""
    rates = totals[[f"{P_PREFIX}{a}" for a in arms]].div(totals["rows"], axis=0)
    rates.columns = list(arms)
    treated = rates[[a for a in arms if a != control]]
    out = pd.DataFrame(
        {
            "share": (totals["rows"] / totals["rows"].sum()).to_numpy(),
            "holdout_rate": rates[control].to_numpy(),
            "best_arm": treated.idxmax(axis=1).to_numpy(),
            "best_rate": treated.max(axis=1).to_numpy(),
        },
        index=rates.index,
    )
    return out.sort_values("share", ascending=False, kind="stable")


def persona_summary(world: CampaignWorld) -> pd.DataFrame:
    """Per latent persona, from the truth of the first wave (before any wear-out): its share of the people
    randomised, the mean true holdout rate, the arm with the highest mean true rate and that rate.

    Returns
    -------
    DataFrame indexed by persona (largest share first): ``share``, ``holdout_rate``, ``best_arm``, ``best_rate``.
    """
    return persona_summary_from_totals(persona_totals(world), world.arms, world.control)
