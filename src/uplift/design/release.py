"""What of an experiment's design and analysis leaves the product, under the disclosure policy.

The analysis (:func:`~uplift.design.analysis.analyze`) counts people (``n``) and converters
(``conversions``) per arm, and per segment x arm; its rate rests on the arm's cell, and every effect,
interval, p-value and CUPED figure on the arm's cell and the control's (an effect and the control's
rate give the arm's rate back). The arms of a wave (of a segment) add up to the wave's (the
segment's) people and converters, and a segment's arms over the segments to the arm's, so those
are the margins. The design's stratum balance counts the people of each stratum; its share gap and
chi-square test rest on the stratum's arm counts, so they are withheld where the smallest of those is
below the threshold. The power table's available people are rounded.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from uplift.design.analysis import EFFECT_COLUMNS, Analysis
from uplift.disclosure import Figure, Margin, Reference, Release, disclose
from uplift.errors import SchemaError
from uplift.specs.disclosure import DisclosurePolicy

__all__ = [
    "BALANCE_RELEASE",
    "POWER_RELEASE",
    "analysis_release",
    "outcome_release",
    "released_outcome",
    "released_analysis",
    "released_balance",
    "released_power",
]

_ABOUT_THE_TEST = ("interval_level", "family", "family_size", "target_effect")
"""Columns that describe how a comparison is judged (its level, its family, the plan's expectation):
they rest on no one's count."""
_RATES = ("rate", "rate_ci_low", "rate_ci_high")
_EFFECTS = tuple(c for c in EFFECT_COLUMNS[EFFECT_COLUMNS.index("effect"):] if c not in _ABOUT_THE_TEST)

POWER_RELEASE = Release(
    people=("n_arm_available", "n_holdout_available"),
    figures=(Figure(columns=("mde_available", "power_available"), rests_on=("n_arm_available", "n_holdout_available")),
             ),
    keep=("arm", "arm_share", "holdout_share", "base_rate", "minimum_detectable_effect", "n_arm_needed",
          "n_holdout_needed", "n_total_needed", "sufficient"),
)
"""The power table: the people available per arm and in the holdout are counts (a design's needed
sizes are requirements, not counts of anyone)."""

BALANCE_RELEASE = Release(
    people=("n", "smallest_arm"),
    figures=(Figure(columns=("max_share_gap", "statistic", "p_value"), rests_on=("n", "smallest_arm")),),
    margins=(Margin(name="the audience over the strata", cells=("n",)),),
    keep=("stratum",),
    internal=("smallest_arm",),
)
"""The stratum balance with the people of each stratum's smallest arm (``smallest_arm``, internal)."""


def analysis_release(control: str, *, segmented: bool) -> Release:
    """The declaration of an analysis table (``segmented``: the per segment x arm table)."""
    by = ("segment",) if segmented else ()
    margins = [
        Margin(name="the people over the arms", by=by, cells=("n",)),
        Margin(name="the converters over the arms", by=by, cells=("conversions",)),
    ]
    if segmented:
        margins += [Margin(name="the arm's people over the segments", by=("arm",), cells=("n",)),
                    Margin(name="the arm's converters over the segments", by=("arm",), cells=("conversions",))]
    return Release(
        people=("n",),
        converters={"conversions": "n"},
        figures=(Figure(columns=_RATES, rests_on=("n", "conversions")),
                 Figure(columns=_EFFECTS, rests_on=("n", "conversions"), rests_on_reference=("n", "conversions"))),
        margins=tuple(margins),
        reference=Reference(column="arm", value=control, by=by),
        keep=("segment", "arm", *_ABOUT_THE_TEST),
    )


def released_analysis(analysis: Analysis, policy: DisclosurePolicy) -> Analysis:
    """``analysis`` with its arms (and segments) tables as they may be released: counts rounded, null below
    the threshold; rates and effects null where a count they rest on is suppressed; a ``withheld`` column."""
    arms = disclose(analysis.arms, analysis_release(analysis.control, segmented=False), policy, source="analysis")
    segments = None
    if analysis.segments is not None:
        segments = disclose(analysis.segments, analysis_release(analysis.control, segmented=True), policy,
                            source="analysis by segment")
    return dataclasses.replace(analysis, arms=arms.reset_index(drop=True),
                               segments=None if segments is None else segments.reset_index(drop=True))


def released_power(power: pd.DataFrame, policy: DisclosurePolicy) -> pd.DataFrame:
    """The power table as it may be released (:data:`POWER_RELEASE`)."""
    return disclose(power, POWER_RELEASE, policy, source="power table").reset_index(drop=True)


def released_balance(balance: pd.DataFrame, assignment: pd.DataFrame, policy: DisclosurePolicy) -> pd.DataFrame:
    """The stratum balance as it may be released (:data:`BALANCE_RELEASE`), its tests withheld where a
    stratum's smallest arm (counted in ``assignment``: columns ``stratum``, ``arm``) has too few people."""
    missing = [c for c in ("stratum", "arm") if c not in assignment.columns]
    if missing:
        raise SchemaError(f"assignment: missing column(s) {missing}")
    smallest = pd.crosstab(assignment["stratum"], assignment["arm"]).min(axis=1)
    frame = balance.assign(smallest_arm=balance["stratum"].map(smallest).to_numpy())
    return disclose(frame, BALANCE_RELEASE, policy, source="stratum balance").reset_index(drop=True)


_OUTCOME_COUNTS = ("n_arm", "conversions_arm", "n_holdout", "conversions_holdout")


def outcome_release(*, cells: bool) -> Release:
    """The declaration of a promised-against-delivered table (:class:`~uplift.design.promised.PlanOutcome`):
    the counts stay internal; the realised figures are withheld where a count they rest on (the contacted
    people, their converters and non-converters, and the same of the holdout) is below the threshold. The
    promises are the plan's model estimates and are released as they are."""
    return Release(
        people=("n_arm", "n_holdout"),
        converters={"conversions_arm": "n_arm", "conversions_holdout": "n_holdout"},
        constant_within={"n_holdout": ("segment",), "conversions_holdout": ("segment",)} if cells else {},
        figures=(Figure(columns=("realised", "realised_lo", "realised_hi"), rests_on=_OUTCOME_COUNTS),),
        keep=("segment", "arm", "message", "channel", "group", "wave", "contacts", "promised", "promised_lo",
              "promised_hi"),
        internal=_OUTCOME_COUNTS,
    )


def released_outcome(outcome, policy: DisclosurePolicy):
    """``outcome`` (:class:`~uplift.design.promised.PlanOutcome`) with every table as it may be released."""
    def out(frame: pd.DataFrame, cells: bool, name: str) -> pd.DataFrame:
        if frame.empty:
            return frame.drop(columns=list(_OUTCOME_COUNTS), errors="ignore")
        return disclose(frame, outcome_release(cells=cells), policy, source=name).reset_index(drop=True)

    return dataclasses.replace(outcome, cells=out(outcome.cells, True, "plan cells"),
                               messages=out(outcome.messages, False, "plan messages"),
                               groups=out(outcome.groups, False, "plan priority groups"),
                               total=out(outcome.total, False, "plan total"))
