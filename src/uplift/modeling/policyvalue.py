"""Off-policy value of a targeting policy on randomised data: self-normalised IPW with a CI.

A policy recommends one arm per row. On a randomised experiment its value (the conversion rate
if everyone got the recommended arm) is estimated from the rows whose assigned arm happens to
match the recommendation, weighted by ``1 / P(assigned arm)``, self-normalised (Hajek). The
standard error comes from the linearisation (influence function) of that ratio; differences of
two policies on the same rows use the paired influence function, so "targeting beats the single
best arm" gets an honest interval. A policy that gives arms with probabilities (a budget plan's
share of each segment contacted with each arm) is valued the same way (:func:`ipw_contrast`), and so
is any weighted sum of such values on the same rows, e.g. the conversions one plan adds over
another. Definitions in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from uplift.errors import DataError, SchemaError
from uplift.modeling.ipw import hajek_influence
from uplift.modeling.metrics import _as_labels, _as_outcome

__all__ = [
    "PolicyValue",
    "PolicyTerm",
    "ipw_value",
    "ipw_difference",
    "ipw_contrast",
    "compare_policies",
    "single_arm_policies",
    "cluster_codes",
    "influence_se",
]


@dataclass(frozen=True)
class PolicyValue:
    """An estimated policy value (or difference of two) with its normal confidence interval.

    Attributes
    ----------
    value : float
        The estimate (conversion rate, or difference of rates).
    se : float
        Influence-function standard error.
    lo, hi : float
        ``value -/+ z_{1 - alpha/2} * se``.
    n_matched : int
        Rows whose assigned arm equals the recommendation (for a difference: equals either one).
    """

    value: float
    se: float
    lo: float
    hi: float
    n_matched: int


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0.0 < alpha < 1.0:
        raise SchemaError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - _check_alpha(alpha) / 2.0)


def _design(y: ArrayLike, arm: ArrayLike,
            propensity: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Index]:
    """Validated outcome, assigned-arm codes, own-arm propensity and the arm columns."""
    y_ = _as_outcome(y, "y")
    arm_ = _as_labels(arm, "arm")
    if not isinstance(propensity, pd.DataFrame) or propensity.shape[1] == 0:
        raise SchemaError("propensity must be a pandas DataFrame with one column per arm")
    columns = pd.Index(propensity.columns)
    if not columns.is_unique:
        raise SchemaError(f"propensity has duplicate arm columns: {list(columns[columns.duplicated()])}")
    if not (y_.size == arm_.size == len(propensity)):
        raise DataError(f"y, arm and propensity must have the same length, got {y_.size}, "
                        f"{arm_.size} and {len(propensity)}")
    try:
        p = propensity.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise SchemaError("propensity must hold numbers (probabilities in [0, 1])") from exc
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise SchemaError("propensity must hold finite probabilities in [0, 1]")
    code = _codes(arm_, columns, "arm")
    own = p[np.arange(y_.size), code]
    if (own <= 0).any():
        first = int(np.flatnonzero(own <= 0)[0])
        raise DataError(
            f"propensity of the assigned arm is 0 for {int((own <= 0).sum())} row(s), first at position {first} "
            f"(arm {arm_[first]!r}); a randomised row must have had a chance of its own arm"
        )
    return y_, code, own, columns


def _codes(labels: np.ndarray, columns: pd.Index, name: str) -> np.ndarray:
    code = columns.get_indexer(labels)
    if (code < 0).any():
        unknown = sorted({str(v) for v in labels[code < 0]})
        raise DataError(f"{name} has arm(s) {unknown} that are not propensity columns; valid: {list(columns)}")
    return code


def _policy_codes(recommended: ArrayLike, columns: pd.Index, n: int, name: str) -> np.ndarray:
    labels = _as_labels(recommended, name)
    if labels.size != n:
        raise DataError(f"{name} has {labels.size} rows but y has {n}")
    return _codes(labels, columns, name)


def cluster_codes(cluster: ArrayLike | None, n: int) -> np.ndarray | None:
    """Integer codes of the cluster labels (None: every row its own cluster); checked against ``n`` rows."""
    if cluster is None:
        return None
    labels = np.asarray(cluster)
    if labels.shape != (n,):
        raise DataError(f"cluster has {labels.size} labels but there are {n} rows")
    codes, _ = pd.factorize(pd.Series(labels).astype(str))
    return codes


def influence_se(influence: np.ndarray, cluster: np.ndarray | None = None) -> float:
    """Standard error of a mean-type estimate from its per-row influence function.

    Rows independent: ``se^2 = sum_i phi_i^2 / (n (n - 1))``. Clustered (``cluster``: integer codes):
    the influence is summed within each cluster, ``se^2 = G / (G - 1) * sum_g (sum_{i in g} phi_i)^2 / n^2``
    (the cluster-robust sandwich; with one row per cluster it is the formula above).
    """
    n = influence.size
    if cluster is None:
        return float(np.sqrt(np.dot(influence, influence) / (n * (n - 1)))) if n > 1 else float("nan")
    sums = np.bincount(cluster, weights=influence)
    g = int((np.bincount(cluster) > 0).sum())
    return float(np.sqrt(g / (g - 1) * np.dot(sums, sums)) / n) if g > 1 else float("nan")


def _from_influence(value: float, influence: np.ndarray, n_matched: int, alpha: float,
                    cluster: np.ndarray | None = None) -> PolicyValue:
    se = influence_se(influence, cluster)
    half = _z(alpha) * se
    return PolicyValue(value=value, se=se, lo=value - half, hi=value + half, n_matched=n_matched)


def ipw_value(
    y: ArrayLike,
    arm: ArrayLike,
    propensity: pd.DataFrame,
    recommended: ArrayLike,
    *,
    alpha: float = 0.05,
    cluster: ArrayLike | None = None,
) -> PolicyValue:
    """Self-normalised (Hajek) IPW value of a deterministic policy, with an influence-function CI.

    ``V = sum_i w_i y_i / sum_i w_i`` with ``w_i = 1[T_i = pi(x_i)] / P(T_i | x_i)``;
    ``se^2 = sum_i phi_i^2 / (n (n - 1))`` with ``phi_i = w_i (y_i - V) / mean(w)``.

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome, 0/1.
    arm : array-like of shape (n,)
        The arm each row was randomised to.
    propensity : pandas.DataFrame of shape (n, n_arms)
        Probability that each row was assigned each arm (columns named by arm, control included).
    recommended : array-like of shape (n,)
        The policy: the recommended arm per row.
    alpha : float, default 0.05
        One minus the confidence level.
    cluster : array-like of shape (n,), optional
        The unit of randomisation of each row (household, school): the standard error is then
        cluster-robust (:func:`influence_se`).

    Returns
    -------
    PolicyValue

    Raises
    ------
    SchemaError
        ``y`` not 0/1, a missing label, a propensity outside [0, 1], ``alpha`` outside (0, 1).
    DataError
        Lengths differ, an arm is not a propensity column, a row's own arm has propensity 0, or
        no row matches the recommendation.
    """
    y_, code, own, columns = _design(y, arm, propensity)
    matched = code == _policy_codes(recommended, columns, y_.size, "recommended")
    value, influence = hajek_influence(y_, np.where(matched, 1.0 / own, 0.0), "recommended")
    return _from_influence(value, influence, int(matched.sum()), alpha, cluster_codes(cluster, y_.size))


def ipw_difference(
    y: ArrayLike,
    arm: ArrayLike,
    propensity: pd.DataFrame,
    recommended_a: ArrayLike,
    recommended_b: ArrayLike,
    alpha: float = 0.05,
    *,
    cluster: ArrayLike | None = None,
) -> PolicyValue:
    """``V(a) - V(b)`` on the same rows, with the paired influence-function standard error.

    ``phi_i = w^a_i (y_i - V_a) / mean(w^a) - w^b_i (y_i - V_b) / mean(w^b)`` and
    ``se^2 = sum_i phi_i^2 / (n (n - 1))``; rows where both policies agree contribute to both terms,
    which is what makes the paired interval much narrower than two separate ones. A policy
    compared with itself gives exactly 0 with se 0.

    Parameters
    ----------
    y, arm, propensity, alpha, cluster
        As :func:`ipw_value`.
    recommended_a, recommended_b : array-like of shape (n,)
        The two policies.

    Returns
    -------
    PolicyValue
        ``n_matched`` counts rows whose assigned arm matches either policy.
    """
    y_, code, own, columns = _design(y, arm, propensity)
    match_a = code == _policy_codes(recommended_a, columns, y_.size, "recommended_a")
    match_b = code == _policy_codes(recommended_b, columns, y_.size, "recommended_b")
    value_a, phi_a = hajek_influence(y_, np.where(match_a, 1.0 / own, 0.0), "recommended_a")
    value_b, phi_b = hajek_influence(y_, np.where(match_b, 1.0 / own, 0.0), "recommended_b")
    return _from_influence(value_a - value_b, phi_a - phi_b, int((match_a | match_b).sum()), alpha,
                           cluster_codes(cluster, y_.size))


@dataclass(frozen=True)
class PolicyTerm:
    """One policy's value in a weighted sum of values on the same rows (:func:`ipw_contrast`).

    Attributes
    ----------
    shares : pandas.DataFrame of shape (n, n_arms)
        Per row, the probability that the policy gives each arm (columns named by arm, a subset of the
        propensity columns; missing arms get 0). A deterministic policy has one 1 per row.
    coefficient : float
        The term's factor in the sum (e.g. ``+N`` and ``-N`` for "N people under policy a rather than b").
    row_weight : array of shape (n,), optional
        Non-negative weight of each row in the population the value is about (default 1: the rows as
        they are), e.g. segment size / segment rows to value a plan over its segments' people.
    """

    shares: pd.DataFrame
    coefficient: float = 1.0
    row_weight: np.ndarray | None = None


def _term_weights(term: PolicyTerm, code: np.ndarray, own: np.ndarray, columns: pd.Index, name: str) -> np.ndarray:
    shares = term.shares
    if not isinstance(shares, pd.DataFrame) or len(shares) != code.size:
        raise DataError(f"{name}.shares must be a DataFrame with one row per row of y ({code.size})")
    unknown = [c for c in shares.columns if c not in columns]
    if unknown:
        raise DataError(f"{name}.shares has arm(s) {unknown} that are not propensity columns; valid: {list(columns)}")
    p = shares.reindex(columns=columns, fill_value=0.0).to_numpy(dtype=float)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1 + 1e-9).any() or (p.sum(axis=1) > 1 + 1e-6).any():
        raise SchemaError(f"{name}.shares must hold probabilities in [0, 1] that sum to at most 1 per row")
    weight = p[np.arange(code.size), code] / own
    if term.row_weight is not None:
        r = np.asarray(term.row_weight, dtype=float)
        if r.shape != (code.size,) or not np.isfinite(r).all() or (r < 0).any():
            raise SchemaError(f"{name}.row_weight must be {code.size} finite non-negative numbers")
        weight = weight * r
    return weight


def ipw_contrast(
    y: ArrayLike,
    arm: ArrayLike,
    propensity: pd.DataFrame,
    terms: Sequence[PolicyTerm],
    *,
    alpha: float = 0.05,
    cluster: ArrayLike | None = None,
) -> PolicyValue:
    """``sum_k c_k V_k`` on the same rows: Hajek values of (randomising) policies, paired.

    Each term's value is ``V_k = sum_i w^k_i y_i / sum_i w^k_i`` with
    ``w^k_i = r^k_i * s^k_i(T_i) / P(T_i | x_i)``, where ``s^k_i(a)`` is the probability that policy
    ``k`` gives row ``i`` arm ``a`` and ``r^k_i`` the row's weight. The influence function of the sum is
    ``phi_i = sum_k c_k w^k_i (y_i - V_k) / mean(w^k)`` and ``se^2 = sum_i phi_i^2 / (n (n - 1))``, so
    terms on the same rows are paired exactly as in :func:`ipw_difference` (which is the case
    ``c = (1, -1)`` with one-hot shares).

    Parameters
    ----------
    y, arm, propensity, alpha, cluster
        As :func:`ipw_value`.
    terms : sequence of PolicyTerm
        The policies and their coefficients.

    Returns
    -------
    PolicyValue
        ``n_matched`` counts rows with a positive weight in some term.

    Raises
    ------
    SchemaError
        Shares outside [0, 1] or summing past 1 on a row, negative row weights, or as :func:`ipw_value`.
    DataError
        No terms, a share column that is not an arm, a term whose rows all have weight 0, or as
        :func:`ipw_value`.
    """
    if not terms:
        raise DataError("terms is empty; give at least one policy")
    y_, code, own, columns = _design(y, arm, propensity)
    total, influence = 0.0, np.zeros(y_.size)
    matched = np.zeros(y_.size, dtype=bool)
    for k, term in enumerate(terms):
        weight = _term_weights(term, code, own, columns, f"terms[{k}]")
        value, phi = hajek_influence(y_, weight, f"terms[{k}]")
        total += float(term.coefficient) * value
        influence += float(term.coefficient) * phi
        matched |= weight > 0
    return _from_influence(total, influence, int(matched.sum()), alpha, cluster_codes(cluster, y_.size))


def compare_policies(
    y: ArrayLike,
    arm: ArrayLike,
    propensity: pd.DataFrame,
    policies: Mapping[str, ArrayLike],
    baseline: str,
    *,
    alpha: float = 0.05,
    cluster: ArrayLike | None = None,
) -> pd.DataFrame:
    """Value of every policy and its difference to a baseline policy, each with a CI.

    Parameters
    ----------
    y, arm, propensity, alpha, cluster
        As :func:`ipw_value`.
    policies : mapping of str to array-like of shape (n,)
        Named policies (recommended arm per row), e.g. a model's targeting and
        :func:`single_arm_policies`.
    baseline : str
        The key of ``policies`` to compare against.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``policy`` in the order given; columns ``value``, ``se``, ``lo``, ``hi``,
        ``n_matched``, ``diff``, ``diff_se``, ``diff_lo``, ``diff_hi`` (policy minus baseline)
        and ``share_deviating`` (share of rows where the policy recommends another arm than the
        baseline).

    Raises
    ------
    DataError
        ``baseline`` is not a key of ``policies``, or as :func:`ipw_value`.
    """
    if not policies:
        raise DataError("policies is empty; give at least the baseline policy")
    if baseline not in policies:
        raise DataError(f"baseline {baseline!r} is not one of the policies; valid: {list(policies)}")
    base = _as_labels(policies[baseline], f"policies[{baseline!r}]")
    rows = []
    for name, recommended in policies.items():
        own = ipw_value(y, arm, propensity, recommended, alpha=alpha, cluster=cluster)
        diff = ipw_difference(y, arm, propensity, recommended, base, alpha=alpha, cluster=cluster)
        labels = _as_labels(recommended, f"policies[{name!r}]")
        rows.append(
            {
                "value": own.value,
                "se": own.se,
                "lo": own.lo,
                "hi": own.hi,
                "n_matched": own.n_matched,
                "diff": diff.value,
                "diff_se": diff.se,
                "diff_lo": diff.lo,
                "diff_hi": diff.hi,
                "share_deviating": float(np.mean(labels != base)),
            }
        )
    return pd.DataFrame(rows, index=pd.Index(list(policies), name="policy"))


def single_arm_policies(arms: Sequence[str], n: int) -> dict[str, np.ndarray]:
    """The "everyone gets arm a" policy for every arm (control included).

    Parameters
    ----------
    arms : sequence of str
        Arm names, e.g. the propensity columns.
    n : int
        Number of rows.

    Returns
    -------
    dict of str to ndarray of shape (n,)
        Keyed by arm, each a read-only object array of that arm's name: one value seen through every row (no
        memory per row).
    """
    names = list(arms)
    if not names or len(set(names)) != len(names) or not all(isinstance(a, str) for a in names):
        raise SchemaError(f"arms must be a non-empty sequence of distinct str names, got {names!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise SchemaError(f"n must be a non-negative integer, got {n!r}")
    return {a: np.broadcast_to(np.array(a, dtype=object), (int(n),)) for a in names}
