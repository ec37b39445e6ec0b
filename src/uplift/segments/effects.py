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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["observed_effects", "segment_effects", "fay_herriot"]


def _hajek(groups: np.ndarray, y: np.ndarray, w: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean per group, its variance, and the number of rows.

    The linearised variance is floored by the binomial variance at the pooled rate,
    ``p(1 - p) * sum(w^2) / sum(w)^2``: with rare outcomes a small group often has no event
    at all, and its empirical variance of 0 would claim a certainty it does not have.
    """
    sw = np.bincount(groups, weights=w, minlength=n_groups)
    swy = np.bincount(groups, weights=w * y, minlength=n_groups)
    sw2 = np.bincount(groups, weights=w**2, minlength=n_groups)
    n = np.bincount(groups, minlength=n_groups)
    pooled = float(np.sum(w * y) / np.sum(w)) if len(y) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = swy / sw
        resid = w * (y - mean[groups])
        var = np.bincount(groups, weights=resid**2, minlength=n_groups) / sw**2
        floor = pooled * (1 - pooled) * sw2 / sw**2
    return mean, np.maximum(var, floor), n


def observed_effects(
    groups: np.ndarray, n_groups: int, y: np.ndarray, arm: np.ndarray, propensity: pd.DataFrame, control: str, arms: tuple[str, ...]
) -> dict[str, pd.DataFrame]:
    """Per arm: a frame indexed 0..n_groups-1 with observed effect, its se, base rate, treated and control rows."""
    own = propensity.to_numpy(float)[np.arange(len(arm)), propensity.columns.get_indexer(arm)]
    w = 1.0 / own
    c = arm == control
    base, base_var, n_c = _hajek(groups[c], y[c], w[c], n_groups)
    out = {}
    for a in arms:
        m = arm == a
        mean, var, n_t = _hajek(groups[m], y[m], w[m], n_groups)
        out[a] = pd.DataFrame(
            {"observed": mean - base, "observed_se": np.sqrt(var + base_var), "base_rate": base, "n_treated": n_t, "n_control": n_c}
        )
    return out


def fay_herriot(observed: np.ndarray, se: np.ndarray, model: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    """Combine observed effects (with standard errors) and model estimates, segment by segment.

    The prior is a linear calibration of the model, ``alpha + beta * model``, fitted to the
    observed effects by weighted least squares (weights ``1 / (se^2 + A)``): a learner's
    regularisation both shifts and compresses its effects, and the calibration undoes both. ``A``,
    the variance of the true effects around the calibrated model, is estimated by the method of
    moments; the two are iterated a few times.

    Returns the combined effect, its standard deviation, the calibration ``(alpha, beta)`` and ``A``.
    Segments without an observed effect (no treated or no control rows) get the calibrated model
    with sd ``sqrt(A)``.
    """
    ok = np.isfinite(observed) & np.isfinite(se) & (se > 0) & np.isfinite(model)
    if ok.sum() < 3:
        return model.copy(), np.full(len(model), np.nan), (0.0, 1.0), float("nan")
    v, o, m = se[ok] ** 2, observed[ok], model[ok]
    A = 0.0
    alpha, beta = 0.0, 1.0
    for _ in range(5):
        w = 1.0 / (v + A)
        X = np.column_stack([np.ones_like(m), m])
        alpha, beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], o * np.sqrt(w), rcond=None)[0]
        beta = float(np.clip(beta, 0.0, 5.0))  # a calibration never reverses the model's ranking
        resid = o - (alpha + beta * m)
        A = float(max(np.mean(resid**2 - v), 0.0))
    # keep A away from 0 so that no segment's interval collapses onto the model alone
    A = max(A, 0.05 * float(np.median(v)))
    prior = alpha + beta * model
    gamma = np.zeros(len(model))
    gamma[ok] = A / (A + v)
    effect = prior.copy()
    effect[ok] = gamma[ok] * observed[ok] + (1 - gamma[ok]) * prior[ok]
    sd = np.full(len(model), np.sqrt(A))
    sd[ok] = np.sqrt(gamma[ok] * v)
    return effect, sd, (float(alpha), float(beta)), A


def segment_effects(
    groups: np.ndarray,
    n_groups: int,
    *,
    y: np.ndarray,
    arm: np.ndarray,
    propensity: pd.DataFrame,
    predictions: pd.DataFrame,
    control: str,
) -> pd.DataFrame:
    """Long frame (group, arm) with observed, model and calibrated effects (``effect``, ``effect_sd``)."""
    arms = tuple(predictions.columns)
    observed = observed_effects(groups, n_groups, y, arm, propensity, control, arms)
    counts = np.bincount(groups, minlength=n_groups)
    parts = []
    for a in arms:
        with np.errstate(invalid="ignore", divide="ignore"):
            model = np.bincount(groups, weights=predictions[a].to_numpy(float), minlength=n_groups) / counts
        parts.append(observed[a].assign(group=np.arange(n_groups), arm=a, model=model))
    out = pd.concat(parts, ignore_index=True)
    # one calibration over all arms: the bias and the spread of the truth around the model are
    # properties of the learner, and pooling the arms' segments estimates them far less noisily
    effect, sd, (alpha, beta), _ = fay_herriot(out["observed"].to_numpy(), out["observed_se"].to_numpy(), out["model"].to_numpy())
    return out.assign(effect=effect, effect_sd=sd, calibration_alpha=alpha, calibration_beta=beta)
