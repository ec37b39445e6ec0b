"""Analysis of a randomised wave: per-arm effects against the control, verdicts adjusted for many arms, SRM check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.data.vocabulary import HOLDOUT
from uplift.design.comparisons import COMPARISON_COLUMNS, Outcomes, compare_arms
from uplift.design.cuped import cuped_terms, cuped_theta
from uplift.design.multiplicity import FamilyAdjustment
from uplift.design.power import detectable_effect
from uplift.design.srm import SampleRatioCheck, srm_check
from uplift.design.verdicts import VERDICT_COLUMNS, decide
from uplift.errors import DataError, SchemaError
from uplift.specs.experiment import MULTIPLICITY, ExperimentSpec, Multiplicity

__all__ = ["Analysis", "EFFECT_COLUMNS", "Inference", "analyze"]

EFFECT_COLUMNS = (*COMPARISON_COLUMNS, *VERDICT_COLUMNS, "detectable_effect", "target_effect", "too_small")
"""Columns of :attr:`Analysis.arms` (``segments`` has ``segment`` first)."""


@dataclass(frozen=True)
class Inference:
    """How the comparisons are judged: level, adjustment for testing many, and the power a cell should have.

    Attributes
    ----------
    alpha : float
        Two-sided level of each family (0.05).
    multiplicity : {"holm", "bh", "none"}
        Adjustment of each family (:func:`~uplift.design.multiplicity.adjust_family`).
    power : float
        Power at which each cell's detectable effect is computed (0.8).
    target_effect : float or mapping of arm to float, optional
        The effect each arm is expected to have (the plan's expectation) or worth detecting (the
        spec's ``minimum_detectable_effect``); cells whose detectable effect exceeds it are too
        small. None: no target, no such check.

    Raises
    ------
    DataError
        ``alpha`` or ``power`` outside (0, 1), or an unknown ``multiplicity``.
    """

    alpha: float = 0.05
    multiplicity: Multiplicity = "holm"
    power: float = 0.8
    target_effect: float | Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        for name in ("alpha", "power"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise DataError(f"{name} must lie strictly between 0 and 1, got {value}")
        if self.multiplicity not in MULTIPLICITY:
            raise DataError(
                f"{self.multiplicity!r} is not a valid multiplicity adjustment; valid: {', '.join(MULTIPLICITY)}"
            )

    @classmethod
    def from_spec(cls, spec: ExperimentSpec, target_effect: float | Mapping[str, float] | None = None) -> Inference:
        """The spec's ``alpha``, ``multiplicity`` and ``power``; the target is ``target_effect`` if given
        (e.g. the plan's expected effect per arm), else the spec's ``minimum_detectable_effect``."""
        target = spec.minimum_detectable_effect if target_effect is None else target_effect
        return cls(alpha=spec.alpha, multiplicity=spec.multiplicity, power=spec.power, target_effect=target)

    def target_for(self, arms: Sequence[str]) -> np.ndarray:
        """The target effect of each arm (NaN where none is known)."""
        if self.target_effect is None:
            return np.full(len(arms), np.nan)
        if isinstance(self.target_effect, Mapping):
            return np.array([float(self.target_effect.get(a, np.nan)) for a in arms], dtype=float)
        return np.full(len(arms), float(self.target_effect))


@dataclass(frozen=True, eq=False)
class Analysis:
    """Result of :func:`analyze`.

    Attributes
    ----------
    arms : pandas.DataFrame
        One row per arm, the control first, columns :data:`EFFECT_COLUMNS`. Per arm: ``n``,
        ``conversions``, ``rate`` and its exact (Clopper-Pearson) interval ``rate_ci_low/high``.
        Against the control (NaN on the control row), at level ``1 - alpha`` for this comparison
        alone: ``effect`` (difference of rates), ``se`` (unpooled Wald), ``ci_low/ci_high``
        (square-and-add of the exact intervals, :func:`~uplift.design.rates.difference_interval`),
        ``relative_lift`` (effect / control rate), ``p_value``
        (:func:`~uplift.design.rates.difference_p_value`: never below Fisher's exact test).
        ``cuped_*`` and ``variance_reduction`` (``1 - cuped_se**2 / se**2``) where CUPED is
        defined (:mod:`uplift.design.cuped`), else NaN. ``method`` is ``cuped`` where it is defined
        and narrows the interval, else ``exact``, with ``method_note`` saying why.
        The verdict, for the family of all arms against the control: ``estimate`` (of ``method``)
        with ``estimate_ci_low/high`` at ``interval_level``, ``adjusted_p_value``, ``verdict``
        (``better``, ``worse`` or ``unclear``), ``family`` and ``family_size``
        (:func:`~uplift.design.verdicts.decide`). ``detectable_effect``: the smallest rise this
        arm's and the control's people detect at ``inference.power`` (at the family's first-step
        level ``alpha / family_size`` unless ``multiplicity`` is ``none``, and the control's rate);
        ``target_effect``: what the arm is expected to do (NaN if unknown); ``too_small``: a target is
        known and the cell cannot detect it (``detectable_effect`` above ``|target_effect|`` or none).
    segments : pandas.DataFrame or None
        The same per ``segment`` x arm, each against the control of the same segment; all segment
        comparisons are one family.
    srm : SampleRatioCheck or None
        Sample-ratio-mismatch check against the design shares, or None if none were given.
    control : str
        Name of the control arm.
    outcome : str
        Name of the outcome column analysed.
    inference : Inference
        Level, adjustment, power and targets used.
    covariates : tuple of str
        The pre-wave covariates offered to CUPED.
    theta : pandas.Series
        CUPED coefficient per covariate (pooled least squares over all rows).
    families : dict of str to FamilyAdjustment
        ``"arms"`` and, with segments, ``"segments"``: size, level and adjusted p-values of each family.
    """

    arms: pd.DataFrame = field(repr=False)
    segments: pd.DataFrame | None = field(repr=False)
    srm: SampleRatioCheck | None
    control: str
    outcome: str
    inference: Inference
    covariates: tuple[str, ...]
    theta: pd.Series = field(repr=False)
    families: dict[str, FamilyAdjustment] = field(repr=False)

    @property
    def alpha(self) -> float:
        """Two-sided level of each family."""
        return self.inference.alpha

    @property
    def treatment(self) -> pd.DataFrame:
        """The rows of :attr:`arms` other than the control."""
        return self.arms[self.arms["arm"] != self.control].reset_index(drop=True)


def analyze(
    frame: pd.DataFrame,
    *,
    arm_col: str = "arm",
    outcome_col: str = "outcome",
    control: str = HOLDOUT,
    segment_col: str | None = None,
    covariates: Sequence[str] = (),
    expected_shares: Mapping[str, float] | None = None,
    inference: Inference | None = None,
) -> Analysis:
    """Effect of every arm against the control in a randomised wave, judged honestly at any count.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per randomised person: the arm, the 0/1 outcome, optional numeric pre-wave
        covariates and an optional segment column. Not modified.
    arm_col, outcome_col : str
        Names of the arm and outcome columns.
    control : str
        Name of the control arm (default ``"holdout"``).
    segment_col : str, optional
        Also report effects per value of this column.
    covariates : sequence of str
        Numeric columns measured before the wave, for CUPED: the outcome is regressed on them over
        all rows (``theta``) and ``y - (x - mean(x)) @ theta`` replaces ``y`` in the comparisons
        where that is defined and narrows the interval (:mod:`uplift.design.cuped`). Because arms
        are randomised, the adjusted effect has the same expectation as the plain one.
    expected_shares : mapping of arm to share, optional
        Design shares (e.g. :func:`~uplift.design.shares.design_shares`), for the SRM check.
    inference : Inference, optional
        Level, multiplicity adjustment, power and target effects (default ``Inference()``: 5%,
        Holm, 80%, no target).

    Returns
    -------
    Analysis

    Raises
    ------
    SchemaError
        A named column is missing.
    DataError
        The outcome is not 0/1, a value is missing, a covariate is not numeric, or the control has
        no rows.
    """
    inference = inference or Inference()
    covariates = tuple(covariates)
    _check_columns(frame, [arm_col, outcome_col, *([segment_col] if segment_col else []), *covariates])
    people, theta = _wave_outcomes(frame, arm_col=arm_col, outcome_col=outcome_col, control=control,
                                   covariates=covariates)
    order = _arm_order(people.arm, control, expected_shares)
    base_rate = float(people.y[people.arm == control].mean())
    arms_table, arms_family = _arm_table(people, order, control, inference, base_rate)
    families = {"arms": arms_family}
    segments = None
    if segment_col:
        seg = _labels(frame[segment_col], segment_col)
        segments, families["segments"] = _segment_table(seg, people, order, control, inference, base_rate)
    srm = None if expected_shares is None else srm_check(pd.Series(people.arm).value_counts(), expected_shares)
    return Analysis(
        arms=arms_table,
        segments=segments,
        srm=srm,
        control=control,
        outcome=outcome_col,
        inference=inference,
        covariates=covariates,
        theta=pd.Series(theta, index=list(covariates), dtype=float, name="theta"),
        families=families,
    )


def _check_columns(frame: pd.DataFrame, needed: list[str]) -> None:
    """The frame has rows and every column the analysis reads."""
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise SchemaError(f"analysis frame: missing column(s) {missing}; columns are {list(frame.columns)}")
    if len(frame) == 0:
        raise DataError("analysis frame: no rows")


def _wave_outcomes(
    frame: pd.DataFrame, *, arm_col: str, outcome_col: str, control: str, covariates: tuple[str, ...]
) -> tuple[Outcomes, np.ndarray]:
    """Every person's checked arm and 0/1 outcome with, given covariates, the CUPED term; and CUPED's ``theta``."""
    arm = _labels(frame[arm_col], arm_col)
    y = _binary(frame[outcome_col], outcome_col)
    if not (arm == control).any():
        raise DataError(f"column {arm_col!r}: no rows of the control arm {control!r}; arms are {sorted(set(arm))}")
    x = _numeric(frame, covariates)
    theta = cuped_theta(x, y)
    return Outcomes(arm, y, cuped_terms(x, theta) if covariates else None), theta


def _arm_table(
    people: Outcomes, order: list[str], control: str, inference: Inference, base_rate: float
) -> tuple[pd.DataFrame, FamilyAdjustment]:
    """Every arm against the control over all people, judged as one family."""
    table = compare_arms(people, order, control, inference.alpha)
    table, family = _judge(table, control, inference, "arms", base_rate)
    return table[list(EFFECT_COLUMNS)], family


def _segment_table(
    seg: np.ndarray,
    people: Outcomes,
    order: list[str],
    control: str,
    inference: Inference,
    base_rate: float,
) -> tuple[pd.DataFrame, FamilyAdjustment]:
    """Every segment's arms against the same segment's control, judged as one family."""
    parts = []
    for value in sorted(set(seg)):
        rows = seg == value
        present = set(people.arm[rows])
        sub_order = [a for a in order if a in present]
        parts.append(compare_arms(people.subset(rows), sub_order, control, inference.alpha).assign(segment=value))
    table = pd.concat(parts, ignore_index=True)
    table, family = _judge(table, control, inference, "segments", base_rate, by=table["segment"])
    return table[["segment", *EFFECT_COLUMNS]], family


def _judge(
    table: pd.DataFrame,
    control: str,
    inference: Inference,
    family: str,
    base_rate: float,
    by: pd.Series | None = None,
) -> tuple[pd.DataFrame, FamilyAdjustment]:
    """Verdicts of one family, then each row's detectable and target effect (``by``: the control's group)."""
    key = by if by is not None else pd.Series(0, index=table.index)
    is_control = (table["arm"] == control).to_numpy()
    controls = table[is_control].assign(key=key[is_control].to_numpy()).set_index("key")
    n0 = key.map(controls["n"]).to_numpy(dtype=float)
    x0 = key.map(controls["conversions"]).to_numpy(dtype=float)
    judged, adjustment = decide(table, n0, x0, multiplicity=inference.multiplicity, alpha=inference.alpha,
                                family=family)
    level = inference.alpha if inference.multiplicity == "none" else inference.alpha / max(adjustment.size, 1)
    member = judged["family"].to_numpy() == family
    detectable = np.full(len(judged), np.nan)
    for i in np.flatnonzero(member):
        detectable[i] = detectable_effect(base_rate, n0[i], float(judged["n"].iat[i]), alpha=level,
                                          power=inference.power)
    target = np.where(member, inference.target_for(judged["arm"].tolist()), np.nan)
    with np.errstate(invalid="ignore"):
        too_small = (np.abs(target) > 0) & ~(detectable <= np.abs(target))
    return judged.assign(detectable_effect=detectable, target_effect=target, too_small=too_small), adjustment


# -- input checks ---------------------------------------------------------------------------
def _labels(column: pd.Series, name: str) -> np.ndarray:
    if column.isna().any():
        raise DataError(f"column {name!r}: {int(column.isna().sum())} missing value(s)")
    return column.astype(str).to_numpy(dtype=object)


def _binary(column: pd.Series, name: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise DataError(
            f"column {name!r}: expected 0/1 outcomes; {int(bad.sum())} row(s) break it "
            f"(e.g. {column[bad].head(3).tolist()})"
        )
    return values


def _numeric(frame: pd.DataFrame, covariates: tuple[str, ...]) -> np.ndarray:
    for col in covariates:
        if not (pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col])):
            raise DataError(f"covariate {col!r}: expected numeric values, got dtype {frame[col].dtype}")
    x = frame.loc[:, list(covariates)].to_numpy(dtype=float) if covariates else np.empty((len(frame), 0))
    bad = ~np.isfinite(x)
    if bad.any():
        cols = [c for c, b in zip(covariates, bad.any(axis=0), strict=True) if b]
        raise DataError(f"covariate(s) {cols}: {int(bad.any(axis=1).sum())} row(s) with missing or infinite values")
    return x


def _arm_order(arm: np.ndarray, control: str, expected: Mapping[str, float] | None) -> list[str]:
    present = set(arm)
    declared = [a for a in (expected or {}) if a in present and a != control]
    rest = sorted(present - set(declared) - {control})
    return [control, *declared, *rest]
