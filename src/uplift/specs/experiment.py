"""The experiment declaration: one YAML file per wave in ``experiments/``, read into :class:`ExperimentSpec`."""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from uplift.data.vocabulary import FUNNEL_EVENTS, HOLDOUT, split_arm
from uplift.specs import Spec

__all__ = ["ExperimentSpec", "FROM_PLAN", "MULTIPLICITY", "Multiplicity"]

FROM_PLAN = "from_plan"
"""Value of ``arm_weights`` meaning: the weights are the plan's contacts per arm, passed in at call time."""

Multiplicity = Literal["none", "holm", "bh"]
MULTIPLICITY: tuple[str, ...] = get_args(Multiplicity)
"""How a family of comparisons is adjusted for being tested together: ``none`` (each at ``alpha``),
``holm`` (family-wise error at most ``alpha``, Holm 1979), ``bh`` (false discovery rate at most
``alpha``, Benjamini & Hochberg 1995)."""


class ExperimentSpec(Spec):
    """A randomised wave: which arms, how people are split over them, and what is measured.

    Attributes
    ----------
    name : str
        Identifier of the experiment (used in messages and run names).
    wave : int
        Wave number (>= 1); becomes the ``wave`` column of the exposures.
    arms : list of str
        Treatment arms, each ``"message@channel"`` (see :func:`uplift.data.vocabulary.arm_name`); the
        control arm is not listed here.
    control : str
        Name of the control arm, default ``"holdout"``.
    holdout_share : float
        Share of people randomised to the control arm, in (0, 1).
    arm_weights : dict of str to float, or "from_plan"
        Relative weights of the treatment arms (one positive weight per arm); the treatment share
        ``1 - holdout_share`` is split in proportion to them. ``"from_plan"`` means the weights are a
        plan's contacts per arm, passed to the design functions at call time.
    strata : list of str
        Audience columns whose balance is reported (``age_band`` is derived from ``age``).
    salt : str
        Salt of the assignment hash; use a new salt per wave so holdouts rotate.
    outcome : str
        The funnel event measured (one of :data:`uplift.data.vocabulary.FUNNEL_EVENTS`).
    attribution_days : int
        Days after ``start`` in which the outcome counts.
    minimum_detectable_effect : float
        Smallest absolute difference in conversion rate worth detecting (0.002 = 2 per 1,000).
    alpha, power : float
        Two-sided significance level and desired power of each arm-vs-control test.
    multiplicity : {"holm", "bh", "none"}
        How the analysis adjusts the arms compared with the control (one family) and the segment x
        arm comparisons (another family) for being tested together: ``holm`` (default) keeps the
        chance of any false "better"/"worse" at most ``alpha``; ``bh`` keeps the expected share of
        false ones among those called at most ``alpha``; ``none`` tests each at ``alpha``.
    start, end : datetime.date
        First and last day of the wave (``end`` on or after ``start``).
    """

    name: str = Field(min_length=1)
    wave: int = Field(ge=1)
    arms: list[str] = Field(min_length=1)
    control: str = HOLDOUT
    holdout_share: float
    arm_weights: dict[str, float] | Literal["from_plan"]
    strata: list[str] = Field(default_factory=list)
    salt: str = Field(min_length=1)
    outcome: str
    attribution_days: int = Field(gt=0)
    minimum_detectable_effect: float
    alpha: float = 0.05
    power: float = 0.8
    multiplicity: Multiplicity = "holm"
    start: dt.date
    end: dt.date

    @field_validator("arms")
    @classmethod
    def _arms_are_message_at_channel(cls, arms: list[str]) -> list[str]:
        for arm in arms:
            try:
                split_arm(arm)
            except ValueError:
                raise ValueError(f"arm {arm!r} is not of the form 'message@channel'") from None
        duplicated = sorted({a for a in arms if arms.count(a) > 1})
        if duplicated:
            raise ValueError(f"arms listed more than once: {duplicated}")
        return arms

    @field_validator("holdout_share")
    @classmethod
    def _share_inside_unit_interval(cls, share: float) -> float:
        if not 0.0 < share < 1.0:
            raise ValueError(f"holdout_share must lie strictly between 0 and 1, got {share}")
        return share

    @field_validator("arm_weights")
    @classmethod
    def _weights_positive(cls, weights: dict[str, float] | str) -> dict[str, float] | str:
        if isinstance(weights, dict):
            bad = {arm: w for arm, w in weights.items() if not w > 0}
            if bad:
                raise ValueError(f"arm_weights must be positive; got {bad}")
        return weights

    @field_validator("strata")
    @classmethod
    def _strata_unique(cls, strata: list[str]) -> list[str]:
        if len(set(strata)) != len(strata) or any(not s for s in strata):
            raise ValueError(f"strata must be distinct, non-empty column names; got {strata}")
        return strata

    @field_validator("outcome")
    @classmethod
    def _outcome_is_funnel_event(cls, outcome: str) -> str:
        if outcome not in FUNNEL_EVENTS:
            raise ValueError(f"outcome {outcome!r} is not a funnel event; valid: {', '.join(FUNNEL_EVENTS)}")
        return outcome

    @field_validator("minimum_detectable_effect")
    @classmethod
    def _mde_is_a_rate_difference(cls, mde: float) -> float:
        if not 0.0 < mde < 1.0:
            raise ValueError(f"minimum_detectable_effect is an absolute rate difference in (0, 1), got {mde}")
        return mde

    @field_validator("alpha", "power")
    @classmethod
    def _probability(cls, value: float, info) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(f"{info.field_name} must lie strictly between 0 and 1, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.control in self.arms:
            raise ValueError(f"control: {self.control!r} must not also be listed among the treatment arms")
        if isinstance(self.arm_weights, dict) and set(self.arm_weights) != set(self.arms):
            missing = sorted(set(self.arms) - set(self.arm_weights))
            extra = sorted(set(self.arm_weights) - set(self.arms))
            raise ValueError(
                f"arm_weights must give one weight per arm in 'arms'; missing {missing}, not among arms {extra}"
            )
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) must be on or after start ({self.start})")
        return self

    @property
    def weights_from_plan(self) -> bool:
        """True when ``arm_weights`` is ``"from_plan"``."""
        return self.arm_weights == FROM_PLAN

    @property
    def all_arms(self) -> tuple[str, ...]:
        """The control arm followed by the treatment arms in declaration order."""
        return (self.control, *self.arms)
