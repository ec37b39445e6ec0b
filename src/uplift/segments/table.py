"""The segment table planners see: per segment and arm, the calibrated effect with its interval.

Built from out-of-sample predictions only (cross-fitted on the training rows, held-out on the test
rows), never from in-sample fits. One row per (segment, arm); segments under the anonymity floor
never appear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from uplift.allocation.effects import PER_ARM_PREFIXES, shared_error_columns
from uplift.data.trainingtable import TrainingTable
from uplift.data.vocabulary import split_arm
from uplift.features.library import age_band_of
from uplift.segments.additive import PART_PREFIX, part_columns
from uplift.segments.assign import (
    PERSONA_NONE,
    SUPPRESSED,
    assign_personas,
    rule_attributes,
    rules_for_columns,
    targetable_cells,
)
from uplift.segments.estimator import KindRows, segment_effects
from uplift.segments.personamix import PersonaMix, persona_mix, persona_signal
from uplift.segments.stages import StageChoice, declared_choice, select_stages
from uplift.segments.tallies import TALLY_COLUMNS, cell_tallies
from uplift.specs.segments import EffectMethod, SegmentSpec

__all__ = ["SEGMENT_COLUMNS", "build_segment_table", "columns_read", "segment_members", "truth_persona_mix",
           "truth_segment_effects"]

SEGMENT_COLUMNS = (
    "segment", "kind", "size", "rows", "arm", "message", "channel", "base_rate",
    "effect", "effect_sd", "lo", "hi", "observed", "observed_se", "model", "persona_mix", "n_treated", "n_control",
    "calibration_load_1", "calibration_load_2", "calibration_slope_load", "arm_level_load", "arm_level_load_common",
    *TALLY_COLUMNS,
)


def _people(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if "age_band" not in out.columns and "age" in out.columns:
        out["age_band"] = age_band_of(out["age"])
    return out


def columns_read(spec: SegmentSpec) -> tuple[str, ...]:
    """The audience columns :func:`build_segment_table` reads besides a training table's keys, arm, outcome and
    propensities: the segment dimensions, the persona rules' attributes and ``age`` (for the age band)."""
    columns = dict.fromkeys([*spec.dimensions, "age"])
    for rule in spec.personas:
        columns.update(dict.fromkeys(sorted(rule_attributes(rule))))
    return tuple(columns)


def segment_members(frame: pd.DataFrame, spec: SegmentSpec) -> pd.DataFrame:
    """Per row: its targetable segment label (with dimension values) and its persona segment label.

    Persona rules over attributes ``frame`` lacks are switched off silently (:func:`build_segment_table`
    says which, once).
    """
    people = _people(frame)
    cells = targetable_cells(people, spec.dimensions, spec.min_size)
    rules = rules_for_columns(spec.personas, people.columns, note=False)  # build_segment_table says it once
    persona = assign_personas(people, rules) if rules else np.full(len(people), PERSONA_NONE, dtype=object)
    persona_label = np.where(persona == PERSONA_NONE, SUPPRESSED, "persona=" + persona.astype(str))
    sizes = pd.Series(frame["person_id"].to_numpy()).groupby(persona_label).nunique()
    small = pd.Series(persona_label).map(sizes).to_numpy() < spec.min_size
    persona_label[small] = SUPPRESSED
    cells["persona"] = persona
    cells["persona_segment"] = persona_label
    return cells


def build_segment_table(
    table: TrainingTable,
    predictions: pd.DataFrame,
    spec: SegmentSpec,
    *,
    folds: np.ndarray | None = None,
    heldout_fold: int | None = None,
) -> pd.DataFrame:
    """Per segment (targetable cells and personas) and treatment arm: size, base rate, calibrated effect.

    The table is internal: it keeps each cell's raw figures (``base_rate``, ``observed``, row counts)
    and the people behind them (:data:`~uplift.segments.tallies.TALLY_COLUMNS`) for the disclosure
    rules; :mod:`uplift.segments.release` makes the planner's table and the released one from it.

    Parameters
    ----------
    table : the rows the predictions belong to (same order).
    predictions : out-of-sample predicted uplift, one column per treatment arm.
    spec : dimensions, persona rules, anonymity floor, interval level and, per kind, how effects
        are estimated (``spec.effects``; with ``select_stages`` and the folds, the targetable kind keeps
        the stages its held-out rows support, :func:`uplift.segments.stages.select_stages`, and the
        result's ``attrs["stages"]`` records the choice and its evidence per kind,
        :func:`uplift.segments.stages.stage_table`; a targetable ``persona_weight`` blends the persona
        mix of :mod:`uplift.segments.personamix` into the calibration when kept, or without selection
        when its split-half signal reaches ``persona_min_signal``: columns ``persona_mix`` (empty when
        not used) and one
        ``persona_load__<persona>`` per persona, the cells' loadings on those shared errors; a kind
        with ``smooth_over`` has ``fit_load__<k>`` columns, its cells' loadings on their arm's
        additive fit). ``effect_sd`` is the sd of a cell's whole error, its own part and the parts
        its loadings share with other cells (:data:`uplift.allocation.effects.EFFECTS`), and ``lo`` /
        ``hi`` its central ``spec.interval``. Persona rules over attributes the table lacks are
        switched off, with one note.
    folds, heldout_fold : per row, the cross-fitting fold whose model predicted it, and the fold no
        model saw (:meth:`uplift.modeling.validation.ValidationReport.out_of_sample_folds`); needed
        by a kind with ``leak_correction`` (skipped without them) and by the selection of stages (the
        stages then run as declared).
    """
    if folds is not None and len(folds) != len(table.frame):
        raise ValueError(f"folds: expected one fold per row ({len(table.frame)}), got {len(folds)}")
    spec = spec.model_copy(update={"personas": rules_for_columns(spec.personas, table.frame.columns)})
    members = segment_members(table.frame, spec)
    build = _Build(table, predictions, spec, members, table.propensity(), folds, heldout_fold)
    parts, choices = [], {}
    for kind, labels in (("targetable", members["segment"].to_numpy()),
                         ("persona", members["persona_segment"].to_numpy())):
        if (labels != SUPPRESSED).any():
            part, choices[kind] = _kind_part(build, kind, labels)
            parts.append(part)
    out = _with_message_channel(pd.concat(parts, ignore_index=True))
    loads = _filled_loads(out)
    _add_intervals(out, z=float(norm.ppf(0.5 + spec.interval / 2)))
    out = _released_columns(out, spec, loads)
    out.attrs["stages"] = _stage_records(choices)
    return out


@dataclass(frozen=True)
class _Build:
    """What every segment kind of one :func:`build_segment_table` reads: the rows, their predictions and
    propensities, the spec (persona rules over missing attributes switched off), each row's segments
    (:func:`segment_members`) and the cross-fitting folds (or None)."""

    table: TrainingTable
    predictions: pd.DataFrame
    spec: SegmentSpec
    members: pd.DataFrame
    propensity: pd.DataFrame
    folds: np.ndarray | None
    heldout_fold: int | None


def _kind_part(build: _Build, kind: str, labels: np.ndarray) -> tuple[pd.DataFrame, StageChoice | None]:
    """One kind's rows of the table (one per shown segment and arm; no ``group`` column) and its stage
    choice (None for a kind without stages to choose).

    ``labels`` is every row's segment of the kind (:data:`~uplift.segments.assign.SUPPRESSED` outside
    its shown segments); at least one row is shown.
    """
    shown = labels != SUPPRESSED
    groups, names = pd.factorize(labels[shown], sort=True)
    names = np.asarray(names, dtype=object)
    attrs = _attributes(kind, names, build.members, labels, build.spec)  # one row per group, in the groups' order
    all_groups = np.full(len(labels), -1)  # every row: its group, -1 outside the kind's shown segments
    all_groups[shown] = groups
    mix, method, choice = _persona_mix_and_stages(
        kind, build.spec.effect_method(kind), build.table, build.predictions, build.members,
        _KindGroups(all_groups, len(names), attrs), build.spec, build.folds)
    eff = segment_effects(_kind_rows(build, shown, groups, len(names)), method, persona_mix=mix,
                          group_attributes=attrs)
    eff = _with_cell_figures(eff, build, kind, shown, groups, names, attrs)
    if method.smooth_over and method.additive_fit:  # the parts the effects were fitted on, for the planner's draws
        eff = pd.concat([eff, part_columns(eff, method.smooth_over)], axis=1)
    return eff.drop(columns=["group"]), choice


def _kind_rows(build: _Build, shown: np.ndarray, groups: np.ndarray, n_groups: int) -> KindRows:
    """The estimator's input for one kind: its shown rows with their groups, outcomes, arms, propensities,
    predictions and (when given) folds."""
    f = build.table.frame
    return KindRows(groups, n_groups, y=f["outcome"].to_numpy()[shown].astype(float), arm=f["arm"].to_numpy()[shown],
                    propensity=build.propensity.iloc[np.flatnonzero(shown)].reset_index(drop=True),
                    predictions=build.predictions.iloc[np.flatnonzero(shown)].reset_index(drop=True),
                    control=build.table.control, folds=None if build.folds is None else np.asarray(build.folds)[shown],
                    heldout_fold=build.heldout_fold)


def _with_cell_figures(eff: pd.DataFrame, build: _Build, kind: str, shown: np.ndarray, groups: np.ndarray,
                       names: np.ndarray, attrs: pd.DataFrame) -> pd.DataFrame:
    """A kind's effects with each cell's label, kind, size (people), row count, attributes and tallies.

    The tallies are the people behind each cell's raw figures, for the disclosure rules
    (:mod:`uplift.segments.release`).
    """
    f = build.table.frame
    people = pd.Series(f["person_id"].to_numpy()[shown])
    size = people.groupby(groups).nunique().reindex(range(len(names))).to_numpy()
    rows = np.bincount(groups, minlength=len(names))
    eff["segment"] = names[eff["group"].to_numpy()]
    eff["kind"] = kind
    eff["size"] = size[eff["group"].to_numpy()]
    eff["rows"] = rows[eff["group"].to_numpy()]
    eff = eff.merge(attrs, on="segment", how="left")
    return eff.merge(cell_tallies(groups, len(names), person_id=f["person_id"].to_numpy()[shown],
                                  arm=f["arm"].to_numpy()[shown], y=f["outcome"].to_numpy()[shown],
                                  arms=tuple(build.predictions.columns), control=build.table.control),
                     on=["group", "arm"], how="left")


def _with_message_channel(out: pd.DataFrame) -> pd.DataFrame:
    """``out`` with each row's arm split into ``message`` and ``channel`` columns (added in place)."""
    msg_ch = [split_arm(a) for a in out["arm"]]
    out["message"] = [m for m, _ in msg_ch]
    out["channel"] = [c for _, c in msg_ch]
    return out


def _filled_loads(out: pd.DataFrame) -> list[str]:
    """Fill, in place, the loadings a kind does not have with 0; return the per-arm loading columns.

    The persona segments' estimates do not rest on the persona mix, nor do a kind's not smoothed on a
    fit rest on one; a kind that keeps the calibrated arm levels has no ``arm_level_load*``.
    """
    loads = [c for c in out.columns if str(c).startswith(PER_ARM_PREFIXES)]
    out[loads] = out[loads].fillna(0.0)
    for column in ("arm_level_load", "arm_level_load_common"):
        out[column] = out[column].fillna(0.0) if column in out.columns else 0.0
    return loads


def _add_intervals(out: pd.DataFrame, z: float) -> None:
    """Add, in place, each cell's ``effect_sd`` (its own error, in place of ``own_sd``, and every error it
    shares with other cells) and its interval ``lo`` / ``hi`` of ``z`` sds."""
    shared = out[shared_error_columns(out)].to_numpy(dtype=float)
    out["effect_sd"] = np.sqrt(out.pop("own_sd").to_numpy(dtype=float) ** 2 + np.sum(shared**2, axis=1))
    out["lo"] = out["effect"] - z * out["effect_sd"]
    out["hi"] = out["effect"] + z * out["effect_sd"]


def _released_columns(out: pd.DataFrame, spec: SegmentSpec, loads: list[str]) -> pd.DataFrame:
    """The table's columns in order (:data:`SEGMENT_COLUMNS`, the loadings, the attributes, the additive
    parts, empty for a kind not smoothed), its rows sorted by kind, segment and arm."""
    part_cols = [c for c in out.columns if str(c).startswith(PART_PREFIX)]
    out[part_cols] = out[part_cols].fillna("")  # a kind not smoothed has no parts
    attr_cols = [c for c in (*spec.dimensions, "persona") if c in out.columns]
    columns = list(SEGMENT_COLUMNS) + loads + attr_cols + part_cols
    return out[columns].sort_values(["kind", "segment", "arm"], kind="stable").reset_index(drop=True)


def _stage_records(choices: dict[str, StageChoice | None]) -> dict[str, dict]:
    """``attrs["stages"]`` of the table: per kind with stages to choose, the record of its choice."""
    return {kind: choice.record() for kind, choice in choices.items() if choice is not None}


@dataclass(frozen=True)
class _KindGroups:
    """A segment kind's groups: per row of the table its group (-1 outside the kind's shown segments),
    how many, and one row of attributes per group."""

    of_row: np.ndarray
    count: int
    attributes: pd.DataFrame


def _persona_mix_and_stages(kind: str, method: EffectMethod, table: TrainingTable, predictions: pd.DataFrame,
                            members: pd.DataFrame, groups: _KindGroups, spec: SegmentSpec, folds: np.ndarray | None,
                            ) -> tuple[PersonaMix | None, EffectMethod, StageChoice | None]:
    """The kind's persona mix (None when not used), its method with the stages the data keep, and that
    choice (None for a kind without stages to choose).

    With ``select_stages`` and the folds, the stages are chosen on the held-out rows
    (:func:`uplift.segments.stages.select_stages`); else the persona mix is used when its split-half
    signal reaches ``persona_min_signal`` and the other stages run as declared.
    """
    if kind != "targetable":
        return None, method, None
    f = table.frame
    personas = method.persona_weight > 0 and bool(spec.personas)
    randomised = dict(y=f["outcome"].to_numpy(float), arm=f["arm"].to_numpy(), propensity=table.propensity(),
                      control=table.control)
    persona = members["persona"].to_numpy()
    arms = tuple(predictions.columns)
    if method.select_stages and folds is not None:
        rows = KindRows(groups.of_row, groups.count, predictions=predictions, folds=np.asarray(folds), **randomised)
        choice = select_stages(rows, method, persona=persona if personas else None, attributes=groups.attributes)
    else:
        use_mix = personas and persona_signal(groups.of_row, groups.count, persona, f["person_id"].to_numpy(),
                                              arms=arms, **randomised) >= method.persona_min_signal
        # without the signal the model alone: personas unrelated to the effects add only their noise
        choice = declared_choice(method if use_mix else method.model_copy(update={"persona_weight": 0.0}),
                                 personas=personas)
    mix = (persona_mix(groups.of_row, groups.count, persona, arms=arms, **randomised)
           if "persona_mix" in choice.kept else None)
    return mix, choice.apply(method), choice


def _attributes(kind: str, names: np.ndarray, members: pd.DataFrame, labels: np.ndarray,
                spec: SegmentSpec) -> pd.DataFrame:
    """Attribute columns per segment (for policies that select segments, e.g. fairness floors)."""
    if kind == "targetable":
        first = members.assign(_label=labels).drop_duplicates("_label").set_index("_label")
        out = first.loc[names, list(spec.dimensions)].copy()
        out["persona"] = "any"
    else:
        out = pd.DataFrame({d: "any" for d in spec.dimensions}, index=names)
        out["persona"] = [n.removeprefix("persona=") for n in names]
    return out.rename_axis("segment").reset_index()


def truth_segment_effects(
    table: TrainingTable, true_p: pd.DataFrame, spec: SegmentSpec
) -> pd.DataFrame:
    """The true effect per (segment, arm): mean over the segment's rows of true P(arm) - P(control)."""
    members = segment_members(table.frame, spec)
    base = true_p[table.control].to_numpy()
    parts = []
    for labels in (members["segment"].to_numpy(), members["persona_segment"].to_numpy()):
        shown = labels != SUPPRESSED
        lab = labels[shown]
        for a in table.treatment_arms:
            true = (true_p[a].to_numpy() - base)[shown]
            s = pd.Series(true).groupby(lab).mean()
            parts.append(pd.DataFrame({"segment": s.index, "arm": a, "true_effect": s.to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def truth_persona_mix(table: TrainingTable, true_p: pd.DataFrame, spec: SegmentSpec) -> pd.DataFrame:
    """Per targetable segment and arm, its persona mix with *exact* persona effects: the mean over
    the segment's rows of the true effect of each row's rule persona (itself the mean of true
    ``P(arm) - P(control)`` over all rows with that persona, "none" included).

    What the persona mix (:mod:`uplift.segments.personamix`) would be without estimation error:
    planning from it shows how far the personas alone could carry the plans. Columns as
    :func:`truth_segment_effects`.
    """
    members = segment_members(table.frame, spec)
    persona = members["persona"].to_numpy()
    labels = members["segment"].to_numpy()
    shown = labels != SUPPRESSED
    base = true_p[table.control].to_numpy()
    parts = []
    for a in table.treatment_arms:
        per_persona = pd.Series(true_p[a].to_numpy() - base).groupby(persona).transform("mean").to_numpy()
        s = pd.Series(per_persona[shown]).groupby(labels[shown]).mean()
        parts.append(pd.DataFrame({"segment": s.index, "arm": a, "true_effect": s.to_numpy()}))
    return pd.concat(parts, ignore_index=True)
