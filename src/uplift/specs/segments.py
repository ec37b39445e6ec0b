"""Segment declarations (``features/segments.yaml``): targetable dimensions, persona rules, anonymity floor."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from uplift.specs import Spec
from uplift.specs.region import Condition

__all__ = ["EffectMethod", "PersonaRule", "SegmentSpec", "TARGETABLE_DIMENSIONS"]

TARGETABLE_DIMENSIONS = ("age_band", "gender", "municipality", "neighbourhood")
"""What an ad platform or a flyer round can target: age band, gender, place."""


class PersonaRule(Spec):
    """A persona as a readable rule over audience attributes (every given field must match)."""

    name: str
    description: str = ""
    rule: Condition

    @field_validator("rule")
    @classmethod
    def _audience_only(cls, v: Condition) -> Condition:
        if v.persona is not None or v.deprivation_min is not None:
            raise ValueError("persona rules may only use audience attributes (not persona or deprivation_min)")
        return v


class EffectMethod(Spec):
    """How one segment kind's effects are estimated (see :mod:`uplift.segments.effects`)."""

    variance: Literal["floored", "segment_rate"] = "floored"
    """The observed effects' variance: empirical floored at the pooled rate's binomial variance
    (conservative in small cells), or binomial at the segment's own rate (about right on average)."""
    leak_correction: bool = False
    """Take the covariance between the cross-fitted model and the observed noise out of the
    calibration and the intervals (needs the cross-fitting folds)."""
    persona_weight: float = Field(0.0, ge=0.0, le=1.0)
    """Weight of the persona mix in what the observed effects are calibrated against:
    ``(1 - w) * model + w * persona_mix``, where ``persona_mix`` is the segment's persona shares
    times each persona's observed arm-vs-holdout effect over all rows (0: the model alone). Only for
    targetable segments, and only used when personas are declared."""
    persona_min_signal: float = 2.0
    """The persona mix is used only when it predicts the segments' own randomised differences:
    split in half by person, one half's persona mix against the other half's observed effects,
    within arms, with a t statistic (the mean over five seeded splits) of at least this
    (:func:`uplift.segments.personamix.persona_signal`).
    Personas unrelated to the effects would otherwise add their noise."""
    arm_slopes: bool = False
    """Put each arm's effects across the segments on the arm's own calibration slope, shrunk towards
    the slope within all the arms by how far the arms' slopes can be told apart
    (:func:`uplift.segments.effects.arm_slope_effects`), instead of the one slope fitted over the
    arms' levels and their segments together."""
    observed_arm_levels: bool = False
    """Set every arm's level (the mean of its effects over the kind's rows) to the arm's observed
    arm-vs-holdout difference over those rows, shrunk across the arms by their between-arm variance
    (:mod:`uplift.segments.armlevels`); the segments keep their deviations from it."""
    message_channel_rank: int = Field(0, ge=0)
    """Read each segment's messages x channels table of effects as a low-rank product: with 1, a
    message's effect on a channel is the message's appeal to the segment times how strongly the
    channel carries a message to it (:func:`uplift.segments.armtable.low_rank_effects`). The table
    is projected on that rank (its leading singular vectors), which averages out the noise the
    structure cannot hold. 0 keeps the effects as estimated."""
    smooth_over: tuple[tuple[str, ...], ...] = ()
    """Read each arm's effects across the segments as a sum of parts, one per term: a term is a
    tuple of segment dimensions whose joint value has a part of its own, e.g.
    ``[[age_band, gender], [municipality]]`` (an age band x gender part plus a place part). Each
    arm's effects are replaced by their fit on those parts (weighted by the cells' rows; the arm's
    level is kept), before the rank-1 projection (:func:`uplift.segments.additive.additive_effects`).
    Only for the targetable kind, over its dimensions. Empty keeps the cells as estimated."""

    additive_fit: bool = True
    """With ``smooth_over``: each arm's effects are replaced by their fit on the terms. False keeps the
    effects as the stages before leave them; the terms then only name the parts of ``observed_parts``."""
    observed_parts: bool = False
    """With ``smooth_over``: after the additive fit, each arm's observed differences around the effects
    are read on the same parts as a random-effects model with the arm's own variances (maximum
    likelihood), and each cell gets its parts' prediction added (:mod:`uplift.segments.parts`): what the
    arm's data say about how its effect differs by the segment dimensions that the estimates before it
    miss. False: the cells' own observations count only through the calibration's weight."""
    arm_spread: bool = False
    """How far each arm's cells lean on their own observations is estimated from the arm's own cells
    (their spread around the calibrated prior, shrunk towards the spread pooled over the arms by how
    much the arms' spreads truly differ; :func:`uplift.segments.effects.arm_spreads`), so an arm whose
    segments truly differ keeps its spread. False: one spread for every arm."""
    select_stages: bool = False
    """Keep each stage switched on above (the persona mix, the arms' own slopes, the arm levels, the
    additive fit, the rank-1 projection) only when the dataset's own held-out rows support it: the
    combination of stages whose estimates from the other folds predict each cross-fitting fold's
    randomised cell differences best (:mod:`uplift.segments.stages`). Needs the cross-fitting folds;
    without them the stages run as declared. Only for the targetable kind."""
    promise_top_share: float = Field(0.25, ge=0.0, le=1.0)
    """With ``select_stages``: a plan's expected conversions and interval are calibrated on the same
    held-out folds, by what the best-looking cells making up this share of each fold's rows bought per
    conversion their estimates promised (:mod:`uplift.segments.promise`). 0 switches it off: a plan
    promises the sum of its cells' estimates."""

    @field_validator("smooth_over")
    @classmethod
    def _terms(cls, v: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        if any(not term for term in v):
            raise ValueError("smooth_over: every term needs at least one dimension")
        return v


_DEFAULT_EFFECTS = {
    "targetable": EffectMethod(persona_weight=0.5, arm_slopes=True, observed_arm_levels=True, message_channel_rank=1,
                               arm_spread=True, select_stages=True),
    "persona": EffectMethod(variance="segment_rate", leak_correction=True),
}
"""What the decision benchmark supports (docs/benchmarks.md): personas are large segments whose
cross-fitted model mean learns their noise; targetable cells plan better with the conservative estimate
and with the persona mix next to the model."""


class SegmentSpec(Spec):
    """How the audience is cut into segments and how effects per segment are reported."""

    name: str = "default"
    dimensions: tuple[str, ...] = ("age_band", "gender", "municipality")
    """Targetable segments are the combinations of these dimensions (coarse to fine)."""
    min_size: int = Field(50, ge=1)
    """Cells with fewer people are merged into an 'other' cell of their parent; still too small: suppressed."""
    interval: float = Field(0.8, gt=0, lt=1)
    personas: tuple[PersonaRule, ...] = ()
    effects: dict[Literal["targetable", "persona"],
                  EffectMethod] = Field(default_factory=lambda: dict(_DEFAULT_EFFECTS))
    """Per segment kind, how its effects are estimated; a kind not named keeps its default."""

    def effect_method(self, kind: str) -> EffectMethod:
        """The estimation settings of segment ``kind``."""
        return self.effects.get(kind, _DEFAULT_EFFECTS.get(kind, EffectMethod()))

    @field_validator("dimensions")
    @classmethod
    def _targetable(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in v if d not in TARGETABLE_DIMENSIONS]
        if bad:
            raise ValueError(f"{bad} cannot be targeted; valid: {list(TARGETABLE_DIMENSIONS)}")
        if not v:
            raise ValueError("give at least one dimension")
        return v

    @model_validator(mode="after")
    def _unique_personas(self) -> SegmentSpec:
        names = [p.name for p in self.personas]
        if len(set(names)) != len(names):
            raise ValueError(f"persona names must be unique: {names}")
        return self

    @model_validator(mode="after")
    def _persona_mix_for_targetable_only(self) -> SegmentSpec:
        method = self.effect_method("persona")
        if method.persona_weight > 0:
            raise ValueError(
                "effects.persona.persona_weight: expected 0 (a persona segment's persona mix is its own observed "
                f"effect), got {method.persona_weight}"
            )
        return self

    @model_validator(mode="after")
    def _stages_selected_for_targetable_only(self) -> SegmentSpec:
        if self.effect_method("persona").select_stages:
            raise ValueError("effects.persona.select_stages: expected false (the persona kind has no stages to select)")
        return self

    @model_validator(mode="after")
    def _smoothing_over_own_dimensions(self) -> SegmentSpec:
        if self.effect_method("persona").smooth_over:
            raise ValueError("effects.persona.smooth_over: expected none (persona segments have no dimension values)")
        unknown = sorted({d for t in self.effect_method("targetable").smooth_over for d in t} - set(self.dimensions))
        if unknown:
            raise ValueError(f"effects.targetable.smooth_over: {unknown} are not among the segment dimensions "
                             f"{list(self.dimensions)}")
        return self
