"""The net-value view of the targeting benchmark: every learner's rule when a contact costs money.

At each cost per contact (the same for every treatment arm; the control costs nothing) and a value per
conversion, on the out-of-fold predictions of every learner (the same folds for all):

* ``<learner>:targeted``: the net-value rule (:mod:`uplift.modeling.netvalue`), its shrinkage factor chosen for
  each fold by IPW net value on the other folds' out-of-fold rows, one-standard-error rule;
* ``<learner>:argmax``: the arm of largest estimated net value per person, no arm when none pays (argmax with
  costs, as one would use causalml's estimates);
* ``all:<arm>``: everyone gets the arm (``all:<control>``: treat no one).

Each is valued by IPW net value per person on all rows, with its 95% interval, and paired with the reference
rule (the first learner's targeted rule): ``diff`` is ``policy - reference`` on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.data.trainingtable import TrainingTable
from uplift.economics import Economics
from uplift.modeling.netvalue import choose_net_rule, compare_net_policies, recommend_net
from uplift.modeling.policyvalue import single_arm_policies
from uplift.specs.model import ModelSpec

__all__ = ["NetLevels", "net_recommendations", "net_comparison"]


@dataclass(frozen=True)
class NetLevels:
    """A value per conversion and the contact costs to run the view at (one cost for every treatment arm)."""

    value: float
    costs: tuple[float, ...]

    def economics(self, cost: float, table: TrainingTable) -> Economics:
        return Economics(value=self.value, costs={a: cost for a in table.treatment_arms})


def _crossfitted_net_rule(oof: pd.DataFrame, means: list[pd.Series], folds: np.ndarray, table: TrainingTable,
                          spec: ModelSpec, econ: Economics) -> tuple[np.ndarray, float]:
    """The net rule per row: for fold k its factor is chosen on the other folds' out-of-fold rows."""
    f = table.frame
    full = econ.cost_matrix(f, table.arms)
    inc = full[list(table.treatment_arms)].sub(full[table.control], axis=0)
    out = np.empty(len(f), dtype=object)
    lams = []
    for k, mean in enumerate(means):
        own, other = folds == k, folds != k
        rule = choose_net_rule(
            oof[other], mean, y=f["outcome"].to_numpy()[other], arm=f["arm"].to_numpy()[other],
            propensity=table.propensity()[other], costs=full[other], economics=econ, control=table.control,
            grid=spec.targeting.shrinkage_grid, one_se_rule=spec.targeting.one_se_rule,
        )
        out[own] = rule.recommend(oof[own], mean, inc[own], value=econ.value, control=table.control)
        lams.append(rule.lam)
    return out, float(np.mean(lams))


def net_recommendations(oof: pd.DataFrame, means: list[pd.Series], folds: np.ndarray, table: TrainingTable,
                        spec: ModelSpec, levels: NetLevels) -> dict[float, dict[str, tuple[np.ndarray, float]]]:
    """Per cost: the learner's targeted rule and its argmax with costs (recommendations, mean factor λ)."""
    out = {}
    for cost in levels.costs:
        econ = levels.economics(cost, table)
        inc = econ.incremental_costs(table.frame, table.treatment_arms, table.control)
        out[cost] = {"targeted": _crossfitted_net_rule(oof, means, folds, table, spec, econ),
                     "argmax": (recommend_net(oof, inc, value=econ.value, control=table.control), 1.0)}
    return out


def net_comparison(table: TrainingTable, recs: dict[str, dict[float, dict[str, tuple[np.ndarray, float]]]],
                   levels: NetLevels) -> pd.DataFrame:
    """Net value of every learner's rules and of the fixed policies at every cost, paired with the first learner's
    targeted rule. ``recs``: learner -> :func:`net_recommendations`.

    Returns
    -------
    DataFrame: cost, policy, value, lo, hi, diff, diff_lo, diff_hi (``policy - reference``), spend, lam.
    """
    f = table.frame
    y, arm, prop = f["outcome"].to_numpy(), f["arm"].to_numpy(), table.propensity()
    reference = f"{next(iter(recs))}:targeted"
    rows = []
    for cost in levels.costs:
        econ = levels.economics(cost, table)
        policies, lams = {}, {}
        for learner, per_cost in recs.items():
            for kind, (rec, lam) in per_cost[cost].items():
                policies[f"{learner}:{kind}"], lams[f"{learner}:{kind}"] = rec, lam
        policies.update({f"all:{a}": v for a, v in single_arm_policies(list(table.arms), len(f)).items()})
        compared = compare_net_policies(y, arm, prop, policies, reference, costs=econ.cost_matrix(f, table.arms),
                                        value=econ.value, cluster=table.clusters)
        compared = compared.rename_axis("policy").reset_index()
        compared["lam"] = compared["policy"].map(lams)
        rows.append(compared[["policy", "value", "lo", "hi", "diff", "diff_lo", "diff_hi", "spend", "lam"]]
                    .assign(cost=cost))
    return pd.concat(rows, ignore_index=True)
