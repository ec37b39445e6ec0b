"""What each arm's observed differences say about its additive parts that the estimates before them miss.

A targetable cell's own randomised difference is mostly noise, so the calibrated estimate leans on it
with a weight of a few percent. An additive part of the segment dimensions (an age band x gender, a
municipality) gathers a dozen cells or more: their observed differences around the estimates,
averaged over the part, are far less noisy than any one cell's, and where the estimates before them
(the model, the persona mix) miss how an arm's effect differs by age band, gender or place, the parts
show it. Per arm the residuals ``r_i = observed_i - effect_i`` are read as a random-effects model,
``r = Z u + noise``, ``Z`` the one-hot indicators of each term's joint value, ``u`` the parts with a
variance ``s_t^2`` per term, the noise each cell's ``se^2``. The variances are the arm's own, by
maximum likelihood on its residuals, and each cell gets the best linear unbiased prediction of its
parts added, ``Z u_hat``, ``u_hat = (Z' W Z + D^-1)^-1 Z' W r`` (``W = diag(1 / se^2)``,
``D = diag(s_t^2)``): a part moves as far as its own cells' residuals outweigh their noise, and an
arm whose parts do not differ beyond the noise keeps its estimates. The parts' error,
``(Z' W Z + D^-1)^-1``, is shared by every cell of a part: :func:`observed_parts` returns it as
per-arm factors. Pure numpy and scipy; no I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from uplift.segments.additive import _design, _term_codes

__all__ = ["observed_parts", "part_variances"]

_LOG_BOUNDS = (np.log(1e-12), np.log(1e-2))
"""A part's variance is searched between (1e-6)^2 and 0.1^2 (effects are probabilities per contact)."""


def part_variances(residual: np.ndarray, variance: np.ndarray, design: np.ndarray,
                   term_of_column: np.ndarray) -> np.ndarray:
    """Per term, the variance of its parts by maximum likelihood: ``r ~ N(0, Z D Z' + diag(variance))``.

    Written with the Woodbury identity (``q`` parts instead of ``n`` cells): with ``W = diag(1 / variance)``
    and ``M = D^-1 + Z' W Z``, ``log|V| = log|D| + log|M| + sum log variance`` and
    ``r' V^-1 r = r' W r - (Z' W r)' M^-1 (Z' W r)``.
    """
    n_terms = int(term_of_column.max()) + 1
    w = 1.0 / variance
    zwz = design.T @ (design * w[:, None])
    zwr = design.T @ (w * residual)

    def negative_log_likelihood(log_s2: np.ndarray) -> tuple[float, np.ndarray]:
        d = np.exp(log_s2)[term_of_column]
        try:
            inverse = np.linalg.inv(zwz + np.diag(1.0 / d))
            sign, logdet_m = np.linalg.slogdet(zwz + np.diag(1.0 / d))
        except np.linalg.LinAlgError:
            return np.inf, np.zeros(n_terms)
        if sign <= 0:
            return np.inf, np.zeros(n_terms)
        mb = inverse @ zwr
        value = 0.5 * (float(np.sum(np.log(d))) + float(logdet_m) - float(zwr @ mb))
        # d/d log s_t^2: 0.5 sum over the term's parts of 1 - ((M^-1)_jj + (M^-1 b)_j^2) / d_j
        per_part = 1.0 - (np.diag(inverse) + mb**2) / d
        return value, 0.5 * np.bincount(term_of_column, weights=per_part, minlength=n_terms)

    start = np.full(n_terms, np.log(max(float(np.var(residual)) * 0.1, 1e-10)))
    best = minimize(negative_log_likelihood, start, jac=True, method="L-BFGS-B", bounds=[_LOG_BOUNDS] * n_terms)
    return np.exp(best.x)


def observed_parts(
    effect: np.ndarray,
    observed: np.ndarray,
    se: np.ndarray,
    arm: np.ndarray,
    attributes: pd.DataFrame,
    terms: tuple[tuple[str, ...], ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Per line, ``effect`` plus the predicted parts of its arm's residuals (see the module docstring).

    Parameters
    ----------
    effect, observed, se : (n,) each line's estimate, observed difference and its standard error.
    arm : (n,) each line's arm; attributes : (n rows) each line's cell's dimension values; terms : the
        parts, as in :func:`uplift.segments.additive.additive_effects`.

    Returns
    -------
    effect : (n,) the effects with the parts added (lines of an arm with fewer than three observed
        lines keep theirs).
    loadings : (n, k) each line's loadings on its arm's factors of the parts' error (``L L' = Z C Z'``,
        ``C = (Z' W Z + D^-1)^-1``); ``k`` the most parts of any arm.
    """
    effect = np.asarray(effect, dtype=float)
    arm = np.asarray(arm)
    out = effect.copy()
    codes = _term_codes(attributes.reset_index(drop=True), terms)
    ok = np.isfinite(effect) & np.isfinite(observed) & np.isfinite(se) & (se > 0)
    per_arm = []
    for a in pd.unique(arm):
        lines = np.flatnonzero(arm == a)
        fit = ok[lines]
        if fit.sum() < 3:
            continue
        design = _design(codes[lines])
        term_of_column = np.concatenate([np.full(len(np.unique(codes[lines, t])), t) for t in range(len(terms))])
        residual = (observed - effect)[lines][fit]
        variance = se[lines][fit] ** 2
        s2 = part_variances(residual, variance, design[fit], term_of_column)[term_of_column]
        w = 1.0 / variance
        cov = np.linalg.inv(design[fit].T @ (design[fit] * w[:, None]) + np.diag(1.0 / s2))
        parts = cov @ (design[fit].T @ (w * residual))
        usable = np.isfinite(effect[lines])
        out[lines[usable]] += (design @ parts)[usable]
        per_arm.append((lines[usable], design[usable] @ np.linalg.cholesky(cov)))
    loadings = np.zeros((len(effect), max((load.shape[1] for _, load in per_arm), default=0)))
    for lines, load in per_arm:
        loadings[lines, :load.shape[1]] = load
    return out, loadings
