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


# ---------------------------------------------------------------------------------------------
# the two-event world, by hand
# ---------------------------------------------------------------------------------------------

Z80 = 1.2815515655446004
TWO_EVENTS = [{"event": "registration", "weight": 1, "attribution_days": 28},
              {"event": "application", "weight": 5, "attribution_days": 70}]


def _costs():
    from uplift.specs.planning import CostCatalogue

    # EUR 0.05 per contact for the first 40% of a segment, EUR 0.10 for the next 30%
    return CostCatalogue.model_validate({"channels": {"meta": {
        "cost_per_mille": 10.0, "impressions_per_contact": 5,
        "tiers": [{"share": 0.4, "multiplier": 1.0}, {"share": 0.3, "multiplier": 2.0}]}}})


def two_event_table():
    """Segments A and B (10,000 people each), one arm on meta. Registrations: A 0.020, B 0.010 per contact;
    applications (weight 5): A 0.001, B 0.004. Value per contact: A 0.020 + 5 x 0.001 = 0.025, B 0.010 +
    5 x 0.004 = 0.030. Own errors only: value sd 0.004, registration 0.002, application 0.001."""
    import pandas as pd

    def rows(outcome, effects, sd, weight, days):
        return pd.DataFrame({"segment": ["A", "B"], "kind": "targetable", "size": 10_000, "arm": "m1@meta",
                             "message": "m1", "channel": "meta", "effect": effects, "effect_sd": sd,
                             "outcome": outcome, "weight": weight, "attribution_days": days})

    return pd.concat([rows("value", [0.025, 0.030], 0.004, float("nan"), float("nan")),
                      rows("registration", [0.020, 0.010], 0.002, 1.0, 28.0),
                      rows("application", [0.001, 0.004], 0.001, 5.0, 70.0)], ignore_index=True)


def _value_policy(**update):
    return PlanningPolicy(holdout_share=0.1, value=TWO_EVENTS, **update)


def test_a_value_plan_on_the_two_event_world_matches_the_hand_calculation():
    from uplift.allocation import plan
    from uplift.funnel import event_conversions, value_plan_tables

    policy = _value_policy()
    table, events = value_plan_tables(two_event_table(), policy)
    assert set(events) == {"registration", "application"} and list(table["effect"]) == [0.025, 0.030]
    # EUR 300: B's cheap tier first (0.030 / 0.05 = 0.6 value per euro: 4,000 contacts, EUR 200), then A's
    # (0.025 / 0.05 = 0.5 per euro: EUR 100 buys 2,000); B's dear tier pays only 0.3 per euro.
    result = plan(table, budget=300.0, costs=_costs(), policy=policy, references=False, prices=False)
    cells, per_event = event_conversions(result.cells, events, policy)
    got = cells.set_index("segment")
    assert got.loc["B", "contacts"] == 4_000 and got.loc["A", "contacts"] == 2_000
    # value 4,000 x 0.030 + 2,000 x 0.025 = 170, variance (4,000 x 0.004)^2 + (2,000 x 0.004)^2 = 320
    assert result.totals.expected_conversions == pytest.approx(170.0)
    assert (result.totals.lo, result.totals.hi) == pytest.approx((170 - Z80 * 320**0.5, 170 + Z80 * 320**0.5))
    # registrations 4,000 x 0.010 + 2,000 x 0.020 = 80; applications 4,000 x 0.004 + 2,000 x 0.001 = 18
    assert got.loc["B", "conversions__registration"] == pytest.approx(40.0)
    assert got.loc["A", "conversions__application"] == pytest.approx(2.0)
    reg, app = per_event
    assert (reg.event, reg.expected, app.event, app.expected) == ("registration", pytest.approx(80.0),
                                                                  "application", pytest.approx(18.0))
    # registration variance (4,000 x 0.002)^2 + (2,000 x 0.002)^2 = 80; application 16 + 4 = 20
    assert (reg.lo, reg.hi) == pytest.approx((80 - Z80 * 80**0.5, 80 + Z80 * 80**0.5))
    assert (app.lo, app.hi) == pytest.approx((18 - Z80 * 20**0.5, 18 + Z80 * 20**0.5))
    # the value adds up from the events
    assert reg.weight * reg.expected + app.weight * app.expected == pytest.approx(result.totals.expected_conversions)


def test_on_registrations_alone_the_same_world_funds_the_other_segment_first():
    from uplift.allocation import plan

    # EUR 200 buys one cheap tier: registrations alone pick A (0.020 > 0.010): 80 registrations;
    # the value picks B (0.030 > 0.025): 40 registrations and 16 applications, value 120 (A's would be 100)
    table = two_event_table()
    registrations = table[table["outcome"] == "registration"].drop(columns=["outcome", "weight", "attribution_days"])
    alone = plan(registrations, budget=200.0, costs=_costs(), policy=PlanningPolicy(holdout_share=0.1),
                 references=False, prices=False)
    assert alone.cells.set_index("segment").loc["A", "contacts"] == 4_000
    assert alone.totals.expected_conversions == pytest.approx(80.0)

    from uplift.funnel import event_conversions, value_plan_tables

    policy = _value_policy()
    value_table, events = value_plan_tables(table, policy)
    on_value = plan(value_table, budget=200.0, costs=_costs(), policy=policy, references=False, prices=False)
    assert on_value.cells.set_index("segment").loc["B", "contacts"] == 4_000
    assert on_value.totals.expected_conversions == pytest.approx(120.0)
    _, (reg, app) = event_conversions(on_value.cells, events, policy)
    assert (reg.expected, app.expected) == (pytest.approx(40.0), pytest.approx(16.0))


def test_a_funnel_table_and_a_policy_must_declare_the_same_value():
    from uplift.errors import DataError
    from uplift.funnel import value_plan_tables

    table = two_event_table()
    with pytest.raises(DataError, match="made for the value 5 x application \\(70 days\\), 1 x registration "
                                        "\\(28 days\\), but the policy declares no value block"):
        value_plan_tables(table, PlanningPolicy())
    other = [{**TWO_EVENTS[0]}, {**TWO_EVENTS[1], "weight": 4}]
    with pytest.raises(DataError, match="but the policy declares 4 x application"):
        value_plan_tables(table, PlanningPolicy(value=other))
    plain = table[table["outcome"] == "registration"].drop(columns=["outcome", "weight", "attribution_days"])
    with pytest.raises(DataError, match="the policy plans on value \\(registration, application\\), but the "
                                        "table has one outcome"):
        value_plan_tables(plain, _value_policy())
    # a plain table and a policy without value: planned as it is
    same, events = value_plan_tables(plain, PlanningPolicy())
    assert same is plain and events == {}


# ---------------------------------------------------------------------------------------------
# labels per event, each in its own window; censored windows left out
# ---------------------------------------------------------------------------------------------


def _handmade_folder(tmp_path: Path) -> Path:
    import handmade

    folder = tmp_path / "inputs"
    folder.mkdir()
    handmade.audience().to_parquet(folder / "audience.parquet", index=False)
    handmade.exposures().to_parquet(folder / "exposures.parquet", index=False)
    handmade.enrolments().to_parquet(folder / "enrolments.parquet", index=False)
    return folder


def test_each_event_is_labelled_in_its_own_window_and_censored_windows_are_left_out(tmp_path):
    import pandas as pd

    import handmade
    from uplift.errors import DataError
    from uplift.specs.planning import ValueEvent
    from uplift.valuepipeline import event_rows, recorded_until

    folder = _handmade_folder(tmp_path)
    until = recorded_until(folder)
    assert until == handmade.T2 + pd.Timedelta(days=27)  # p2's registration, the last recorded time
    # registrations within 28 days: wave 1's windows end by then, wave 2's (T2 + 28 days) do not. p2 registered
    # in wave 2's window already, but the other wave-2 rows cannot say they did not: all three are left out
    reg = event_rows(folder, handmade.SPEC, ValueEvent(event="registration", weight=1, attribution_days=28), until)
    assert reg.censored == 3 and set(reg.table.frame["wave"]) == {1}
    assert dict(zip(reg.table.frame["person_id"], reg.table.frame["outcome"], strict=True)) == {
        "p1": 1, "p2": 0, "p3": 0}  # p3 registered on day 30
    assert "3 row(s) left out: their 28-day window ends after the last recorded time" in reg.describe()
    # advice conversations within 14 days: every window is over; p1's on day 10 of wave 1 is the only one
    advice = event_rows(folder, handmade.SPEC,
                        ValueEvent(event="advice_conversation", weight=2, attribution_days=14), until)
    assert advice.censored == 0 and len(advice.table.frame) == 6
    assert advice.table.economics is None  # without a money value: the conversion rule
    priced = event_rows(folder, handmade.SPEC, ValueEvent(event="advice_conversation", weight=2, attribution_days=14),
                        until, value_per_unit=10.0)
    assert priced.table.economics.value == 20.0  # EUR 10 per unit of value, 2 units per advice conversation
    labelled = advice.table.frame.set_index(["person_id", "wave"])["outcome"]
    assert labelled[("p1", 1)] == 1 and labelled.sum() == 1
    # within 70 days no window is over yet: nothing to learn from, said so
    with pytest.raises(DataError, match="every row's 70-day window ends after the last recorded time"):
        event_rows(folder, handmade.SPEC, ValueEvent(event="application", weight=5, attribution_days=70), until)
    # with data recorded for longer, wave 1's 70-day windows are over
    later = event_rows(folder, handmade.SPEC, ValueEvent(event="application", weight=5, attribution_days=70),
                       handmade.T1 + pd.Timedelta(days=70))
    assert later.censored == 3 and later.table.frame["outcome"].sum() == 0


# ---------------------------------------------------------------------------------------------
# the funnel segment table: the value and each event
# ---------------------------------------------------------------------------------------------


def _two_event_estimates(seed: int = 3, n: int = 6_000):
    """Seeded rows, two arms and a holdout: registration and, among registrants, application; the
    predictions the true effects plus noise. The application estimates lack the first 500 rows (censored)."""
    import numpy as np
    import pandas as pd

    from uplift.data.trainingtable import FeatureColumn, TrainingTable
    from uplift.funnel import EventEstimates
    from uplift.specs.planning import ValueEvent

    rng = np.random.default_rng(seed)
    arms = ("holdout", "m1@meta", "m2@meta")
    arm = rng.choice(arms, n)
    age = rng.integers(18, 68, n)
    gender = rng.choice(["female", "male"], n)
    municipality = rng.choice(["Delft", "Den Haag"], n)
    lift_reg = np.where(arm == "m1@meta", 0.04, np.where(arm == "m2@meta", 0.02, 0.0)) * (1 + (gender == "female"))
    reg = rng.random(n) < 0.05 + lift_reg
    app = reg & (rng.random(n) < np.where(arm == "m2@meta", 0.6, 0.3))
    frame = pd.DataFrame({"person_id": [f"p{i}" for i in range(n)], "wave": 1, "arm": arm, "age": age,
                          "gender": gender, "municipality": municipality,
                          **{f"propensity__{a}": 1 / 3 for a in arms}})
    features = (FeatureColumn("age", "numeric"),)
    preds = {}
    for name, p in (("registration", (0.04, 0.02)), ("application", (0.012, 0.018))):
        scale = 1 + (gender == "female")
        preds[name] = pd.DataFrame({"m1@meta": p[0] * scale + rng.normal(0, 0.005, n),
                                    "m2@meta": p[1] * scale + rng.normal(0, 0.005, n)})

    def estimates(event, weight, days, y, rows):
        table = TrainingTable(frame=frame.assign(outcome=y.astype(int)).iloc[rows].reset_index(drop=True),
                              features=features, arms=arms, control="holdout", outcome=event)
        return EventEstimates(event=ValueEvent(event=event, weight=weight, attribution_days=days), rows=table,
                              predictions=preds[event].iloc[rows].reset_index(drop=True))

    everyone = np.arange(n)
    return [estimates("registration", 1, 28, reg, everyone),
            estimates("application", 5, 70, app, everyone[500:][::-1])]  # another order, censored rows gone


def test_the_value_of_a_cell_sums_the_events_effects_and_errors_by_hand():
    import pandas as pd

    from uplift.errors import DataError
    from uplift.funnel import value_rows
    from uplift.specs.planning import ValueEvent

    def cell(effect, sd, calibration, arm_level):
        return pd.DataFrame({"segment": ["A"], "arm": ["m@meta"], "size": [500], "effect": [effect],
                             "effect_sd": [sd], "calibration_load_1": [calibration], "arm_level_load": [arm_level],
                             "observed": [effect], "model": [effect], "base_rate": [0.01]})

    reg = ValueEvent(event="registration", weight=1, attribution_days=28)
    app = ValueEvent(event="application", weight=5, attribution_days=70)
    # registration: own error sqrt(0.005^2 - 0.003^2) = 0.004; application: sqrt(0.0015^2 - 0.0005^2 - 0.001^2)
    # = 0.001. The value: effect 0.02 + 5 x 0.004 = 0.04, own 0.004 + 5 x 0.001 = 0.009, calibration loading
    # 0.003 + 5 x 0.0005 = 0.0055, arm level 5 x 0.001 = 0.005: sd sqrt(81 + 30.25 + 25) x 1e-3
    value = value_rows([(reg, cell(0.02, 0.005, 0.003, 0.0)), (app, cell(0.004, 0.0015, 0.0005, 0.001))], 0.8)
    row = value.iloc[0]
    assert row["effect"] == pytest.approx(0.04) and row["base_rate"] == pytest.approx(0.06)
    assert (row["calibration_load_1"], row["arm_level_load"]) == pytest.approx((0.0055, 0.005))
    assert row["effect_sd"] == pytest.approx(136.25**0.5 * 1e-3)
    assert (row["lo"], row["hi"]) == pytest.approx((0.04 - Z80 * row["effect_sd"], 0.04 + Z80 * row["effect_sd"]))
    assert row["size"] == 500
    # no wider than the events' intervals added up, no narrower than were they independent
    assert (0.005**2 + (5 * 0.0015) ** 2) ** 0.5 < row["effect_sd"] <= 0.005 + 5 * 0.0015
    other = cell(0.004, 0.0015, 0.0005, 0.001).assign(segment="B")
    with pytest.raises(DataError, match="application: its segment table holds other \\(segment, arm\\) cells"):
        value_rows([(reg, cell(0.02, 0.005, 0.003, 0.0)), (app, other)], 0.8)


def test_the_funnel_table_holds_the_value_and_each_event_on_the_rows_every_event_observes():
    import numpy as np

    from uplift.funnel import funnel_segment_table
    from uplift.specs.segments import SegmentSpec

    spec = SegmentSpec(dimensions=("gender", "municipality"), min_size=50, personas=())
    estimates = _two_event_estimates()
    table = funnel_segment_table(estimates, spec)
    assert list(dict.fromkeys(table["outcome"])) == ["value", "registration", "application"]
    parts = {o: t.set_index(["segment", "arm"]) for o, t in table.groupby("outcome")}
    value, reg, app = parts["value"], parts["registration"], parts["application"]
    assert value.index.equals(reg.index) and value.index.equals(app.index)
    # every table on the same 5,500 rows (the application's censored rows out of the registration's too)
    assert (value["n_treated"] + value["n_control"]).equals(app["n_treated"] + app["n_control"])
    targetable = value["kind"] == "targetable"
    assert value.loc[targetable, "rows"].groupby("arm").sum().tolist() == [5_500, 5_500]
    # the value's effect is 1 x registration's + 5 x application's, cell by cell; so is its observed difference
    # (a randomised difference is linear in the outcome) and its base rate
    assert np.allclose(value["effect"], reg["effect"] + 5 * app["effect"])
    assert np.allclose(value["observed"], reg["observed"] + 5 * app["observed"])
    assert np.allclose(value["base_rate"], reg["base_rate"] + 5 * app["base_rate"])
    # the model's part too: the value's predictions are the weighted sum of the events'
    assert np.allclose(value["model"], reg["model"] + 5 * app["model"], equal_nan=True)
    # every interval is the effect +- z sd, in units of value
    assert np.allclose(value["hi"] - value["effect"], 1.2815515655446004 * value["effect_sd"])
    assert (value["effect_sd"] > 0).all()
    # a planner's table of it plans on value
    from uplift.funnel import value_plan_tables
    from uplift.segments.release import planner_table

    planned, events = value_plan_tables(planner_table(table), PlanningPolicy(value=[
        {"event": "registration", "weight": 1, "attribution_days": 28},
        {"event": "application", "weight": 5, "attribution_days": 70}]))
    assert set(events) == {"registration", "application"} and len(planned) == len(value)
    assert "outcome" not in planned.columns and not planned.isna().any().any()


# ---------------------------------------------------------------------------------------------
# training for a value policy: one model per event, side by side, and the funnel table
# ---------------------------------------------------------------------------------------------


def test_training_for_a_value_policy_registers_one_model_per_event_and_plans_on_value(tmp_path, monkeypatch,
                                                                                      strong_region):
    import json

    import pandas as pd
    import yaml
    from mlflow import MlflowClient

    from conftest import feature_set_for
    from uplift.config import Settings
    from uplift.data.tableio import read_table
    from uplift.simulate import simulate
    from uplift.simulate.world import write_world
    from uplift.tracking.uses import campaign_use
    from uplift.valuepipeline import FUNNEL_ARTIFACT, train_value_and_log

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = tmp_path / "world"
    world = simulate(strong_region, people=5_000, waves=2, seed=5)
    write_world(world, folder)
    spec = tmp_path / "small.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "pooled_small", "learner": "pooled", "cv": {"folds": 2, "test_share": 0.3, "seed": 0},
        "lightgbm": {"n_estimators": 10, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 100}}))
    policy = PlanningPolicy(holdout_share=0.1, value=[
        {"event": "registration", "weight": 1, "attribution_days": 28},
        {"event": "advice_conversation", "weight": 2, "attribution_days": 42}])
    out = tmp_path / "funnel.parquet"
    # data recorded until 30 days after the last assignment: wave 2's 42-day windows are not over, its 28-day
    # ones are, and wave 1's are (waves are 42 days apart)
    last = pd.to_datetime(world.exposures["assigned_at"], utc=True).max()
    result = train_value_and_log(spec, folder, feature_set_for(world), policy,
                                 observed_until=last + pd.Timedelta(days=30),
                                 settings=Settings(workdir=tmp_path, experiment_name="value"), segments_out=out)
    client = MlflowClient()
    assert set(result.models) == {"registration", "advice_conversation"}
    for event, weight, days in (("registration", "1", "28"), ("advice_conversation", "2", "42")):
        model = result.models[event]
        assert model.registered_model == campaign_use(event).registered_name
        tags = client.get_run(model.run_id).data.tags
        assert (tags["funnel_event"], tags["funnel_weight"], tags["funnel_attribution_days"]) == (event, weight, days)
        assert int(tags["funnel_censored_rows"]) == result.censored[event]
        version = client.get_model_version(model.registered_model, str(model.version))
        assert version.tags["funnel_event"] == event and version.tags["funnel_weight"] == weight
    assert result.censored == {"registration": 0, "advice_conversation": int((world.exposures["wave"] == 2).sum())}
    run = client.get_run(result.run_id)
    assert json.loads(run.data.tags["funnel_event_runs"]) == {e: m.run_id for e, m in result.models.items()}
    assert run.data.metrics["censored_rows.advice_conversation"] == result.censored["advice_conversation"]
    assert {a.path for a in client.list_artifacts(result.run_id, "segments")} == {FUNNEL_ARTIFACT}
    written = read_table(out)
    assert set(written["outcome"]) == {"value", "registration", "advice_conversation"}
    assert "converters_treated" not in written.columns  # the planner's table: model estimates only
    assert "group__migration_background" in written.columns  # each segment's composition, for the floors
    # `uplift plan` under the policy finds the latest funnel table made for its value; both models are champions
    from uplift.valuepipeline import latest_funnel_table

    settings = Settings(workdir=tmp_path, experiment_name="value")
    found, label, notes = latest_funnel_table(settings, policy.value_events)
    pd.testing.assert_frame_equal(found, written)
    assert label == f"funnel-value run {result.run_id[:8]}" and notes == []
    from uplift.errors import ModelNotFoundError

    other = PlanningPolicy(value=[{"event": "registration", "weight": 1, "attribution_days": 20}])
    with pytest.raises(ModelNotFoundError, match="no funnel segment table for value = 1 x registration \\(20 days"):
        latest_funnel_table(settings, other.value_events)
    from uplift.valuepipeline import funnel_values

    assert funnel_values(client, "value") == [policy.value_events]  # what the plan form offers


def test_the_values_on_offer_are_the_funnel_runs_latest_first_each_once(tmp_path):
    """Runs that record their events in the tag, or only as parameters, are offered; one that records
    neither, or whose record disagrees with its description, is not."""
    import json

    from mlflow import MlflowClient

    from uplift.funnel.value import describe_value
    from uplift.valuepipeline import FUNNEL_EVENTS_TAG, funnel_values

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("value", artifact_location=str(tmp_path / "artifacts"))
    two = PlanningPolicy(value=[{"event": "registration", "weight": 1, "attribution_days": 28},
                                {"event": "application", "weight": 5, "attribution_days": 70}]).value_events
    one = PlanningPolicy(value=[{"event": "registration", "weight": 2, "attribution_days": 21}]).value_events

    def run(start: int, events, *, tag: bool = True, params: bool = False, described=None) -> None:
        tags = {"funnel_value": described or describe_value(events)}
        if tag:
            tags[FUNNEL_EVENTS_TAG] = json.dumps([e.model_dump(mode="json") for e in events])
        made = client.create_run(experiment, run_name="funnel-value", start_time=start, tags=tags)
        if params:
            for e in events:
                client.log_param(made.info.run_id, f"weight.{e.event}", f"{e.weight:g}")
                client.log_param(made.info.run_id, f"attribution_days.{e.event}", e.attribution_days)

    run(1_000, two)
    run(2_000, one, tag=False, params=True)
    run(3_000, two)
    run(4_000, one, tag=False)  # records no events: not offered
    run(5_000, two, described="value = 3 x registration (28 days)")  # its description is another value's
    client.create_run(experiment, run_name="pooled", start_time=6_000)  # not a funnel run
    assert funnel_values(client, "value") == [two, one]
    assert funnel_values(client, "no such experiment") == []


def test_uplift_plan_on_a_funnel_table_shows_the_value_and_each_events_conversions(tmp_path, workdir):
    import yaml
    from typer.testing import CliRunner

    from uplift.cli import app
    from uplift.data.tableio import read_table, write_table

    segments = write_table(two_event_table(), tmp_path / "funnel.parquet")
    costs = tmp_path / "costs.yaml"
    costs.write_text(yaml.safe_dump(_costs().model_dump(exclude_none=True)))
    policy = tmp_path / "value.yaml"
    policy.write_text(yaml.safe_dump({"holdout_share": 0.1, "value": TWO_EVENTS}))
    out = tmp_path / "plan.csv"
    res = CliRunner().invoke(app, ["plan", "--budget", "300", "--segments", str(segments), "--costs", str(costs),
                                   "--policy", str(policy), "--out", str(out), "--no-prices"])
    assert res.exit_code == 0, res.output
    assert "incr. value (80%)" in res.output and "170.0 [" in res.output
    assert "incremental conversions per event" in res.output
    assert "80.0 [" in res.output and "18.0 [" in res.output  # registrations, applications
    cells = read_table(out).set_index("segment")
    assert cells.loc["B", "conversions__application"] == pytest.approx(16.0)
    # the same table under a policy without the value block is refused, saying why
    plain = tmp_path / "plain.yaml"
    plain.write_text("holdout_share: 0.1\n")
    res = CliRunner().invoke(app, ["plan", "--budget", "300", "--segments", str(segments), "--costs", str(costs),
                                   "--policy", str(plain), "--out", str(out)])
    from uplift.errors import DataError

    assert isinstance(res.exception, DataError) and "but the policy declares no value block" in str(res.exception)


# ---------------------------------------------------------------------------------------------
# a wave's analysis on value
# ---------------------------------------------------------------------------------------------


def test_the_value_difference_is_the_difference_of_mean_values_with_a_welch_interval():
    import numpy as np
    import pandas as pd
    from scipy import stats

    from uplift.design.funnelvalue import value_differences

    # registration (weight 1) and application (weight 5): values 0, 1 or 6 per person
    frame = pd.DataFrame({
        "arm": ["holdout"] * 4 + ["m@meta"] * 5,
        "registration": [0, 0, 1, 1, 1, 1, 1, 0, 0],
        "application": [0, 0, 0, 1, 1, 1, 0, 0, 0],
    })
    frame["value"] = frame["registration"] + 5 * frame["application"]
    table = value_differences(frame, control="holdout", alpha=0.05, events=["registration", "application"])
    control, arm = table.iloc[0], table.iloc[1]
    # holdout: 0, 0, 1, 6 -> 7 / 4 = 1.75; the arm: 6, 6, 1, 0, 0 -> 13 / 5 = 2.6; difference 0.85
    assert (control["n"], control["converters"], control["value_per_person"]) == (4, 2, 1.75)
    assert (arm["n"], arm["converters"], arm["value_per_person"]) == (5, 3, 2.6)
    assert arm["difference"] == pytest.approx(0.85)
    welch = stats.ttest_ind([6, 6, 1, 0, 0], [0, 0, 1, 6], equal_var=False)
    assert arm["p_value"] == pytest.approx(welch.pvalue)
    assert (arm["ci_low"], arm["ci_high"]) == pytest.approx(tuple(welch.confidence_interval(0.95)))
    # the variance by hand: arm values have variance 39.2 / 4 = 9.8 (n 5), holdout 24.75 / 3 = 8.25 (n 4):
    # se^2 = 1.96 + 2.0625
    assert ((arm["ci_high"] - arm["ci_low"]) / 2 / stats.t.ppf(0.975, arm["df"])) ** 2 == pytest.approx(4.0225)
    assert np.isnan(control["difference"])


def test_a_persons_value_is_left_out_where_any_of_its_windows_is_not_over():
    import pandas as pd

    import handmade
    from uplift.design.funnelvalue import funnel_outcomes
    from uplift.specs.planning import ValueEvent

    events = [ValueEvent(event="registration", weight=1, attribution_days=28),
              ValueEvent(event="advice_conversation", weight=2, attribution_days=14)]
    rows = handmade.exposures()
    got = funnel_outcomes(rows, handmade.enrolments(), events, handmade.T2 + pd.Timedelta(days=20))
    # wave 2's 28-day windows are not over on day 20, its 14-day ones are
    assert got.censored == {"registration": 3, "advice_conversation": 0}
    by = got.frame.assign(wave=rows["wave"]).set_index(["person_id", "wave"])
    assert by.loc[("p1", 1), "value"] == 3.0  # registered on day 3, advice conversation on day 10
    assert by.loc[("p3", 1), "value"] == 0.0  # registered on day 30: outside the window
    assert by.xs(2, level="wave")["value"].isna().all() and by.xs(2, level="wave")["advice_conversation"].eq(0).all()


def test_uplift_experiment_analyze_reports_each_event_and_the_value(workdir):
    import numpy as np
    import pandas as pd
    import yaml
    from typer.testing import CliRunner

    from uplift.cli import app
    from uplift.data.tableio import read_table, write_table

    rng = np.random.default_rng(0)
    start = pd.Timestamp("2025-07-21", tz="UTC")
    n = {"holdout": 2000, "fresh_start@meta": 4000}
    rows, events = [], []
    for arm, count in n.items():
        for _ in range(count):
            pid = f"p{len(rows):06d}"
            msg, ch = ("none", "none") if arm == "holdout" else arm.split("@")
            rows.append((pid, 5, arm, msg, ch, start, count / 6000, 0.0))
            if rng.random() < (0.04 if arm == "holdout" else 0.08):
                events.append((pid, "registration", start + pd.Timedelta(days=3)))
                if rng.random() < 0.5:
                    events.append((pid, "application", start + pd.Timedelta(days=40)))
    ex = pd.DataFrame(rows, columns=["person_id", "wave", "arm", "message", "channel", "assigned_at",
                                     "assignment_probability", "cost_eur"])
    en = pd.DataFrame(events + [("p000000", "completed", start + pd.Timedelta(days=90))],
                      columns=["person_id", "event", "occurred_at"])
    write_table(ex, workdir / "ex.parquet")
    write_table(en, workdir / "en.parquet")
    raw = yaml.safe_load((project_root() / "experiments" / "wave5.yaml").read_text())
    raw.update(name="one-arm", arms=["fresh_start@meta"], arm_weights={"fresh_start@meta": 1.0}, holdout_share=1 / 3)
    spec = workdir / "one-arm.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    policy = workdir / "value.yaml"
    policy.write_text(yaml.safe_dump({"value": TWO_EVENTS}))
    res = CliRunner().invoke(app, ["experiment", "analyze", "--spec", str(spec), "--exposures",
                                   str(workdir / "ex.parquet"), "--enrolments", str(workdir / "en.parquet"),
                                   "--out", str(workdir / "an.csv"), "--value-policy", str(policy)])
    assert res.exit_code == 0, res.output
    assert "Each event in its own window" in res.output and "The value per person" in res.output
    value = read_table(workdir / "an.value.csv").set_index("arm")
    # about 0.04 x (1 + 0.5 x 5) = 0.14 on the holdout and 0.28 with the message: +0.14
    assert value.loc["fresh_start@meta", "ci_low"] < 0.14 < value.loc["fresh_start@meta", "ci_high"]
    assert value.loc["fresh_start@meta", "ci_low"] > 0
    assert (value["n"] % 5 == 0).all() and value.loc["holdout", "n"] == 2000


class _Tables:
    """A stand-in for the service's funnel tables: ``table`` for every value, or none (ModelNotFoundError)."""

    def __init__(self, table=None):
        self.table = table

    def latest(self, events, model_run_id):
        from uplift.api.valuetables import FunnelTable
        from uplift.errors import ModelNotFoundError

        if self.table is None:
            raise ModelNotFoundError("no funnel segment table for value = 1 x registration (28 days) + 5 x "
                                     "application (70 days) in experiment 'uplift'")
        return FunnelTable(table=self.table, run_id="0123456789abcdef", label="funnel-value run 01234567",
                           notes=("application: the table's model is uplift-application v1, the champion is v2",))


def _bundle():
    from types import SimpleNamespace

    return SimpleNamespace(name="uplift-registration", version=1, run_id="abc", compute=None, places=None)


def test_the_service_refuses_a_value_saying_what_is_missing():
    import re

    from uplift.api.handlers import RequestFieldError
    from uplift.api.planning import PlanService
    from uplift.api.schemas import PlanRequest

    request = PlanRequest.model_validate({"budget": 100.0, "policy": {"value": TWO_EVENTS}})
    for tables, message in ((None, "this service has no funnel segment tables to plan on value with"),
                            (_Tables(), "no funnel segment table for value = 1 x registration (28 days)")):
        service = PlanService(costs=_costs(), policy=PlanningPolicy(), min_segment_size=10, cache_size=0,
                              funnel_tables=tables)
        with pytest.raises(RequestFieldError, match=re.escape(message)) as caught:
            service.compute(_bundle(), request)
        assert caught.value.loc == ("body", "policy", "value")


def test_the_service_plans_on_value_as_the_hand_calculation_says():
    import json

    from uplift.api.planning import PlanService
    from uplift.api.schemas import PlanRequest

    service = PlanService(costs=_costs(), policy=PlanningPolicy(holdout_share=0.1), min_segment_size=10,
                          cache_size=0, funnel_tables=_Tables(two_event_table()))
    body = json.loads("{" + service.compute(_bundle(), PlanRequest.model_validate(
        {"budget": 300.0, "policy": {"value": TWO_EVENTS}, "include_references": False})).fragment + "}")
    value = body["value"]
    # as the CLI's plan at EUR 300: value 170, 80 registrations, 18 applications (own errors only)
    assert value["expected_value"] == pytest.approx(170.0) == body["totals"]["expected_conversions"]
    assert value["description"] == "1 x registration (28 days) + 5 x application (70 days)"
    assert value["source"] == "funnel-value run 01234567"
    registration, application = value["events"]
    assert registration["expected_conversions"] == pytest.approx(80.0)
    assert application["expected_conversions"] == pytest.approx(18.0)
    # registrations: 4,000 B contacts x sd 0.002 and 2,000 A contacts x 0.002: sd sqrt(8^2 + 4^2)
    assert registration["hi"] - registration["expected_conversions"] == pytest.approx(Z80 * (80.0) ** 0.5, abs=1e-3)
    assert "application: the table's model is uplift-application v1, the champion is v2" in body["notes"]


def test_the_rules_of_a_value_plan_are_priced_in_expected_value():
    from uplift.cli.plan import _rules_table

    assert _rules_table([], "80%", on_value=True).title == "The rules and their price (expected value)"
    assert _rules_table([], "80%").title == "The rules and their price (expected conversions)"
