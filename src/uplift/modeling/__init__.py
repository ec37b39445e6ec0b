"""Uplift modelling: multi-treatment learners, their evaluation (metrics, policy value) and targeting."""

from uplift.modeling.metrics import (
    arm_metrics,
    auuc,
    decile_uplift,
    pairwise_ipw_weights,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
    uplift_curve,
)
from uplift.modeling.policyvalue import (
    PolicyValue,
    compare_policies,
    ipw_difference,
    ipw_value,
    single_arm_policies,
)

__all__ = [
    # metrics
    "uplift_curve",
    "qini_curve",
    "qini_coefficient",
    "auuc",
    "uplift_at_k",
    "decile_uplift",
    "arm_metrics",
    "pairwise_ipw_weights",
    # policy value
    "PolicyValue",
    "ipw_value",
    "ipw_difference",
    "compare_policies",
    "single_arm_policies",
]
