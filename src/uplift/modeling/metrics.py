"""Uplift ranking metrics per treatment arm against the control: curves, Qini, AUUC, uplift at k%.

All functions are pure and vectorised (one stable sort and cumulative sums, O(n log n)); the exact
definitions, the tie rule and how the areas relate to causalml and scikit-uplift are written out in
``docs/metrics.md``.

Conventions shared by every function
------------------------------------
* Rows are sorted by ``score`` descending; **ties keep the original row order** (stable sort), so
  with tied scores the result depends on the input order and row-order invariance holds only for
  distinct scores.
* ``weights`` (default 1) make every count and outcome sum weighted; the x axis of the curves is the
  weighted population fraction ``(N_t(k) + N_c(k)) / W`` with ``W`` the total weight, and areas are
  normalised by ``W`` (incremental conversions per person of the weighted population).
* Errors: a bad value in one argument (not 0/1, not finite, negative weight, ``k`` outside (0, 1])
  raises :class:`~uplift.errors.SchemaError`; arguments that do not fit together (lengths, a group
  without rows, arm labels) raise :class:`~uplift.errors.DataError`. Both are ``ValueError``.
* pandas inputs are read positionally (their index is ignored); nothing passed in is modified.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from uplift.errors import DataError, SchemaError
from uplift.modeling.ipw import group_means

__all__ = [
    "uplift_curve",
    "qini_curve",
    "qini_coefficient",
    "auuc",
    "uplift_at_k",
    "decile_uplift",
    "arm_metrics",
    "pairwise_ipw_weights",
]

_K_TOLERANCE = 1e-9
"""Relative slack when cutting the top ``k`` share, so that 0.3 * 10 rows keeps 3 rows."""


class _Cumulative(NamedTuple):
    """Weighted cumulative counts and outcome sums over the sorted rows, each of length n + 1."""

    n_t: np.ndarray
    n_c: np.ndarray
    y_t: np.ndarray
    y_c: np.ndarray

    @property
    def total(self) -> float:
        return float(self.n_t[-1] + self.n_c[-1])

    @property
    def fraction(self) -> np.ndarray:
        return (self.n_t + self.n_c) / self.total


# ---------------------------------------------------------------------------------------------
# input checks


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise SchemaError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise SchemaError(f"{name} is empty; metrics need at least one row")
    return array


def _as_binary(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a float array of 0.0 / 1.0; anything else raises SchemaError naming ``name``."""
    array = _as_1d(values, name)
    try:
        numeric = array.astype(float)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} must contain only 0 and 1 (or booleans), got dtype {array.dtype}") from exc
    bad = ~((numeric == 0.0) | (numeric == 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SchemaError(
            f"{name} must contain only 0 and 1; {int(bad.sum())} row(s) do not, first at position "
            f"{first}: {array[first]!r}"
        )
    return numeric


def _as_outcome(values: ArrayLike, name: str = "y") -> np.ndarray:
    """The outcome as floats: 0/1 conversions, or an amount (spend) of a continuous outcome; any finite number."""
    return _as_finite(values, name)


def _as_finite(values: ArrayLike, name: str) -> np.ndarray:
    array = _as_1d(values, name)
    try:
        numeric = array.astype(float)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} must be numeric, got dtype {array.dtype}") from exc
    bad = ~np.isfinite(numeric)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SchemaError(
            f"{name} must be finite; {int(bad.sum())} row(s) are NaN or infinite, first at position {first}"
        )
    return numeric


def _as_weights(weights: ArrayLike | None, n: int, name: str = "weights") -> np.ndarray:
    if weights is None:
        return np.ones(n)
    numeric = _as_finite(weights, name)
    if numeric.size != n:
        raise DataError(f"{name} has {numeric.size} rows but y has {n}")
    if (numeric < 0).any():
        first = int(np.flatnonzero(numeric < 0)[0])
        raise SchemaError(f"{name} must be >= 0; position {first} is {numeric[first]}")
    return numeric


def _check_k(k: float, name: str = "k") -> float:
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise SchemaError(f"{name} must be a number in (0, 1], got {k!r}")
    value = float(k)
    if not 0.0 < value <= 1.0:
        raise SchemaError(f"{name} must be in (0, 1] (a share of the rows), got {k!r}")
    return value


def _curve_inputs(
    y: ArrayLike, treated: ArrayLike, score: ArrayLike, weights: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    y_ = _as_outcome(y, "y")
    t_ = _as_binary(treated, "treated")
    s_ = _as_finite(score, "score")
    if not (y_.size == t_.size == s_.size):
        raise DataError(
            f"y, treated and score must have the same length, got {y_.size}, {t_.size} and {s_.size}"
        )
    w_ = _as_weights(weights, y_.size)
    return y_, t_, s_, w_


def _cumulate(y: np.ndarray, treated: np.ndarray, score: np.ndarray, weights: np.ndarray) -> _Cumulative:
    """Sort by score descending (stable: ties keep input order) and accumulate weighted sums."""
    order = np.argsort(-score, kind="stable")
    w_t = (weights * treated)[order]
    w_c = (weights * (1.0 - treated))[order]
    y_sorted = y[order]
    cum = _Cumulative(
        n_t=np.concatenate(([0.0], np.cumsum(w_t))),
        n_c=np.concatenate(([0.0], np.cumsum(w_c))),
        y_t=np.concatenate(([0.0], np.cumsum(w_t * y_sorted))),
        y_c=np.concatenate(([0.0], np.cumsum(w_c * y_sorted))),
    )
    if cum.n_t[-1] <= 0:
        raise DataError("treated has no treated rows (with positive weight); metrics need both groups")
    if cum.n_c[-1] <= 0:
        raise DataError("treated has no control rows (with positive weight); metrics need both groups")
    return cum


def _prepared(
    y: ArrayLike, treated: ArrayLike, score: ArrayLike, weights: ArrayLike | None
) -> _Cumulative:
    return _cumulate(*_curve_inputs(y, treated, score, weights))


# ---------------------------------------------------------------------------------------------
# curve arithmetic on the cumulative sums


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _gain(cum: _Cumulative) -> np.ndarray:
    both = (cum.n_t > 0) & (cum.n_c > 0)
    gain = (_ratio(cum.y_t, cum.n_t) - _ratio(cum.y_c, cum.n_c)) * (cum.n_t + cum.n_c)
    return np.where(both, gain, 0.0)


def _qini(cum: _Cumulative) -> np.ndarray:
    return np.where(cum.n_c > 0, cum.y_t - cum.y_c * _ratio(cum.n_t, cum.n_c), 0.0)


def _area_above_random(curve: np.ndarray, cum: _Cumulative) -> float:
    """Trapezoid area of curve / W over the fraction, minus the chord from (0, 0) to (1, curve[-1] / W)."""
    scaled = curve / cum.total
    return float(np.trapezoid(scaled, cum.fraction) - scaled[-1] / 2.0)


def _uplift_in_top(cum: _Cumulative, k: float) -> float:
    cutoff = k * cum.total * (1.0 + _K_TOLERANCE)
    m = int(np.searchsorted(cum.n_t + cum.n_c, cutoff, side="right")) - 1
    if cum.n_t[m] <= 0 or cum.n_c[m] <= 0:
        return float("nan")
    return float(cum.y_t[m] / cum.n_t[m] - cum.y_c[m] / cum.n_c[m])


# ---------------------------------------------------------------------------------------------
# public API: one treated group against the control


def uplift_curve(
    y: ArrayLike, treated: ArrayLike, score: ArrayLike, weights: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gain curve ``G(k)`` for k = 0..n rows ranked by score.

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome, 0/1 (or boolean).
    treated : array-like of shape (n,)
        1 for rows assigned to the treatment arm, 0 for rows assigned to the control.
    score : array-like of shape (n,)
        Predicted uplift of the treatment arm; higher is targeted first. Ties keep the input order.
    weights : array-like of shape (n,), optional
        Non-negative row weights (e.g. inverse-propensity weights); default 1.

    Returns
    -------
    fraction : ndarray of shape (n + 1,)
        Weighted population fraction ``(N_t(k) + N_c(k)) / W``, from 0 to 1.
    gain : ndarray of shape (n + 1,)
        ``G(k) = (Y_t(k)/N_t(k) - Y_c(k)/N_c(k)) * (N_t(k) + N_c(k))``, 0 while a group is empty.
        Not normalised: divide by ``W`` for incremental conversions per person.

    Raises
    ------
    SchemaError
        An argument holds values outside its domain.
    DataError
        Lengths differ, or the treated or the control group has no weight.
    """
    cum = _prepared(y, treated, score, weights)
    return cum.fraction, _gain(cum)


def qini_curve(
    y: ArrayLike, treated: ArrayLike, score: ArrayLike, weights: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve ``Q(k) = Y_t(k) - Y_c(k) * N_t(k) / N_c(k)`` (0 while ``N_c(k) = 0``).

    Parameters and errors as :func:`uplift_curve`.

    Returns
    -------
    fraction : ndarray of shape (n + 1,)
        Weighted population fraction, from 0 to 1.
    qini : ndarray of shape (n + 1,)
        ``Q(k)`` in (weighted) incremental conversions, not normalised.
    """
    cum = _prepared(y, treated, score, weights)
    return cum.fraction, _qini(cum)


def qini_coefficient(
    y: ArrayLike, treated: ArrayLike, score: ArrayLike, weights: ArrayLike | None = None
) -> float:
    """Signed area between the Qini curve and the random line, per person of the population.

    ``trapezoid(Q(k) / W, fraction) - (Q(n) / W) / 2``: positive when the ranking finds the people
    the treatment moves, about 0 for a random ranking, negative for a reversed one.

    Parameters and errors as :func:`uplift_curve`.

    Returns
    -------
    float
        Incremental conversions per person of the population (same unit as ``Q / W``).
    """
    cum = _prepared(y, treated, score, weights)
    return _area_above_random(_qini(cum), cum)


def auuc(y: ArrayLike, treated: ArrayLike, score: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Area under the uplift (gain) curve above the random line, per person of the population.

    ``trapezoid(G(k) / W, fraction) - (G(n) / W) / 2``; 0 for a random ranking. This is *not*
    causalml's ``auuc_score`` nor scikit-uplift's ``uplift_auc_score``; see ``docs/metrics.md``.

    Parameters and errors as :func:`uplift_curve`.

    Returns
    -------
    float
        Incremental conversions per person of the population.
    """
    cum = _prepared(y, treated, score, weights)
    return _area_above_random(_gain(cum), cum)


def uplift_at_k(
    y: ArrayLike, treated: ArrayLike, score: ArrayLike, k: float, weights: ArrayLike | None = None
) -> float:
    """Observed uplift among the top ``k`` share of the rows by score.

    The top set is the longest prefix of the ranking whose weight is at most ``k * W`` (unweighted:
    ``floor(k * n)`` rows, up to a relative rounding slack of 1e-9); the result is the weighted mean
    outcome of its treated rows minus that of its control rows.

    Parameters
    ----------
    y, treated, score, weights
        As :func:`uplift_curve`.
    k : float
        Share of the rows in (0, 1], e.g. 0.1 for the top 10%.

    Returns
    -------
    float
        The uplift, or NaN when the top set has no treated or no control weight.

    Raises
    ------
    SchemaError
        ``k`` outside (0, 1] or an argument with values outside its domain.
    DataError
        Lengths differ, or a group has no weight at all.
    """
    k_ = _check_k(k)
    return _uplift_in_top(_prepared(y, treated, score, weights), k_)


def decile_uplift(
    y: ArrayLike,
    treated: ArrayLike,
    score: ArrayLike,
    weights: ArrayLike | None = None,
    bins: int = 10,
) -> pd.DataFrame:
    """Observed uplift per score bin (deciles by default), for the "uplift by decile" plot.

    Rows are ranked as in :func:`uplift_curve`; a row goes to bin ``floor(bins * W_before / W) + 1``
    where ``W_before`` is the weight ranked above it, so bins hold equal shares of the weight
    (unweighted: equal row counts up to one row) and bin 1 holds the highest scores.

    Parameters
    ----------
    y, treated, score, weights
        As :func:`uplift_curve`.
    bins : int, default 10
        Number of bins, at least 1.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``bin`` (1..bins); columns ``n_treated``, ``n_control`` (row counts),
        ``mean_treated``, ``mean_control`` (weighted mean outcomes, NaN for an empty group),
        ``uplift`` (their difference), ``score_min`` and ``score_max``. Bins without rows are
        kept with zero counts and NaN values.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise SchemaError(f"bins must be a positive integer, got {bins!r}")
    y_, t_, s_, w_ = _curve_inputs(y, treated, score, weights)
    cum = _cumulate(y_, t_, s_, w_)
    order = np.argsort(-s_, kind="stable")
    weight_before = (cum.n_t + cum.n_c)[:-1]
    label = np.minimum((bins * weight_before / cum.total).astype(np.int64), bins - 1)
    t_sorted, y_sorted, w_sorted, s_sorted = t_[order], y_[order], w_[order], s_[order]

    w_t, w_c = w_sorted * t_sorted, w_sorted * (1.0 - t_sorted)
    mean_t, _ = group_means(label, y_sorted, w_t, bins)  # NaN in a bin without weight
    mean_c, _ = group_means(label, y_sorted, w_c, bins)
    score_min = np.full(bins, np.nan)
    score_max = np.full(bins, np.nan)
    np.fmin.at(score_min, label, s_sorted)
    np.fmax.at(score_max, label, s_sorted)
    return pd.DataFrame(
        {
            "n_treated": np.bincount(label, weights=t_sorted, minlength=bins).astype(np.int64),
            "n_control": np.bincount(label, weights=1.0 - t_sorted, minlength=bins).astype(np.int64),
            "mean_treated": mean_t,
            "mean_control": mean_c,
            "uplift": mean_t - mean_c,
            "score_min": score_min,
            "score_max": score_max,
        },
        index=pd.RangeIndex(1, bins + 1, name="bin"),
    )


# ---------------------------------------------------------------------------------------------
# public API: every arm of a multi-treatment experiment


def _as_labels(values: ArrayLike, name: str) -> np.ndarray:
    array = _as_1d(values, name).astype(object)
    missing = pd.isna(array)
    if missing.any():
        raise SchemaError(f"{name} has {int(missing.sum())} missing arm label(s), first at position "
                          f"{int(np.flatnonzero(missing)[0])}")
    return array


def _column_name(k: float) -> str:
    return f"uplift_at_{round(k * 100):d}"


def arm_metrics(
    y: ArrayLike,
    arm: ArrayLike,
    scores: pd.DataFrame,
    control: str,
    weights: pd.DataFrame | None = None,
    ks: Sequence[float] = (0.1, 0.2, 0.3),
) -> pd.DataFrame:
    """Qini, AUUC and uplift at k% of every treatment arm against the control arm.

    For arm ``t`` (a column of ``scores``) only the rows assigned to ``t`` or to ``control`` are
    used, ranked by ``scores[t]`` and weighted by ``weights[t]``.

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome, 0/1.
    arm : array-like of shape (n,)
        The arm each row was assigned to (str labels). Rows of arms without a score column are
        ignored.
    scores : pandas.DataFrame of shape (n, n_arms)
        Predicted uplift against the control, one column per treatment arm, named by arm.
    control : str
        Name of the control arm; must not be a column of ``scores``.
    weights : pandas.DataFrame of shape (n, >= n_arms), optional
        Per-row weight for each arm's comparison, one column per treatment arm (e.g. from
        :func:`pairwise_ipw_weights`); default 1.
    ks : sequence of float, default (0.1, 0.2, 0.3)
        Shares for the ``uplift_at_<100 k>`` columns.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``arm`` in the column order of ``scores``; columns ``qini``, ``auuc``, one
        ``uplift_at_<100 k>`` per k, ``n_treated`` and ``n_control`` (unweighted row counts).

    Raises
    ------
    SchemaError
        Bad values in ``y``, ``arm``, a score or weight column, or ``ks``.
    DataError
        Lengths differ, ``control`` is a score column or has no rows, an arm has no rows, or
        ``weights`` lacks an arm's column.
    """
    y_ = _as_outcome(y, "y")
    arm_ = _as_labels(arm, "arm")
    _check_arm_frames(y_.size, arm_.size, scores, control, weights)
    k_columns = _k_columns(ks)
    if not (arm_ == control).any():
        raise DataError(f"arm has no rows of the control arm {control!r}")
    rows = [_arm_row(y_, arm_, scores, weights, name, control, k_columns) for name in scores.columns]
    return pd.DataFrame(rows, index=pd.Index(list(scores.columns), name="arm"))


def _check_arm_frames(n_y: int, n_arm: int, scores: pd.DataFrame, control: str, weights: pd.DataFrame | None) -> None:
    """Check the score (and weight) frames of :func:`arm_metrics` against the arms and the row count.

    Raises :class:`SchemaError` for a score or weight argument that is no frame or has duplicate arm
    columns, :class:`DataError` for ``control`` among the score columns, differing lengths, or a weight
    frame lacking an arm's column.
    """
    if not isinstance(scores, pd.DataFrame) or scores.shape[1] == 0:
        raise SchemaError("scores must be a pandas DataFrame with one column per treatment arm")
    if not scores.columns.is_unique:
        raise SchemaError(f"scores has duplicate arm columns: {list(scores.columns[scores.columns.duplicated()])}")
    if control in scores.columns:
        raise DataError(f"control arm {control!r} must not be a column of scores; arms: {list(scores.columns)}")
    if not (n_y == n_arm == len(scores)):
        raise DataError(f"y, arm and scores must have the same length, got {n_y}, {n_arm} and {len(scores)}")
    if weights is not None:
        if not isinstance(weights, pd.DataFrame):
            raise SchemaError("weights must be a pandas DataFrame with one column per treatment arm")
        missing = [a for a in scores.columns if a not in weights.columns]
        if missing:
            raise DataError(f"weights has no column for arm(s) {missing}; columns: {list(weights.columns)}")
        if len(weights) != n_y:
            raise DataError(f"weights has {len(weights)} rows but y has {n_y}")


def _k_columns(ks: Sequence[float]) -> dict[str, float]:
    """The ``uplift_at_<100 k>`` column name of each share in ``ks`` (checked), in their order.

    Raises :class:`SchemaError` for a share outside (0, 1] or two shares with the same whole percentage.
    """
    k_values = [_check_k(k, "ks") for k in ks]
    k_names = [_column_name(k) for k in k_values]
    if len(set(k_names)) != len(k_names):
        raise SchemaError(f"ks must give distinct whole percentages, got {list(ks)}")
    return dict(zip(k_names, k_values, strict=True))


def _arm_row(y: np.ndarray, arm: np.ndarray, scores: pd.DataFrame, weights: pd.DataFrame | None, name: str,
             control: str, k_columns: dict[str, float]) -> dict[str, float | int]:
    """One row of :func:`arm_metrics`: treatment arm ``name`` against ``control`` on the rows of the two.

    Raises :class:`DataError` when the arm has no rows or its curve cannot be built, and
    :class:`SchemaError` for a bad score or weight value.
    """
    is_treated = arm == name
    is_control = arm == control
    if not is_treated.any():
        raise DataError(f"arm has no rows of treatment arm {name!r} (scored in scores)")
    keep = is_treated | is_control
    score = _as_finite(scores[name].to_numpy()[keep], f"scores[{name!r}]")
    weight = None if weights is None else weights[name].to_numpy()[keep]
    weight_ = _as_weights(weight, int(keep.sum()), f"weights[{name!r}]")
    try:
        cum = _cumulate(y[keep], is_treated[keep].astype(float), score, weight_)
    except DataError as exc:
        raise DataError(f"arm {name!r} against {control!r}: {exc}") from exc
    row = {"qini": _area_above_random(_qini(cum), cum), "auuc": _area_above_random(_gain(cum), cum)}
    row |= {col: _uplift_in_top(cum, k) for col, k in k_columns.items()}
    row |= {"n_treated": int(is_treated.sum()), "n_control": int(is_control.sum())}
    return row


def pairwise_ipw_weights(arm: ArrayLike, propensity: pd.DataFrame, control: str) -> pd.DataFrame:
    """Inverse-propensity weights that make each treatment arm comparable with the control.

    For treatment arm ``t`` and control ``c`` with assignment probabilities ``p_t``, ``p_c`` of a
    row: rows in ``t`` get ``1 / (p_t / (p_t + p_c))``, rows in ``c`` get ``1 / (p_c / (p_t + p_c))``,
    all other rows 0 (the inverse of the probability of the row's own arm given ``T in {t, c}``).

    Parameters
    ----------
    arm : array-like of shape (n,)
        The arm each row was assigned to.
    propensity : pandas.DataFrame of shape (n, n_arms)
        Probability that the row was assigned to each arm, one column per arm, control included.
    control : str
        Name of the control arm (a column of ``propensity``).

    Returns
    -------
    pandas.DataFrame
        Same index as ``propensity``, one column per treatment arm (the other columns, in order).

    Raises
    ------
    SchemaError
        A propensity is not a finite number in [0, 1] or an arm label is missing.
    DataError
        Lengths differ, ``control`` or a row's arm is not a column, or a row's own arm has
        propensity 0.
    """
    arm_ = _as_labels(arm, "arm")
    if not isinstance(propensity, pd.DataFrame):
        raise SchemaError("propensity must be a pandas DataFrame with one column per arm")
    if control not in propensity.columns:
        raise DataError(f"control arm {control!r} is not a column of propensity; columns: {list(propensity.columns)}")
    if len(propensity) != arm_.size:
        raise DataError(f"propensity has {len(propensity)} rows but arm has {arm_.size}")
    unknown = sorted(set(arm_) - set(propensity.columns), key=str)
    if unknown:
        raise DataError(f"arm has label(s) {unknown} without a propensity column; columns: {list(propensity.columns)}")
    p_c = _as_probability(propensity[control], f"propensity[{control!r}]")
    in_c = arm_ == control
    if (p_c[in_c] <= 0).any():
        raise DataError(f"rows assigned to {control!r} have propensity 0 for it")
    out = {}
    for name in propensity.columns:
        if name == control:
            continue
        p_t = _as_probability(propensity[name], f"propensity[{name!r}]")
        in_t = arm_ == name
        if (p_t[in_t] <= 0).any():
            raise DataError(f"rows assigned to {name!r} have propensity 0 for it")
        pair = p_t + p_c
        weight = np.zeros(arm_.size)
        weight[in_t] = pair[in_t] / p_t[in_t]
        weight[in_c] = pair[in_c] / p_c[in_c]
        out[name] = weight
    return pd.DataFrame(out, index=propensity.index)


def _as_probability(values: ArrayLike, name: str) -> np.ndarray:
    numeric = _as_finite(values, name)
    if ((numeric < 0) | (numeric > 1)).any():
        raise SchemaError(f"{name} must lie in [0, 1]")
    return numeric
