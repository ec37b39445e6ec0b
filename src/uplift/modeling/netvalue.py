"""Net-value targeting: whom to treat with which arm when every contact costs money.

Per person and treatment arm the rule's score is the net value of the arm over no contact,
``value * uplift_a - price * (cost_a - cost_control)``; the person gets the arm with the largest
positive score and no arm (the control) when none is positive. ``price`` is 1 unless a budget binds;
then it is the smallest ``price >= 1`` whose rule spends at most the budget per person (the
Lagrangian form of a budgeted allocation: a euro is worth ``price`` euros of value). The estimates
are shrunk towards the arm averages (:func:`uplift.modeling.targeting.shrink`) by a factor chosen on
out-of-fold rows by the IPW *net* value of the resulting rule, with the one-standard-error rule, as
for conversions (:func:`uplift.modeling.targeting.choose_shrinkage`). With every cost 0 the rule,
its values and its choice are those of the conversion rule exactly.

A policy's net value per person is ``value * V(pi) - mean_i cost_i(pi(x_i))``: the Hajek IPW value
``V`` of the outcome (:mod:`uplift.modeling.policyvalue`) and the mean cost of what the policy gives,
known for every row. Its influence function is ``value * phi_V - (cost_i - mean cost)``, paired across
policies on the same rows and summed within clusters when people were randomised in groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from uplift.economics import Economics
from uplift.errors import DataError
from uplift.modeling.ipw import hajek_influence
from uplift.modeling.metrics import _as_labels
from uplift.modeling.policyvalue import (
    PolicyValue,
    _design,
    _from_influence,
    _policy_codes,
    cluster_codes,
)
from uplift.modeling.targeting import recommend, shrink

__all__ = [
    "NetRule",
    "net_effects",
    "recommend_net",
    "budget_price",
    "policy_spend",
    "net_value",
    "net_difference",
    "compare_net_policies",
    "choose_net_rule",
    "best_net_arm",
]


def net_effects(effects: pd.DataFrame, costs: pd.DataFrame, value: float, *, price: float = 1.0) -> pd.DataFrame:
    """``effects - price * costs / value`` per arm: net value in conversions (``costs``: incremental cost per row
    and treatment arm, :meth:`~uplift.economics.Economics.incremental_costs`)."""
    c = costs.reindex(columns=effects.columns).to_numpy(float)
    if np.isnan(c).any():
        raise DataError(f"costs lack arm(s) of the effects; costs: {list(costs.columns)}, "
                        f"effects: {list(effects.columns)}")
    return pd.DataFrame(effects.to_numpy(float) - (price * c) / value, columns=effects.columns, index=effects.index)


def recommend_net(effects: pd.DataFrame, costs: pd.DataFrame, *, value: float, control: str,
                  price: float = 1.0) -> np.ndarray:
    """The arm of largest positive net value per row; the control (no contact) where none pays."""
    return recommend(net_effects(effects, costs, value, price=price), control)


def policy_spend(recommended: np.ndarray, costs: pd.DataFrame) -> float:
    """Mean incremental cost per row of giving each row its recommended arm (the control costs 0)."""
    col = pd.Index(costs.columns).get_indexer(np.asarray(recommended, dtype=object))
    c = costs.to_numpy(float)
    return float(np.where(col >= 0, c[np.arange(len(c)), np.maximum(col, 0)], 0.0).mean()) if len(c) else 0.0


def budget_price(effects: pd.DataFrame, costs: pd.DataFrame, *, value: float, control: str, budget: float,
                 iterations: int = 60) -> float:
    """The smallest ``price >= 1`` at which :func:`recommend_net` spends at most ``budget`` per row.

    The spend of the Lagrangian rule does not grow with the price, so the price is found by
    bisection (``iterations`` halvings of the bracket).
    """
    def spend(price: float) -> float:
        return policy_spend(recommend_net(effects, costs, value=value, control=control, price=price), costs)

    if spend(1.0) <= budget:
        return 1.0
    c = costs.reindex(columns=effects.columns).to_numpy(float)
    gain = value * effects.to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(c > 0, gain / c, 0.0)
    lo, hi = 1.0, max(2.0, float(np.nanmax(ratio)) * 1.01 + 1.0)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if spend(mid) <= budget else (mid, hi)
    return hi


def _net_influence(y: ArrayLike, arm: ArrayLike, propensity: pd.DataFrame, costs: pd.DataFrame, value: float,
                   policies: Sequence[tuple[ArrayLike, float]]) -> tuple[float, np.ndarray, int]:
    """``sum_k c_k NV(pi_k)`` and its influence function; ``costs``: full cost per row and arm (control too)."""
    y_, code, own, columns = _design(y, arm, propensity)
    missing = [a for a in columns if a not in costs.columns]
    if missing or len(costs) != y_.size:
        raise DataError(f"costs must have one row per row of y ({y_.size}) and a column per arm; missing {missing}")
    cost = costs[list(columns)].to_numpy(float)
    rows = np.arange(y_.size)
    total, influence, matched = 0.0, np.zeros(y_.size), np.zeros(y_.size, dtype=bool)
    for k, (recommended, coefficient) in enumerate(policies):
        pc = _policy_codes(recommended, columns, y_.size, f"policies[{k}]")
        match = code == pc
        v, phi = hajek_influence(y_, np.where(match, 1.0 / own, 0.0), f"policies[{k}]")
        c = cost[rows, pc]
        mean_cost = float(c.mean())
        total += coefficient * (value * v - mean_cost)
        influence += coefficient * (value * phi - (c - mean_cost))
        matched |= match
    return total, influence, int(matched.sum())


def net_value(y: ArrayLike, arm: ArrayLike, propensity: pd.DataFrame, recommended: ArrayLike, *,
              costs: pd.DataFrame, value: float, alpha: float = 0.05, cluster: ArrayLike | None = None) -> PolicyValue:
    """Net value per person of a deterministic policy, ``value * V(pi) - mean cost``, with its CI.

    Parameters
    ----------
    y, arm, propensity, recommended, alpha, cluster
        As :func:`uplift.modeling.policyvalue.ipw_value`.
    costs : pandas.DataFrame of shape (n, n_arms)
        Each row's contact cost of every arm, the control included
        (:meth:`~uplift.economics.Economics.cost_matrix`).
    value : float
        Value of one conversion.
    """
    total, influence, matched = _net_influence(y, arm, propensity, costs, value, [(recommended, 1.0)])
    return _from_influence(total, influence, matched, alpha, cluster_codes(cluster, influence.size))


def net_difference(y: ArrayLike, arm: ArrayLike, propensity: pd.DataFrame, recommended_a: ArrayLike,
                   recommended_b: ArrayLike, *, costs: pd.DataFrame, value: float, alpha: float = 0.05,
                   cluster: ArrayLike | None = None) -> PolicyValue:
    """``NV(a) - NV(b)`` on the same rows with the paired standard error (as :func:`net_value`)."""
    total, influence, matched = _net_influence(y, arm, propensity, costs, value,
                                               [(recommended_a, 1.0), (recommended_b, -1.0)])
    return _from_influence(total, influence, matched, alpha, cluster_codes(cluster, influence.size))


def compare_net_policies(y: ArrayLike, arm: ArrayLike, propensity: pd.DataFrame, policies: Mapping[str, ArrayLike],
                         baseline: str, *, costs: pd.DataFrame, value: float, alpha: float = 0.05,
                         cluster: ArrayLike | None = None) -> pd.DataFrame:
    """Net value per person of every policy and its paired difference to ``baseline``, each with a CI.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``policy``; ``value``, ``se``, ``lo``, ``hi``, ``n_matched``, ``diff``, ``diff_se``,
        ``diff_lo``, ``diff_hi``, ``share_deviating`` (as
        :func:`uplift.modeling.policyvalue.compare_policies`) and ``spend`` (mean cost per person).
    """
    if baseline not in policies:
        raise DataError(f"baseline {baseline!r} is not one of the policies; valid: {list(policies)}")
    base = _as_labels(policies[baseline], f"policies[{baseline!r}]")
    rows = []
    for name, recommended in policies.items():
        own = net_value(y, arm, propensity, recommended, costs=costs, value=value, alpha=alpha, cluster=cluster)
        diff = net_difference(y, arm, propensity, recommended, base, costs=costs, value=value, alpha=alpha,
                              cluster=cluster)
        labels = _as_labels(recommended, f"policies[{name!r}]")
        col = pd.Index(costs.columns).get_indexer(labels)
        spend = float(costs.to_numpy(float)[np.arange(len(labels)), col].mean())
        rows.append({"value": own.value, "se": own.se, "lo": own.lo, "hi": own.hi, "n_matched": own.n_matched,
                     "diff": diff.value, "diff_se": diff.se, "diff_lo": diff.lo, "diff_hi": diff.hi,
                     "share_deviating": float(np.mean(labels != base)), "spend": spend})
    return pd.DataFrame(rows, index=pd.Index(list(policies), name="policy"))


def best_net_arm(mean_effects: pd.Series, costs: pd.DataFrame, *, value: float, control: str) -> str:
    """The arm whose average net value (``value * mean effect - mean incremental cost``) is largest and
    positive; the control when no arm pays on average."""
    net = value * mean_effects - costs.reindex(columns=mean_effects.index).mean()
    arm = net.idxmax()
    return str(arm) if net[arm] > 0 else control


@dataclass(frozen=True)
class NetRule:
    """The chosen net-value rule: shrinkage ``lam``, budget ``price`` (1: no budget binds) and the out-of-fold
    net value of every candidate factor (index ``lam``: ``value``, ``se``, ``lo``, ``hi``, ``diff_to_best``,
    ``diff_se``, ``price``, ``spend``; value units per person)."""

    lam: float
    price: float
    table: pd.DataFrame

    def recommend(self, effects: pd.DataFrame, mean_effects: pd.Series, costs: pd.DataFrame, *, value: float,
                  control: str) -> np.ndarray:
        """The rule on new rows (``costs``: incremental, per treatment arm)."""
        return recommend_net(shrink(effects, mean_effects, self.lam), costs, value=value, control=control,
                             price=self.price)


def choose_net_rule(
    effects: pd.DataFrame,
    mean_effects: pd.Series,
    *,
    y: np.ndarray,
    arm: np.ndarray,
    propensity: pd.DataFrame,
    costs: pd.DataFrame,
    economics: Economics,
    control: str,
    grid: tuple[float, ...],
    one_se_rule: bool = True,
    cluster: ArrayLike | None = None,
) -> NetRule:
    """Pick the shrinkage factor whose rule has the best IPW net value on (out-of-fold) rows.

    For each factor the budget price is set on these rows (:func:`budget_price`) when a budget is
    declared. With ``one_se_rule`` the smallest factor within one paired standard error of the best is
    taken. Values are compared in conversions (net value / ``value``), so a rule without costs is
    chosen exactly as :func:`~uplift.modeling.targeting.choose_shrinkage` chooses.

    Parameters
    ----------
    effects : out-of-fold effect estimates, one column per treatment arm.
    mean_effects : the arm averages the estimates are shrunk towards.
    y, arm, propensity, cluster : the rows' outcome, assigned arm, assignment probabilities and clusters.
    costs : each row's contact cost of every arm, the control included.
    economics : value of a conversion and the budget.
    """
    v = economics.value
    treat = list(effects.columns)
    inc = costs[treat].sub(costs[control], axis=0)
    scaled = costs / v
    recs, prices = {}, {}
    for lam in sorted(grid):
        shrunk = shrink(effects, mean_effects, lam)
        price = (budget_price(shrunk, inc, value=v, control=control, budget=economics.budget_per_person)
                 if economics.budget_per_person is not None else 1.0)
        recs[lam], prices[lam] = recommend_net(shrunk, inc, value=v, control=control, price=price), price
    rows = []
    for lam, rec in recs.items():
        nv = net_value(y, arm, propensity, rec, costs=scaled, value=1.0, cluster=cluster)
        rows.append({"lam": lam, "value": nv.value, "se": nv.se, "lo": nv.lo, "hi": nv.hi})
    table = pd.DataFrame(rows).set_index("lam")
    best = float(table["value"].idxmax())
    gaps = {lam: net_difference(y, arm, propensity, recs[lam], recs[best], costs=scaled, value=1.0, cluster=cluster)
            for lam in recs}
    table["diff_to_best"] = [gaps[lam].value for lam in table.index]
    table["diff_se"] = [gaps[lam].se for lam in table.index]
    lam = float(table.index[table["diff_to_best"] >= -table["diff_se"]].min()) if one_se_rule else best
    table[["value", "se", "lo", "hi", "diff_to_best", "diff_se"]] *= v
    table["price"] = [prices[x] for x in table.index]
    table["spend"] = [policy_spend(recs[x], inc) for x in table.index]
    return NetRule(lam=lam, price=prices[lam], table=table)
