"""The planning LP's rules, one unit per family (:class:`~uplift.allocation.rules.base.RuleFamily`).

Each family adds its rows, computes their right-hand sides, explains its conflicts and lists its
declared rules for their prices; :func:`uplift.allocation.problem.build_problem` assembles the LP
from :data:`FAMILIES` and :mod:`uplift.allocation.infeasibility` and :mod:`uplift.allocation.prices`
ask the families about their rows. Rows are stacked in the order of :data:`FAMILIES`.
"""

from __future__ import annotations

from uplift.allocation.rules.base import BaseFigures, DeclaredRule, Rows, RuleFamily, Situation, eur, others, percent
from uplift.allocation.rules.budget import Budget, Holdout
from uplift.allocation.rules.channels import ChannelMax, ChannelMin
from uplift.allocation.rules.coverage import Coverage, CoverageTargets
from uplift.allocation.rules.segment_cap import SegmentShare
from uplift.allocation.rules.share_floors import ContactFloor, ConversionFloor, SpendFloor, fairness_floors

__all__ = [
    "FAMILIES",
    "FAMILY",
    "BaseFigures",
    "Budget",
    "ChannelMax",
    "ChannelMin",
    "ContactFloor",
    "ConversionFloor",
    "Coverage",
    "CoverageTargets",
    "DeclaredRule",
    "Holdout",
    "RuleFamily",
    "Rows",
    "SegmentShare",
    "Situation",
    "SpendFloor",
    "eur",
    "fairness_floors",
    "others",
    "percent",
]

FAMILIES: tuple[RuleFamily, ...] = (
    Budget(),
    Holdout(),
    ChannelMax(),
    ChannelMin(),
    SegmentShare(),
    SpendFloor(),
    ConversionFloor(),
    ContactFloor(),
    Coverage(),
)
"""Every family of rules, in the order their rows are stacked."""

FAMILY: dict[str, RuleFamily] = {family.kind: family for family in FAMILIES}
"""The family of each row kind."""
