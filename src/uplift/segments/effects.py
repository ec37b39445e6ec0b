"""Per segment and arm: the observed randomised effect, the model's cross-fitted effect, and their
precision-weighted combination (Fay-Herriot), with an interval.

For segment s and arm a:
- observed: Hajek IPW difference of means between rows randomised to a and to the control, with its
  standard error (unbiased under randomisation, noisy in small segments);
- model: mean over the segment's rows of the out-of-sample (cross-fitted) predicted uplift for a;
- calibrated: per segment kind, pooled over the arms, the model's estimates are first calibrated to
  the observed effects, ``prior = alpha + beta * model`` (a learner's regularisation shifts and
  compresses effects), then each segment leans on its own observed effect in proportion to how
  precise it is: ``gamma_s = A / (A + se_s^2)``, ``effect = gamma_s * observed + (1 - gamma_s) * prior``,
  ``sd = sqrt(gamma_s) * se_s``, where ``A`` is the between-segment variance of the true effect
  around the corrected model (method of moments). Large segments get their observed difference,
  small ones the model: on randomised data the reported effect matches the observed arm-vs-holdout
  difference wherever the data can tell.

Refinements, chosen per segment kind in the segment spec (``effects:``):
- ``variance: segment_rate``: the binomial variance at the segment's own outcome rate (over all
  its rows, shrunk towards the kind's rate by 200 pseudo-rows) instead of the empirical variance
  floored at the kind's pooled rate. The floor is taken as a maximum, which over-states the noise
  of cells whose rate is below the pooled one; the segment's own rate is about right on average.
- ``leak_correction``: each fold's model was trained on the *other* folds' rows of the same
  segment, so a large segment's model mean has learned part of its observed effect's noise and
  the two are correlated; the residual of the observed effect around the calibrated model then
  under-states the spread of the truth around it and the intervals come out too narrow. The
  covariance is estimated from the folds (:func:`leak_covariance`) and taken out of the
  calibration, the spread ``A`` and the interval.
- ``persona_weight``: the observed effects are calibrated against a blend of the model and the
  segment's persona mix (:mod:`uplift.segments.personamix`: its persona shares times each persona's
  observed effect), whose errors are not the learner's; for small targetable cells, whose own
  observation is mostly noise, the blend tracks the truth better than either part alone.
- ``arm_slopes``: within each arm, the cells' deviations from the arm's centre are put on the arm's
  own calibration slope, shrunk towards the slope within all the arms (:func:`arm_slope_effects`),
  instead of the pooled ``beta``, which is fitted over the arms' levels and their cells together.
- ``observed_arm_levels``: every arm's level (the mean of its effects over the kind's rows) is set to
  the arm's randomised difference over all those rows, shrunk across the arms
  (:mod:`uplift.segments.armlevels`); the cells keep their deviations from it. The blend's arm
  levels are noisier than what the data can tell about the arms.
- ``smooth_over``: each arm's effects across the cells are replaced by their fit on additive parts
  of the segment dimensions (:mod:`uplift.segments.additive`, e.g. age band x gender plus
  municipality); the arm's level is kept.
- ``message_channel_rank``: last, each segment's messages x channels table is projected on rank 1
  (:mod:`uplift.segments.armtable`).

:func:`uplift.segments.estimator.segment_effects` runs these steps in order, as a kind's effect method
says; this module holds their arithmetic.

The calibration ``(alpha, beta)`` is itself estimated, and its error moves every segment of the kind
together: a cell's own interval hardly notices it, a plan's total over hundreds of cells does (the
cells' own errors average out, this one does not). :func:`calibration_loadings` gives each row its
per-contact loadings on two independent factors of that shared error (``calibration_load_1``,
``calibration_load_2``); the planner adds ``||sum_i contacts_i * load_i||^2`` to a plan's variance.

The calibration's slope is pooled over the arms, but a learner does not compress every arm's
effects alike (on a simulated world of 200,000 people the truth's slope on the final estimates runs
from 0.1 to 1.5 over the arms, steepest for the persona-specific messages on Meta), and about a
hundred noisy cells per arm can hardly tell the arms' slopes apart. A plan that funds one arm's
best cells bets on that arm's slope: :func:`slope_loadings` gives each cell its loading on its
arm's own slope error (``calibration_slope_load``, one factor per arm), as large as the arms' own
slopes (each fitted on its cells) say the arms may differ. With ``arm_slopes`` the same posterior's
mean also moves each arm's cells: where the arms' slopes can be told apart, an arm's deviations
carry its own; where they cannot, every arm carries the slope within the arms. The loadings stay the
posterior root-mean-square of the arm's slope around the arms' mean: they also count the shrunk
deviation the effects now carry, so they are wider than the uncertainty left (conservative).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.modeling.ipw import binomial_group_variance, group_hajek, own_propensity
from uplift.segments.kindrows import KindRows

__all__ = ["arm_slope_effects", "arm_spreads", "calibration_loadings", "level_shift", "with_arm_spreads",
           "observed_effects", "fay_herriot", "leak_covariance", "slope_loadings"]

_RATE_PSEUDO_ROWS = 200.0
"""Rows of the kind's pooled rate added to a segment's own when its binomial variance is used."""


def observed_effects(
    groups: np.ndarray, n_groups: int, y: np.ndarray, arm: np.ndarray, propensity: pd.DataFrame, control: str,
    arms: tuple[str, ...], *, variance: str = "floored",
) -> dict[str, pd.DataFrame]:
    """Per arm: a frame indexed 0..n_groups-1 with observed effect, its se, base rate, treated and control rows.

    ``variance`` is ``"floored"`` (empirical, floored by the binomial variance at the pooled rate)
    or ``"segment_rate"`` (binomial at the segment's own rate over all its rows, shrunk towards
    the pooled rate); see the module docstring.
    """
    codes, names = pd.factorize(np.asarray(arm, dtype=object))  # once: comparing strings row by row is slow
    w = 1.0 / own_propensity(propensity, arm)
    code_of = {name: k for k, name in enumerate(names)}
    if variance not in ("floored", "segment_rate"):
        raise ValueError(f"variance: expected 'floored' or 'segment_rate', got {variance!r}")
    rate = None
    if variance == "segment_rate":
        pooled = float(np.mean(y)) if len(y) else 0.0
        events = np.bincount(groups, weights=y, minlength=n_groups)
        rows = np.bincount(groups, minlength=n_groups)
        rate = (events + _RATE_PSEUDO_ROWS * pooled) / (rows + _RATE_PSEUDO_ROWS)
    c = codes == code_of.get(control, -1)
    base, base_var, n_c = group_hajek(groups[c], y[c], w[c], n_groups)
    if rate is not None:
        base_var = binomial_group_variance(groups[c], w[c], rate, n_groups)
    out = {}
    for a in arms:
        m = codes == code_of.get(a, -1)
        mean, var, n_t = group_hajek(groups[m], y[m], w[m], n_groups)
        if rate is not None:
            var = binomial_group_variance(groups[m], w[m], rate, n_groups)
        out[a] = pd.DataFrame(
            {"observed": mean - base, "observed_se": np.sqrt(var + base_var), "base_rate": base, "n_treated": n_t,
             "n_control": n_c}
        )
    return out


def _combinable(observed: np.ndarray, se: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Segments with an observed effect, a positive standard error and a model estimate (the ones
    the calibration is fitted to and that lean on their own observation)."""
    return np.isfinite(observed) & np.isfinite(se) & (se > 0) & np.isfinite(model)


def _per_line(A: float | np.ndarray, n: int) -> np.ndarray:
    """``A`` as one value per line: a scalar (one spread for every line) or already per line."""
    return np.broadcast_to(np.asarray(A, dtype=float), (n,))


def _own_weight(observed: np.ndarray, se: np.ndarray, model: np.ndarray, A: float | np.ndarray) -> np.ndarray:
    """Per segment, the weight ``gamma = A / (A + se^2)`` its effect puts on its own observation
    (0 where it has none to combine, or where ``A`` could not be estimated); ``A`` one value or one per line."""
    gamma = np.zeros(len(model))
    ok = _combinable(observed, se, model) & np.isfinite(_per_line(A, len(model)))
    gamma[ok] = _per_line(A, len(model))[ok] / (_per_line(A, len(model))[ok] + se[ok] ** 2)
    return gamma


def _leak_per_line(leak: float, v: np.ndarray) -> np.ndarray:
    """The leak covariance spread over the lines in proportion to their noise variance ``v``."""
    return max(float(leak), 0.0) * v / float(np.mean(v))


def _combine(observed: np.ndarray, se: np.ndarray, prior: np.ndarray, model: np.ndarray, A: float | np.ndarray,
             beta: float, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each line's effect ``gamma * observed + (1 - gamma) * prior`` and its own sd (``c``: the leak per
    combinable line, :func:`_leak_per_line`); lines without an observation keep the prior, sd ``sqrt(A)``."""
    ok = _combinable(observed, se, model)
    gamma = _own_weight(observed, se, model, A)
    effect = prior.copy()
    effect[ok] = gamma[ok] * observed[ok] + (1 - gamma[ok]) * prior[ok]
    sd = np.sqrt(_per_line(A, len(model))).copy()
    sd[ok] = np.sqrt(gamma[ok] * se[ok] ** 2 + 2 * gamma[ok] * (1 - gamma[ok]) * beta * c)
    return effect, sd


def fay_herriot(
    observed: np.ndarray, se: np.ndarray, model: np.ndarray, *, leak: float = 0.0
) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    """Combine observed effects (with standard errors) and model estimates, segment by segment.

    The prior is a linear calibration of the model, ``alpha + beta * model``, fitted to the
    observed effects by weighted least squares (weights ``1 / (se^2 + A)``): a learner's
    regularisation both shifts and compresses its effects, and the calibration undoes both. ``A``,
    the variance of the true effects around the calibrated model, is estimated by the method of
    moments; the two are iterated a few times.

    ``leak`` is the mean covariance between the model's estimate and the observed effect's noise
    over the segments (:func:`leak_covariance`; 0 when they are independent), spread over the
    segments in proportion to their noise variance: it is taken out of the calibration's
    covariance, added back to the residual's expected square (``E r^2 = A + se^2 - 2 beta c``) and
    to the combined effect's variance (``+ 2 gamma (1 - gamma) beta c``).

    Returns the combined effect, its standard deviation, the calibration ``(alpha, beta)`` and ``A``.
    Segments without an observed effect (no treated or no control rows) get the calibrated model
    with sd ``sqrt(A)``.
    """
    ok = _combinable(observed, se, model)
    if ok.sum() < 3:
        return model.copy(), np.full(len(model), np.nan), (0.0, 1.0), float("nan")
    v, o, m = se[ok] ** 2, observed[ok], model[ok]
    c = _leak_per_line(leak, v)  # per segment, proportional to its noise
    A = 0.0
    alpha, beta = 0.0, 1.0
    for _ in range(5 if leak <= 0 else 10):
        w = 1.0 / (v + A)
        if leak <= 0:
            X = np.column_stack([np.ones_like(m), m])
            alpha, beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], o * np.sqrt(w), rcond=None)[0]
            beta = float(np.clip(beta, 0.0, 5.0))  # a calibration never reverses the model's ranking
        else:  # the weighted least-squares line with the leak taken out of the covariance
            mw, ow = np.average(m, weights=w), np.average(o, weights=w)
            cov = np.average((m - mw) * (o - ow), weights=w) - np.average(c, weights=w)
            beta = float(np.clip(cov / max(np.average((m - mw) ** 2, weights=w), 1e-300), 0.0, 5.0))
            alpha = ow - beta * mw
        resid = o - (alpha + beta * m)
        A = float(max(np.mean(resid**2 - v + 2 * beta * c), 0.0))
    # keep A away from 0 so that no segment's interval collapses onto the model alone
    A = max(A, 0.05 * float(np.median(v)))
    effect, sd = _combine(observed, se, alpha + beta * model, model, A, beta, c)
    return effect, sd, (float(alpha), float(beta)), A


def arm_spreads(observed: np.ndarray, se: np.ndarray, prior: np.ndarray, model: np.ndarray, arm: np.ndarray,
                A: float, *, beta: float = 1.0, leak: float = 0.0) -> np.ndarray:
    """Per line, the spread of its arm's true effects around the calibrated prior, from the arm's own cells.

    The pooled calibration (:func:`fay_herriot`) estimates one ``A`` for every arm: how far the truth
    strays from the prior. An arm whose segments truly differ more than the prior says strays further,
    and with the pooled ``A`` its cells would be shrunk onto the prior as hard as the others'. Per arm
    ``a`` the moment estimate is ``A_a = mean_i (r_i^2 - se_i^2 + 2 beta c_i)`` over its combinable
    cells (``r = observed - prior``, ``c`` the leak per line), with sampling variance
    ``s_a^2 = var_i(r_i^2 - se_i^2 + 2 beta c_i) / n_a`` (empirical: rare outcomes make ``r^2``
    heavier-tailed than a normal's). The arms' ``A_a`` are shrunk towards the pooled ``A`` by how much
    they truly differ beyond that noise (``tau^2 = max(var(A_a) - mean(s_a^2), 0)``, weight
    ``tau^2 / (tau^2 + s_a^2)``), and floored as the pooled one is (5% of the median ``se^2``). Where the
    arms' spreads cannot be told apart every arm keeps about ``A``; an arm whose cells clearly stray
    further keeps its own. Lines of arms with fewer than three combinable cells get ``A``.
    """
    arm = np.asarray(arm)
    n = len(model)
    out = np.full(n, float(A))
    ok = _combinable(observed, se, model)
    if ok.sum() < 3 or not np.isfinite(A):
        return out
    v = se**2
    c = np.zeros(n)
    c[ok] = _leak_per_line(leak, v[ok])
    excess = (observed - prior) ** 2 - v + 2 * beta * c
    names, est, noise = [], [], []
    for a in pd.unique(arm):
        cells = ok & (arm == a)
        if cells.sum() < 3:
            continue
        names.append(a)
        est.append(float(np.mean(excess[cells])))
        noise.append(float(np.var(excess[cells], ddof=1)) / int(cells.sum()))
    if len(names) < 3:
        return out
    est, noise = np.array(est), np.array(noise)
    tau2 = max(float(np.var(est, ddof=1) - np.mean(noise)), 0.0)
    floor = 0.05 * float(np.median(v[ok]))
    shrunk = np.maximum(A + np.where(tau2 > 0, tau2 / (tau2 + noise), 0.0) * (est - A), floor)
    for a, value in zip(names, shrunk, strict=True):
        out[arm == a] = value
    return out


def with_arm_spreads(observed: np.ndarray, se: np.ndarray, covariate: np.ndarray, arm: np.ndarray, A: float, *,
                     alpha: float, beta: float, leak: float, effect: np.ndarray,
                     sd: np.ndarray) -> tuple[np.ndarray | float, np.ndarray, np.ndarray]:
    """The combination of :func:`fay_herriot` redone with each arm's own spread (:func:`arm_spreads`):
    the spread per line, the effects and their own sds. Unchanged where the calibration could not be
    fitted (``A`` not finite)."""
    if not np.isfinite(A):
        return A, effect, sd
    prior = alpha + beta * covariate
    per_line = arm_spreads(observed, se, prior, covariate, arm, A, beta=beta, leak=leak)
    ok = _combinable(observed, se, covariate)
    effect, sd = _combine(observed, se, prior, covariate, per_line, beta, _leak_per_line(leak, se[ok] ** 2))
    return per_line, effect, sd


def calibration_loadings(observed: np.ndarray, se: np.ndarray, model: np.ndarray, A: float) -> np.ndarray:
    """Per segment, its effect's loadings (per contact) on two independent standard-normal factors
    of the calibration's estimation error, shared by every segment combined with it (n x 2).

    The combined effect is ``gamma * observed + (1 - gamma) * (alpha + beta * model)`` with
    ``(alpha, beta)`` fitted to all segments by weighted least squares (weights ``1 / (se^2 + A)``),
    whose covariance is ``S = (X' W X)^-1``, ``X = [1, model]``. With ``S = L L'`` the loadings are
    ``(1 - gamma) [1, model] L``, so the shared part of ``sum_i c_i effect_i`` has variance
    ``||sum_i c_i load_i||^2``. Zeros when the calibration could not be fitted (``A`` not finite).
    """
    n = len(model)
    ok = _combinable(observed, se, model)
    A = _per_line(A, n)
    if ok.sum() < 3 or not np.isfinite(A[ok]).all():
        return np.zeros((n, 2))
    v = se[ok] ** 2
    X = np.column_stack([np.ones(int(ok.sum())), model[ok]])
    try:
        L = np.linalg.cholesky(np.linalg.inv(X.T @ (X / (v + A[ok])[:, None])))
    except np.linalg.LinAlgError:  # all model values equal: the slope is not identified
        return np.zeros((n, 2))
    gamma = _own_weight(observed, se, model, A)
    grad = (1.0 - gamma)[:, None] * np.column_stack([np.ones(n), np.nan_to_num(model)])
    return grad @ L


def _arm_slope_terms(observed: np.ndarray, se: np.ndarray, covariate: np.ndarray, arm: np.ndarray,
                     A: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per cell: its lever on its arm's slope, ``(1 - gamma_i) (x_i - xbar_a)`` (0 in arms whose slope is
    not identified), and its arm's posterior mean slope and posterior root-mean-square of the slope
    minus the arms' mean (NaN there); ``None`` when fewer than three arms are identified or ``A`` is
    not finite. See :func:`slope_loadings` for the model.

    An arm's slope is the weighted least-squares slope of its observed effects on the covariate
    (weights ``1 / (se^2 + A)``), with its variance; arms with fewer than three combinable cells or
    no spread in the covariate are not identified and stay out of the posterior.
    """
    arm = np.asarray(arm)
    A = _per_line(A, len(covariate))
    if not np.isfinite(A).all():
        return None
    ok = _combinable(observed, se, covariate)
    fits = []  # (cells, centre, slope, slope variance)
    for a in pd.unique(arm):
        cells = arm == a
        fit = cells & ok
        if fit.sum() < 3:
            continue
        w = 1.0 / (se[fit] ** 2 + A[fit])
        centre = float(np.average(covariate[fit], weights=w))
        dev = covariate[fit] - centre
        sxx = float(np.sum(w * dev**2))
        if sxx <= 0:
            continue
        fits.append((cells, centre, float(np.sum(w * dev * observed[fit])) / sxx, 1.0 / sxx))
    if len(fits) < 3:
        return None
    keep = 1.0 - _own_weight(observed, se, covariate, A)
    mean, ms = _slope_posterior(np.array([f[2] for f in fits]), np.array([f[3] for f in fits]))
    lever, slope, rms = np.zeros(len(covariate)), np.full(len(covariate), np.nan), np.full(len(covariate), np.nan)
    for (cells, centre, _, _), m, r in zip(fits, mean, np.sqrt(ms), strict=True):
        x = np.where(np.isfinite(covariate[cells]), covariate[cells], centre)
        lever[cells] = keep[cells] * (x - centre)
        slope[cells], rms[cells] = m, r
    return lever, slope, rms


def slope_loadings(observed: np.ndarray, se: np.ndarray, covariate: np.ndarray, arm: np.ndarray,
                   A: float) -> np.ndarray:
    """Per cell, its per-contact loading on the error of its own arm's calibration slope (one factor per arm).

    The pooled calibration ``alpha + beta * covariate`` gives every arm the same slope. Within arm
    ``a`` the weighted least-squares slope of the observed effects on the covariate is ``b_a`` with
    standard error ``s_a = 1 / sqrt(sum_i w_i (x_i - xbar_a)^2)`` (weights ``w_i = 1 / (se_i^2 + A)``,
    ``xbar_a`` their weighted mean of the covariate). The arms' true slopes are taken to spread
    around a common mean with an unknown sd ``tau`` (uniform prior on a grid, the mean flat); the
    marginal likelihood of the ``b_a`` weighs each ``tau``, and the loading's scale ``r_a`` is the
    posterior root-mean-square of the arm's true slope minus that mean: its shrunk deviation
    ``g (b_a - mu)`` squared plus its variance ``g s_a^2`` (``g = tau^2 / (tau^2 + s_a^2)``), averaged
    over ``tau``. When the ``b_a`` spread no more than their noise, ``tau`` near 0 is likely and the
    loadings are small, but not 0: the data cannot rule out a spread they are too noisy to see.

    A cell's effect moves with its arm's slope by ``(1 - gamma_i) (x_i - xbar_a)`` per unit
    (``gamma_i`` the weight on its own observation); the loading is that times ``r_a``. Arms with
    fewer than three combinable cells or no spread in the covariate load 0 and stay out of the
    likelihood (their slope is not identified); with fewer than three such arms, or ``A`` not
    finite, every loading is 0.
    """
    terms = _arm_slope_terms(observed, se, covariate, arm, A)
    return _loadings_from(terms, len(covariate))


def _loadings_from(terms: tuple[np.ndarray, np.ndarray, np.ndarray] | None, n: int) -> np.ndarray:
    if terms is None:
        return np.zeros(n)
    lever, _, rms = terms
    return lever * np.nan_to_num(rms)


def arm_slope_effects(effect: np.ndarray, observed: np.ndarray, se: np.ndarray, covariate: np.ndarray,
                      arm: np.ndarray, A: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """The combined effects with each arm's deviations from its centre on its own calibration slope.

    The pooled calibration's ``beta`` is one slope for every arm and for the differences between
    the arms' levels as well as within them. Within arm ``a`` the cells' true effects move with the
    covariate by the arm's own slope, estimated as the posterior mean of the model of
    :func:`slope_loadings` (the arms' slopes ``b_a`` spread around a common ``mu`` by ``tau``):
    ``mu + g (b_a - mu)``, averaged over ``tau`` and ``mu``. Where the arms' slopes cannot be told
    apart, every arm gets about ``mu``, the slope within the arms; an arm moves to its own only as
    far as its cells show it with confidence. Each cell's effect then moves by
    ``(1 - gamma_i) (x_i - xbar_a) (slope_a - beta)``; its own observation's part is kept.

    Returns the effects and, per cell, the slope its deviations now carry (``beta`` for arms whose
    slope is not identified). Unchanged with fewer than three identified arms or ``A`` not finite.
    """
    return _effects_from(_arm_slope_terms(observed, se, covariate, arm, A), effect, beta)


def _effects_from(terms: tuple[np.ndarray, np.ndarray, np.ndarray] | None, effect: np.ndarray,
                  beta: float) -> tuple[np.ndarray, np.ndarray]:
    if terms is None:
        return effect, np.full(len(effect), float(beta))
    lever, slope, _ = terms
    slope = np.where(np.isfinite(slope), slope, float(beta))
    return effect + lever * (slope - beta), slope


def _slope_posterior(b: np.ndarray, v: np.ndarray, grid: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Per arm, the posterior mean of its true slope and the posterior mean square of its true slope
    minus the arms' mean (see :func:`slope_loadings`).

    ``b`` are the arms' slope estimates with variances ``v``; the true slopes are ``N(mu, tau^2)``,
    ``mu`` flat and ``tau`` uniform on ``(0, 3 * max(sd(b), sqrt(max(v)))]``.
    """
    top = 3.0 * max(float(np.std(b)), float(np.sqrt(np.max(v))))
    taus = np.linspace(0.0, top, grid + 1)[1:]
    logp, means, ms = [], [], []
    for tau in taus:
        total = v + tau**2
        w = 1.0 / total
        v_mu = 1.0 / float(np.sum(w))
        mu = v_mu * float(np.sum(w * b))
        logp.append(0.5 * np.log(v_mu) - 0.5 * float(np.sum(np.log(total))) - 0.5 * float(np.sum(w * (b - mu) ** 2)))
        g = tau**2 / total
        means.append(mu + g * (b - mu))
        ms.append((g * (b - mu)) ** 2 + g * v)
    p = np.exp(np.array(logp) - max(logp))
    p /= p.sum()
    return p @ np.array(means), p @ np.array(ms)


def _cells(rows: KindRows, variance: str) -> pd.DataFrame:
    """Long frame (group, arm): observed effect and its se, model mean, row counts."""
    groups, n_groups, predictions = rows.groups, rows.n_groups, rows.predictions
    observed = observed_effects(groups, n_groups, rows.y, rows.arm, rows.propensity, rows.control, rows.arms,
                                variance=variance)
    counts = np.bincount(groups, minlength=n_groups)
    parts = []
    for a in rows.arms:
        with np.errstate(invalid="ignore", divide="ignore"):
            model = np.bincount(groups, weights=predictions[a].to_numpy(float), minlength=n_groups) / counts
        parts.append(observed[a].assign(group=np.arange(n_groups), arm=a, model=model, rows=counts))
    return pd.concat(parts, ignore_index=True)


def leak_covariance(rows: KindRows, *, variance: str = "floored") -> float:
    """Mean over the segments x arms of ``E[model x observed noise]`` of the full-data estimates.

    Rows are predicted fold by fold (``rows.folds``): the model of fold ``k`` saw every fold but ``k``
    and ``rows.heldout_fold`` (the held-out rows, predicted by a model that saw every other fold). For a
    segment, fold ``k``'s model mean ``m_k`` is independent of fold ``k``'s observed effect ``o_k``
    but has learned part of fold ``j``'s noise when it saw fold ``j``; across segments
    ``mean(m_k (o_j - o_k))`` estimates that covariance (the true effects cancel). The full-data
    estimates are row-weighted means over the folds, so the result weights each pair ``(k, j)``
    by the two folds' shares of the rows.

    Raises
    ------
    DataError
        The rows carry no folds.
    """
    folds = rows.fold_of_row()
    ids = np.unique(folds)
    share = np.array([np.mean(folds == k) for k in ids])
    per = {k: _cells(rows.subset(np.flatnonzero(folds == k)), variance) for k in ids}
    total = 0.0
    for a, k in enumerate(ids):
        for b, j in enumerate(ids):
            if j == k or j == rows.heldout_fold:
                continue  # no model saw its own fold or the held-out rows
            m_k, o_k, o_j = (per[k]["model"].to_numpy(), per[k]["observed"].to_numpy(), per[j]["observed"].to_numpy())
            good = np.isfinite(m_k) & np.isfinite(o_k) & np.isfinite(o_j)
            if good.any():
                total += share[a] * share[b] * float(np.mean(m_k[good] * (o_j[good] - o_k[good])))
    return total


def _arm_means(values: np.ndarray, rows: np.ndarray, index: np.ndarray, n_arms: int, finite: np.ndarray) -> np.ndarray:
    """Per arm, the row-weighted mean of ``values`` over its ``finite`` lines with rows (0 where none)."""
    ok = finite & (rows > 0)
    total = np.bincount(index[ok], weights=rows[ok], minlength=n_arms)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(index[ok], weights=(rows * values)[ok], minlength=n_arms) / total
    return np.where(np.isfinite(mean), mean, 0.0)


def level_shift(effect: np.ndarray, rows: np.ndarray, index: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``effect`` with each arm's lines shifted so that their row-weighted mean is the arm's ``level``
    (``index``: each line's arm in ``level``'s order); an arm without rows or level keeps its effects."""
    ok = np.isfinite(effect) & (rows > 0)
    total = np.bincount(index[ok], weights=rows[ok], minlength=len(level))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(index[ok], weights=(rows * effect)[ok], minlength=len(level)) / total
    shift = level - mean
    shift = np.where(np.isfinite(shift), shift, 0.0)
    return effect + shift[index]
