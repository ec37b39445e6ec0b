"""Which stages of the targetable segment estimator a dataset supports, judged on its own held-out rows.

After the calibration, the targetable estimator (:func:`uplift.segments.estimator.segment_effects`) runs
in stages, each resting on an assumption about the world: the persona mix blended into what the
observed effects are calibrated against (the personas cut the people along what drives the effects),
each arm's own calibration slope, the arms' levels from their randomised differences, the additive
fit over the segment dimensions (how a message's effect differs by place is the same for every age
band and gender), the observed parts of each arm's residuals (:mod:`uplift.segments.parts`, when the
spec allows it) and the rank-1 projection of each segment's messages x channels table (a message's
appeal times a channel's strength). A world where an assumption fails pays for the stage. Whether
this dataset bears each out is measured on the dataset itself, with what a real user has: the rows
and their randomisation.

For every cross-fitting fold ``k`` (the held-out people are one more): the estimator runs on the other
folds' rows with every combination of the stages the spec allows, and its effects are set against
fold ``k``'s own observed randomised differences, cell by cell, with the loss
``sum_i w_i (e_i - o_i)^2`` (``w_i`` the cell's rows in fold ``k``, known before any outcome). ``o_i``
is unbiased for the cell's true effect and its noise is independent of ``e_i``, so the difference
between two combinations' losses estimates the difference between their squared errors against the
truth. The model part of the estimates is the mean of fold ``k``'s own predictions: the model that
made them never saw fold ``k``, while the models that predicted the other folds did and would carry
its noise into the estimates (favouring the stages that lean on the model). The combination with the
lowest loss summed over the folds is kept (:func:`select_stages`); per stage, the evidence is the
loss of the kept combination with that one stage switched the other way, with the standard error of
the difference over the (fold, segment) clusters. The same folds give a diagnostic of the kept
combination: how far the held-out differences move with its deviations within the arms
(:func:`heldout_slope`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.segments.additive import additive_effects
from uplift.segments.armlevels import arm_levels
from uplift.segments.armtable import low_rank_effects
from uplift.segments.effects import (
    _arm_slope_terms,
    _cells,
    _effects_from,
    fay_herriot,
    level_shift,
    observed_effects,
    with_arm_spreads,
)
from uplift.segments.kindrows import KindRows
from uplift.segments.parts import observed_parts
from uplift.segments.personamix import PersonaMix, persona_mix
from uplift.segments.promise import PromiseCalibration, heldout_calibration
from uplift.specs.segments import EffectMethod

__all__ = ["PROMISE_SHARES", "STAGES", "StageChoice", "candidate_stages", "declared_choice", "promise_calibration",
           "select_stages", "stage_table", "staged_effects"]

STAGES: tuple[str, ...] = ("persona_mix", "arm_slopes", "arm_levels", "additive", "observed_parts", "rank_one")
"""The stages of the targetable estimator that a dataset may keep or drop, in the order they run."""

PROMISE_SHARES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)
"""The shares of the best-looking cells the promise's calibration is also measured at (the table's record
keeps them beside the one it uses, ``promise_by_share``)."""

LOSS_SCALE = 1e6
"""Losses are reported per unit of weight in (incremental conversions per 1,000 contacts)^2."""


def candidate_stages(method: EffectMethod, *, personas: bool) -> tuple[str, ...]:
    """The stages ``method`` switches on (the persona mix only when ``personas`` are declared)."""
    on = {"persona_mix": method.persona_weight > 0 and personas, "arm_slopes": method.arm_slopes,
          "arm_levels": method.observed_arm_levels, "additive": bool(method.smooth_over) and method.additive_fit,
          "observed_parts": method.observed_parts and bool(method.smooth_over),
          "rank_one": method.message_channel_rank > 0}
    return tuple(s for s in STAGES if on[s])


def _with_stages(method: EffectMethod, kept: tuple[str, ...]) -> EffectMethod:
    """``method`` with the stages not in ``kept`` switched off."""
    return method.model_copy(update={
        "persona_weight": method.persona_weight if "persona_mix" in kept else 0.0,
        "arm_slopes": method.arm_slopes and "arm_slopes" in kept,
        "observed_arm_levels": method.observed_arm_levels and "arm_levels" in kept,
        "smooth_over": method.smooth_over if {"additive", "observed_parts"} & set(kept) else (),
        "additive_fit": method.additive_fit and "additive" in kept,
        "observed_parts": method.observed_parts and "observed_parts" in kept,
        "message_channel_rank": method.message_channel_rank if "rank_one" in kept else 0,
    })


@dataclass(frozen=True)
class StageChoice:
    """The stages a dataset kept, and the held-out evidence for each.

    Attributes
    ----------
    candidates : the stages the spec allows.
    kept : the stages kept (a subset of ``candidates``, in :data:`STAGES` order).
    by : ``"held-out rows"`` (chosen by :func:`select_stages`) or ``"spec"`` (as declared: no folds to
        judge on, or the spec asks for no selection).
    stages : one row per candidate: ``stage``, ``kept``, ``gain`` (the held-out loss without the stage
        minus the loss with it, the other stages as kept: positive for a kept stage, negative for a
        dropped one; :data:`LOSS_SCALE` units per unit of weight), ``gain_se`` and ``t`` = gain / se.
    combinations : one row per combination tried: ``stages`` (comma-separated), ``loss``,
        ``difference`` to the kept one and its ``se``.
    """

    candidates: tuple[str, ...]
    kept: tuple[str, ...]
    by: str
    stages: pd.DataFrame = field(repr=False)
    combinations: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    slope: float = float("nan")
    slope_se: float = float("nan")
    promise: PromiseCalibration | None = None
    promise_by_share: tuple[PromiseCalibration, ...] = ()
    """The same calibration at each of :data:`PROMISE_SHARES` (evidence for choosing ``promise_top_share``)."""

    def apply(self, method: EffectMethod) -> EffectMethod:
        """``method`` with the dropped stages switched off."""
        return _with_stages(method, self.kept)

    def record(self) -> dict:
        """JSON-friendly: what a segment table carries in ``attrs["stages"][kind]``."""
        return {"by": self.by, "candidates": list(self.candidates), "kept": list(self.kept),
                "stages": self.stages.to_dict(orient="records"), "slope": self.slope, "slope_se": self.slope_se,
                "promise": None if self.promise is None else self.promise.record(),
                "promise_by_share": [p.record() for p in self.promise_by_share]}


def declared_choice(method: EffectMethod, *, personas: bool, reason: str = "spec") -> StageChoice:
    """The stages as the spec declares them, without held-out evidence."""
    candidates = candidate_stages(method, personas=personas)
    table = pd.DataFrame({"stage": list(candidates), "kept": True, "gain": np.nan, "gain_se": np.nan, "t": np.nan})
    return StageChoice(candidates=candidates, kept=candidates, by=reason, stages=table)


def stage_table(segments: pd.DataFrame, *, kind: str = "targetable") -> pd.DataFrame:
    """The stage choice a segment table carries for ``kind`` (columns of :attr:`StageChoice.stages` plus
    ``by``); empty when it carries none."""
    record = (segments.attrs.get("stages") or {}).get(kind)
    if not record:
        return pd.DataFrame(columns=["stage", "kept", "gain", "gain_se", "t", "by"])
    return pd.DataFrame(record["stages"], columns=["stage", "kept", "gain", "gain_se", "t"]).assign(by=record["by"])


@dataclass(frozen=True)
class _Lines:
    """What the stages read, one entry per (group, arm) line (``_cells``' order), and per arm."""

    group: np.ndarray
    arm: np.ndarray
    arm_index: np.ndarray
    observed: np.ndarray
    se: np.ndarray
    model: np.ndarray
    rows: np.ndarray
    mix: np.ndarray | None
    levels: np.ndarray | None
    attributes: pd.DataFrame | None


def staged_effects(lines: _Lines, candidates: tuple[str, ...], method: EffectMethod,
                   leak: float = 0.0) -> dict[tuple[str, ...], np.ndarray]:
    """Every combination of the ``candidates``' effects (keyed by the stages on, in :data:`STAGES` order).

    The same steps as :func:`uplift.segments.estimator.segment_effects` (effects only, no loadings), each
    combination built on the shared steps before it.
    """
    def options(stage: str) -> tuple[bool, ...]:
        return (False, True) if stage in candidates else (False,)

    out = {}
    w = method.persona_weight
    for persona_on in options("persona_mix"):
        covariate = (1 - w) * lines.model + w * lines.mix if persona_on else lines.model
        cov_leak = leak * (1 - w) if persona_on else leak
        effect, sd, (alpha, beta), A = fay_herriot(lines.observed, lines.se, covariate, leak=cov_leak)
        if method.arm_spread:
            A, effect, _ = with_arm_spreads(lines.observed, lines.se, covariate, lines.arm, A, alpha=alpha, beta=beta,
                                            leak=cov_leak, effect=effect, sd=sd)
        terms = _arm_slope_terms(lines.observed, lines.se, covariate, lines.arm, A)
        for slopes_on in options("arm_slopes"):
            e1 = _effects_from(terms, effect, beta)[0] if slopes_on else effect
            for levels_on in options("arm_levels"):
                e2 = level_shift(e1, lines.rows, lines.arm_index, lines.levels) if levels_on else e1
                for additive_on in options("additive"):
                    e3 = (additive_effects(e2, lines.arm, lines.attributes, method.smooth_over, lines.rows)
                          if additive_on else e2)
                    for parts_on in options("observed_parts"):
                        e4 = (observed_parts(e3, lines.observed, lines.se, lines.arm, lines.attributes,
                                             method.smooth_over)[0] if parts_on else e3)
                        for rank_on in options("rank_one"):
                            e5 = (low_rank_effects(lines.group, lines.arm, e4, rank=method.message_channel_rank)
                                  if rank_on else e4)
                            on = dict(zip(STAGES, (persona_on, slopes_on, levels_on, additive_on, parts_on, rank_on),
                                          strict=True))
                            out[tuple(s for s in STAGES if on[s])] = e5
    return out


def _lines(rows: KindRows, *, variance: str, mix: PersonaMix | None, attributes: pd.DataFrame | None,
           levels: np.ndarray | None, model: np.ndarray | None = None) -> _Lines:
    """The lines of ``rows`` (``model``: a (groups, arms) model mean to use instead of the rows')."""
    cells = _cells(rows, variance)
    group = cells["group"].to_numpy()
    arm_index = pd.Index(rows.arms).get_indexer(cells["arm"])
    line_model = cells["model"].to_numpy(dtype=float)
    if model is not None:
        line_model = np.where(np.isfinite(model[group, arm_index]), model[group, arm_index], line_model)
    return _Lines(
        group=group, arm=cells["arm"].to_numpy(), arm_index=arm_index,
        observed=cells["observed"].to_numpy(dtype=float), se=cells["observed_se"].to_numpy(dtype=float),
        model=line_model, rows=cells["rows"].to_numpy(dtype=float),
        mix=None if mix is None else mix.effects[group, arm_index],
        levels=levels,
        attributes=None if attributes is None else attributes.reset_index(drop=True).iloc[group],
    )


def _model_means(groups: np.ndarray, n_groups: int, predictions: pd.DataFrame) -> np.ndarray:
    """(groups, arms): the mean prediction over each group's rows (NaN without rows)."""
    counts = np.bincount(groups, minlength=n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.column_stack([np.bincount(groups, weights=predictions[a].to_numpy(float), minlength=n_groups)
                                / counts for a in predictions.columns])


@dataclass(frozen=True)
class _Fold:
    """One held-out fold: its lines' observed effects in the fold (``o``, NaN where the fold has no
    treated or no control row), their weights (the cell's rows in the fold) and every combination's
    estimates from the other folds."""

    group: np.ndarray
    arm_index: np.ndarray
    o: np.ndarray
    weight: np.ndarray
    effects: dict[tuple[str, ...], np.ndarray]

    def losses(self, combination: tuple[str, ...], n_groups: int) -> np.ndarray:
        """Per group, ``sum_lines w (e^2 - 2 e o)`` (the ``o^2`` every combination shares is left out)."""
        e = self.effects[combination]
        ok = np.isfinite(e) & np.isfinite(self.o)
        return np.bincount(self.group[ok], weights=(self.weight * (e * e - 2 * e * self.o))[ok], minlength=n_groups)


def _fold(k, rows: KindRows, *, persona: np.ndarray | None, method: EffectMethod, candidates: tuple[str, ...],
          attributes: pd.DataFrame | None) -> _Fold:
    """Fold ``k`` held out: every combination estimated on the other folds, and the fold's observations."""
    folds, arms, n_groups = rows.fold_of_row(), rows.arms, rows.n_groups
    train, test = folds != k, folds == k
    inside = rows.groups >= 0
    fit, held = rows.subset(np.flatnonzero(train & inside)), rows.subset(np.flatnonzero(test & inside))
    mix = None
    if "persona_mix" in candidates:
        fit_all = np.flatnonzero(train)
        seen = rows.subset(fit_all)
        mix = persona_mix(seen.groups, n_groups, persona[fit_all], control=rows.control, arms=arms, y=seen.y,
                          arm=seen.arm, propensity=seen.propensity)
    levels = None
    if "arm_levels" in candidates:
        levels = arm_levels(control=rows.control, arms=arms, y=fit.y, arm=fit.arm, propensity=fit.propensity).level
    lines = _lines(fit, variance=method.variance, mix=mix, attributes=attributes, levels=levels,
                   model=_model_means(held.groups, n_groups, held.predictions))
    target = observed_effects(held.groups, n_groups, held.y, held.arm, held.propensity, rows.control, arms)
    o = np.column_stack([target[a]["observed"].to_numpy(dtype=float) for a in arms])[lines.group, lines.arm_index]
    weight = np.bincount(held.groups, minlength=n_groups).astype(float)[lines.group]
    return _Fold(group=lines.group, arm_index=lines.arm_index, o=o, weight=weight,
                 effects=staged_effects(lines, candidates, method))


def heldout_slope(folds: list[_Fold], combination: tuple[str, ...]) -> tuple[float, float]:
    """How far the held-out differences move with the estimates' deviations within the arms: a diagnostic.

    Per fold and arm, the estimates of ``combination`` and the fold's observed differences are centred
    on their weighted means; returns the pooled weighted least-squares slope of the one on the other
    and its standard error, clustered by fold and segment. 1: where the estimates' deviations point,
    the truth follows as far as they say; below 1 they over-state them (the cells a plan picks then
    promise more than they buy), above 1 they under-state them. The fold's estimates rest on fewer rows
    than the table's, so the slope runs a little low.
    """
    xs, ys, ws, clusters = [], [], [], []
    for f, fold in enumerate(folds):
        e = fold.effects[combination]
        ok = np.isfinite(e) & np.isfinite(fold.o) & (fold.weight > 0)
        for a in np.unique(fold.arm_index[ok]):
            m = ok & (fold.arm_index == a)
            w = fold.weight[m]
            xs.append(e[m] - np.average(e[m], weights=w))
            ys.append(fold.o[m] - np.average(fold.o[m], weights=w))
            ws.append(w)
            clusters.append(f * (int(fold.group.max()) + 1) + fold.group[m])
    if not xs:
        return float("nan"), float("nan")
    x, yv, w, cluster = (np.concatenate(v) for v in (xs, ys, ws, clusters))
    sxx = float(np.sum(w * x**2))
    if sxx <= 0:
        return float("nan"), float("nan")
    b = float(np.sum(w * x * yv)) / sxx
    score = np.bincount(cluster, weights=w * x * (yv - b * x))
    return b, float(np.sqrt(np.sum(score**2))) / sxx


def promise_calibration(folds: list[_Fold], combination: tuple[str, ...], top_share: float) -> PromiseCalibration:
    """What the best-looking cells of ``combination``'s estimates bought per conversion promised on the
    held-out folds (:func:`uplift.segments.promise.heldout_calibration`)."""
    width = max(int(f.group.max()) + 1 for f in folds) if folds else 1
    return heldout_calibration([f.effects[combination] for f in folds], [f.o for f in folds],
                               [f.weight for f in folds], [k * width + f.group for k, f in enumerate(folds)],
                               top_share=top_share)


def select_stages(
    rows: KindRows,
    method: EffectMethod,
    *,
    persona: np.ndarray | None = None,
    attributes: pd.DataFrame | None = None,
) -> StageChoice:
    """The combination of ``method``'s stages with the lowest held-out loss (see the module docstring).

    Parameters
    ----------
    rows : every row's segment (``groups``: 0..n_groups-1, or -1 for a row in none of the kind's
        segments; it still counts towards its persona's effect), outcome, randomised arm, assignment
        probabilities, out-of-sample predicted uplift (one column per treatment arm), the control, and
        ``folds``: the cross-fitting fold whose model predicted the row (the held-out rows form one more).
    persona : per row, its rule persona (needed when ``method`` blends the persona mix).
    attributes : one row per group with the dimensions ``method.smooth_over`` names.

    Raises
    ------
    DataError
        ``rows`` carry no folds.
    """
    folds, n_groups = rows.fold_of_row(), rows.n_groups
    candidates = candidate_stages(method, personas=persona is not None)
    if not candidates:
        return declared_choice(method, personas=persona is not None, reason="held-out rows")
    per_fold = [_fold(k, rows, persona=persona, method=method, candidates=candidates, attributes=attributes)
                for k in np.unique(folds)]
    clusters = _cluster_losses(per_fold, n_groups)
    loss = {c: float(v.sum()) for c, v in clusters.items()}
    best = min(loss, key=lambda c: (loss[c], len(c)))  # a tie keeps fewer stages
    against_best = {c: _summed_difference(clusters[c] - clusters[best]) for c in clusters}
    combinations = pd.DataFrame([{"stages": ", ".join(c) or "(none)", "loss": loss[c], "difference": d, "se": se}
                                 for c, (d, se) in against_best.items()])
    slope, slope_se = heldout_slope(per_fold, best)
    return StageChoice(candidates=candidates, kept=best, by="held-out rows",
                       stages=_stage_gains(candidates, best, against_best),
                       combinations=combinations.sort_values("loss", kind="stable").reset_index(drop=True),
                       slope=slope, slope_se=slope_se,
                       promise=(promise_calibration(per_fold, best, method.promise_top_share)
                                if method.promise_top_share > 0 else None),
                       promise_by_share=tuple(promise_calibration(per_fold, best, q) for q in PROMISE_SHARES))


def _cluster_losses(per_fold: list[_Fold], n_groups: int) -> dict[tuple[str, ...], np.ndarray]:
    """Per combination, its loss in every (fold, group) cluster, per unit of the folds' weight (x LOSS_SCALE)."""
    weight = sum(float(np.sum(f.weight[np.isfinite(f.o)])) for f in per_fold)
    return {c: np.concatenate([f.losses(c, n_groups) for f in per_fold]) / weight * LOSS_SCALE
            for c in per_fold[0].effects}


def _summed_difference(d: np.ndarray) -> tuple[float, float]:
    """The sum of per-cluster loss differences and its standard error over the clusters (NaN for one)."""
    return float(d.sum()), float(np.sqrt(len(d) * np.var(d, ddof=1))) if len(d) > 1 else float("nan")


def _stage_gains(candidates: tuple[str, ...], best: tuple[str, ...],
                 against_best: dict[tuple[str, ...], tuple[float, float]]) -> pd.DataFrame:
    """Per candidate stage, what keeping it gains: the kept combination with that one stage switched the other
    way costs ``against_best`` of the switched combination (the kept one is the best)."""
    gains = []
    for stage in candidates:
        flipped = tuple(s for s in STAGES if (s in best) != (s == stage) and s in candidates)
        cost, se = against_best[flipped]
        gain = cost if stage in best else -cost  # the loss without the stage minus the loss with it
        gains.append({"stage": stage, "kept": stage in best, "gain": gain, "gain_se": se,
                      "t": gain / se if se > 0 else float("nan")})
    return pd.DataFrame(gains)
