"""The planner's declarations (uplift.specs.planning): the shipped cost catalogue and policy, and the checks on
costs, overrides, floor confidence and segment kinds."""

from __future__ import annotations

import pytest

from allocation_worlds import SERVE
from uplift.errors import SpecError
from uplift.specs import load_spec
from uplift.specs.planning import CostCatalogue, PlanningPolicy, apply_overrides


def test_default_declarations_load(costs):
    policy = load_spec(SERVE / "policy.yaml", PlanningPolicy)
    assert set(costs.channels) == {"meta", "linkedin", "flyer", "email"}
    assert costs.channel("meta").unit_cost == pytest.approx(7.5 * 4 / 1000)
    assert costs.channel("linkedin").unit_cost > costs.channel("meta").unit_cost
    assert costs.channel("linkedin").reachable_share < costs.channel("meta").reachable_share
    assert 0 < policy.exploration_share < 1 and policy.interval == 0.8


@pytest.mark.parametrize(
    ("channel", "match"),
    [
        ({"cost_per_mille": 5.0, "tiers": [{"share": 0.5, "multiplier": 1}]}, "must be given together"),
        ({"cost_per_contact": 0.1, "tiers": [{"share": 0.5, "multiplier": 2}, {"share": 0.2, "multiplier": 1}]},
         "must not decrease"),
        ({"cost_per_contact": 0.1, "tiers": [{"share": 0.7, "multiplier": 1}, {"share": 0.5, "multiplier": 2}]},
         "expected at most 1"),
    ],
)
def test_bad_cost_catalogue_is_a_spec_error(tmp_path, channel, match):
    import yaml

    path = tmp_path / "costs.yaml"
    path.write_text(yaml.safe_dump({"channels": {"meta": channel}}))
    with pytest.raises(SpecError, match=match):
        load_spec(path, CostCatalogue)


def test_overrides_are_validated_and_name_the_field():
    policy = PlanningPolicy(min_spend={"flyer": 100.0})
    changed = apply_overrides(policy, {"min_spend.meta": 50, "holdout_share": 0.2})
    assert changed.min_spend == {"flyer": 100.0, "meta": 50.0} and changed.holdout_share == 0.2
    assert policy.holdout_share == 0.1  # the original is untouched
    with pytest.raises(SpecError, match="holdout_share"):
        apply_overrides(policy, {"holdout_share": 1.5})
    with pytest.raises(SpecError, match="'holdot' is not a field of PlanningPolicy"):
        apply_overrides(policy, {"holdot": 0.2})
    with pytest.raises(SpecError, match="min_spend exceeds max_spend"):
        apply_overrides(policy, {"max_spend": {"flyer": 50.0}})


def test_confidence_applies_to_conversion_floors_only():
    floor = {"name": "women", "where": {"gender": "female"}, "min_share": 0.4}
    with pytest.raises(ValueError, match="confidence: applies to conversion_share floors only"):
        PlanningPolicy(fairness_floors=[{**floor, "kind": "spend_share", "confidence": 0.9}])
    for bad in (0.4, 1.0):
        with pytest.raises(ValueError, match="confidence"):
            PlanningPolicy(fairness_floors=[{**floor, "kind": "conversion_share", "confidence": bad}])
    with pytest.raises(SpecError, match="fairness_floors"):
        apply_overrides(PlanningPolicy(), {"fairness_floors": [{**floor, "kind": "spend_share", "confidence": 0.9}]})


@pytest.mark.parametrize("kinds", [["everyone"], []])
def test_segment_kinds_are_checked(kinds):
    floor = {"name": "w", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.4,
             "segment_kinds": kinds}
    with pytest.raises(SpecError, match="segment_kinds"):
        apply_overrides(PlanningPolicy(), {"fairness_floors": [floor]})
