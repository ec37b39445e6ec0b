"""A model trained with costs end to end: ``uplift train --experiment-csv`` with a mapping that declares economics,
the logged model's net values and recommended arm, the gate judging by net value; campaign economics; scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from test_netvalue import SPEC, _experiment, _mapping
from uplift.adapters import load_experiment_csv
from uplift.economics import campaign_economics
from uplift.errors import SchemaError
from uplift.modeling.validation import validate_model
from uplift.scoring import NET_PREFIX, UPLIFT_PREFIX, score_features
from uplift.tracking.evidence import policy_evidence
from uplift.tracking.modellog import bundle_pyfunc
from uplift.tracking.pyfunc import UpliftPyfunc


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    frame = _experiment(6000, seed=1)
    frame["a_cost"] = np.where(frame["z"] > 1.5, 4.0, 1.0)  # a few people are dear to reach with A
    path = tmp_path_factory.mktemp("nvm") / "experiment.csv"
    frame.to_csv(path, index=False)
    table = load_experiment_csv(path, _mapping(economics={"value": 10.0, "costs": {"A": "a_cost", "B": 1.0}}))
    return validate_model(SPEC, table)


def test_the_logged_model_gives_net_values_and_the_rules_arm(report):
    pyfunc = bundle_pyfunc(report, segments=None, segment_spec=None)
    assert pyfunc.cost_columns == ["a_cost"] and pyfunc.rule_economics.value == 10.0
    rows = report.test.frame[["x", "z", "a_cost"]].reset_index(drop=True)
    out = score_features(rows, model=pyfunc)
    shrunk = pyfunc.effects(rows[["x", "z"]], shrunk=True)
    np.testing.assert_allclose(out[NET_PREFIX + "a"], 10 * shrunk["a"] - rows["a_cost"])
    np.testing.assert_allclose(out[NET_PREFIX + "b"], 10 * shrunk["b"] - 1.0)
    expected = np.where(out[[NET_PREFIX + "a", NET_PREFIX + "b"]].max(axis=1) > 0,
                        out[[NET_PREFIX + "a", NET_PREFIX + "b"]].idxmax(axis=1).str.removeprefix(NET_PREFIX), "ctl")
    assert list(out["best_arm"]) == list(expected)  # no budget: the price of a euro is 1
    treated = out["best_arm"] != "ctl"
    assert (out.loc[treated, "best_net"] > 0).all() and (out.loc[~treated, "best_net"] == 0).all()
    dear = (rows["a_cost"] == 4.0).to_numpy()
    assert (out.loc[dear, "best_arm"] != "a").all()  # 10 x 0.3 = 3 < 4: never worth A at that cost
    assert list(out.columns[:2]) == [UPLIFT_PREFIX + "a", UPLIFT_PREFIX + "b"]
    with pytest.raises(SchemaError, match="missing column 'a_cost' with the contact cost of arm 'a'"):
        score_features(rows[["x", "z"]], model=pyfunc)


def test_the_gate_judges_experiment_models_by_net_value(report):
    challenger = bundle_pyfunc(report, segments=None, segment_spec=None)
    cost_blind = UpliftPyfunc(report.model, 1.0)  # treats everyone an arm helps, whatever it costs
    evidence = policy_evidence(report.test, challenger, cost_blind, confidence=0.95, same_data=True)
    assert evidence.metric == "net value of the targeting rule" and "worth 10" in evidence.unit
    assert evidence.challenger.value == pytest.approx(1000 * report.net_policies.loc["targeted", "value"])
    assert evidence.gain.value > 0  # the cost-blind rule pays for B and for dear A
    assert evidence.gain.value == pytest.approx(evidence.challenger.value - evidence.champion.value)
    blind = policy_evidence(report.test, cost_blind, confidence=0.95, same_data=True)
    assert blind.metric == "value of the targeting policy"


def test_campaign_economics_price_every_arm_by_its_channel():
    from uplift.specs import load_spec, project_root
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    catalogue = load_spec(project_root() / "serve" / "costs.yaml", CostCatalogue)
    econ = campaign_economics(catalogue, 40.0, ("holdout", "fresh_start@flyer", "fresh_start@meta"), "holdout")
    assert econ.costs == {"holdout": 0.0, "fresh_start@flyer": 0.07, "fresh_start@meta": pytest.approx(0.03)}
    with pytest.raises(SchemaError, match="channel 'tv', which has no price"):
        campaign_economics(catalogue, 40.0, ("holdout", "x@tv"), "holdout")
    policy = PlanningPolicy.model_validate({"value_per_conversion": 40.0})
    assert policy.value_per_conversion == 40.0


def test_the_cli_trains_logs_and_gates_by_net_value(workdir, tmp_path):
    from test_registry import _uplift

    csv = tmp_path / "hand.csv"
    _experiment(3000, seed=3).assign(b_cost=1.0).to_csv(csv, index=False)
    mapping = tmp_path / "hand.yaml"
    mapping.write_text(yaml.safe_dump({"name": "hand", "treatment": "arm", "control": "Ctl", "outcomes": ["y"],
                                       "features": {"x": "numeric", "z": "numeric"},
                                       "economics": {"value": 10, "costs": {"A": 1, "B": "b_cost"}}}))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "tl", "learner": "t_logistic", "cv": {"folds": 3, "seed": 0}}))
    out = _uplift("train", str(spec), "--experiment-csv", str(csv), "--mapping", str(mapping))
    assert "Held-out net value per person" in out and "a 'y' worth 10" in out
    assert "uplift-hand-y v1 promoted: no champion yet; net value of the targeting rule" in out
    out = _uplift("train", str(spec), "--experiment-csv", str(csv), "--mapping", str(mapping))
    assert "gain 0.00 [0.00, 0.00]" in out and "champion stays at v1" in out  # the same model: no gain

    import mlflow

    model = mlflow.pyfunc.load_model("models:/uplift-hand-y/1")
    scored = model.predict(pd.DataFrame({"x": [1.0, 0.0, 0.0], "z": [0.0, 0.0, 0.0], "b_cost": [1.0, 1.0, 0.0]}))
    assert list(scored["best_arm"]) == ["a", "ctl", "b"]  # B pays for whoever it costs nothing
    assert scored.loc[2, "best_net"] == pytest.approx(10 * scored.loc[2, UPLIFT_PREFIX + "b"])
    assert {NET_PREFIX + "a", NET_PREFIX + "b", "best_net"} <= set(scored.columns)
    run = mlflow.get_run(mlflow.search_runs(search_all_experiments=True).iloc[-1]["run_id"])
    assert run.data.params["economics.value"] == "10.0"
    artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="tables")}
    assert {"tables/net_policies.csv", "tables/net_rule.csv", "tables/cost_curve.csv"} <= artifacts


def test_bad_mapping_through_the_cli_names_the_file_and_key(workdir, tmp_path):
    from typer.testing import CliRunner

    from uplift.cli import app

    csv = tmp_path / "hand.csv"
    _experiment(300).to_csv(csv, index=False)
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(yaml.safe_dump({"name": "bad", "treatment": "arm", "control": "Ctl", "outcomes": ["y"],
                                       "features": {"x": "numeric"}, "economics": {"value": 1, "costs": {"Q": 1}}}))
    result = CliRunner().invoke(app, ["train", "--experiment-csv", str(csv), "--mapping", str(mapping)])
    assert isinstance(result.exception, SchemaError)  # main() prints it and exits 2
    message = str(result.exception)
    assert "bad.yaml" in message and "key 'economics.costs'" in message and "['Q']" in message


def test_a_campaign_model_targets_by_net_value_when_the_policy_declares_a_value(tmp_path, monkeypatch, strong_table):
    import shutil

    from conftest import ROOT
    from uplift.pipeline import with_campaign_economics
    from uplift.specs.model import ModelSpec
    from uplift.tracking.uses import campaign_use

    table = strong_table.subset(np.arange(8000))
    use = campaign_use("registration")
    monkeypatch.setenv("UPLIFT_PROJECT_ROOT", str(tmp_path))
    shutil.copytree(ROOT / "serve", tmp_path / "serve")
    assert with_campaign_economics(table, use) is table  # the shipped policy declares no value: conversions alone
    policy = tmp_path / "serve" / "policy.yaml"
    policy.write_text(policy.read_text() + "\nvalue_per_conversion: 5.0\n")
    priced = with_campaign_economics(table, use)
    assert priced.economics.value == 5.0 and priced.economics.costs["heavy_work_future@meta"] == pytest.approx(0.03)
    spec = ModelSpec(name="small", learner="t_shared", lightgbm={"n_estimators": 20, "num_leaves": 7},
                     cv={"folds": 3, "seed": 0})
    report = validate_model(spec, priced)
    assert report.rule is not None and "targeted" in report.net_policies.index
    pyfunc = bundle_pyfunc(report, segments=None, segment_spec=None)
    assert pyfunc.rule_economics == priced.economics and pyfunc.cost_columns == []
