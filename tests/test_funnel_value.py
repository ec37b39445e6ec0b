"""Value along the funnel: the policy's ``value`` block, labels per event with censoring, the value segment
table, a plan on value and its conversions per event, checked on a hand-made two-event world."""

from __future__ import annotations

from pathlib import Path

import pytest

from uplift.errors import SpecError
from uplift.specs import load_spec, project_root
from uplift.specs.planning import PlanningPolicy, apply_overrides


def _policy_file(tmp_path: Path, block: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("holdout_share: 0.1\n" + block)
    return path


def test_the_shipped_policies_declare_no_value_and_the_funnel_example():
    plain = load_spec(project_root() / "serve" / "policy.yaml", PlanningPolicy)
    assert plain.value is None and plain.value_events is None
    funnel = load_spec(project_root() / "serve" / "policy_funnel.yaml", PlanningPolicy)
    assert [(v.event, v.weight) for v in funnel.value_events] == [
        ("registration", 1), ("advice_conversation", 2), ("application", 5), ("started", 10)]
    # the same rules otherwise
    assert funnel.model_copy(update={"value": None}) == plain


@pytest.mark.parametrize(("block", "expected"), [
    ("value: []\n", "value: Value error, expected at least one funnel event"),
    ("value:\n  - {event: signup, weight: 1, attribution_days: 28}\n",
     "value.0.event: Value error, 'signup' is not a funnel event; expected one of registration"),
    ("value:\n  - {event: registration, weight: 1, attribution_days: 28}\n"
     "  - {event: registration, weight: 2, attribution_days: 40}\n",
     "value: Value error, expected each funnel event once; repeated: registration"),
    ("value:\n  - {event: started, weight: 0, attribution_days: 28}\n",
     "value.0.weight: Input should be greater than 0"),
    ("value:\n  - {event: started, weight: -2, attribution_days: 28}\n",
     "value.0.weight: Input should be greater than 0"),
    ("value:\n  - {event: started, weight: 3}\n", "value.0.attribution_days: Field required"),
    ("value:\n  - {event: started, weight: 3, attribution_days: 0}\n",
     "value.0.attribution_days: Input should be greater than 0"),
])
def test_a_bad_value_block_names_the_file_the_key_and_what_was_expected(tmp_path, block, expected):
    path = _policy_file(tmp_path, block)
    with pytest.raises(SpecError) as err:
        load_spec(path, PlanningPolicy)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_a_value_block_can_be_set_per_call_and_is_checked_again():
    policy = apply_overrides(PlanningPolicy(), {"value": [{"event": "application", "weight": 5,
                                                           "attribution_days": 70}]})
    assert policy.value_events[0].outcome.describe() == "application within 70 days of assignment"
    with pytest.raises(SpecError, match="--set: invalid PlanningPolicy: value.0.weight"):
        apply_overrides(policy, {"value": [{"event": "application", "weight": 0, "attribution_days": 70}]},
                        source="--set")
