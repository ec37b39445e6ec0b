"""The loop over waves: simulate two, train, design the third, draw its outcomes, append, retrain, analyse, score."""

from __future__ import annotations

import datetime as dt

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, feature_set_for
from uplift.cli import app
from uplift.cli.experiment import analysis_frame, design_wave
from uplift.config import Settings
from uplift.data.tableio import read_table, write_table
from uplift.data.trainingtable import PROPENSITY_PREFIX
from uplift.design import analyze, design_shares
from uplift.pipeline import table_from_folder, train_and_log
from uplift.simulate import simulate, write_world
from uplift.simulate.assigned import run_assigned_wave
from uplift.specs import load_spec
from uplift.specs.experiment import ExperimentSpec
from uplift.specs.planning import CostCatalogue

PEOPLE, SEED = 12_000, 5


def _small_model(tmp_path):
    raw = yaml.safe_load((ROOT / "models" / "pooled_lightgbm.yaml").read_text())
    raw["lightgbm"]["n_estimators"] = 30
    raw["cv"] = {"folds": 3, "test_share": 0.2, "seed": 0}
    path = tmp_path / "pooled_small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_designed_wave_feeds_the_next_training_without_hand_edits(workdir, region):
    spec = region.subset(messages=["heavy_work_future", "fresh_start"], channels=["meta", "flyer"])
    spec = spec.updated(baseline=spec.baseline.model_copy(update={"registration": 0.02}))
    world = simulate(spec, people=PEOPLE, waves=2, seed=SEED)
    data = workdir / "data"
    write_world(world, data)
    features = feature_set_for(world)
    settings = Settings(workdir=workdir)
    model_spec = _small_model(workdir)
    first = train_and_log(model_spec, table_from_folder(data, features), settings=settings, data_source=str(data))
    assert first.version == 1

    # design wave 3 over everyone not yet registered, with the design command's function
    start = spec.waves.start + dt.timedelta(days=2 * spec.waves.gap_days)
    arms = list(world.treatment_arms)
    exp = ExperimentSpec(
        name="loop-wave3", wave=3, arms=arms, holdout_share=0.3,
        arm_weights={a: (2.0 if a.endswith("@flyer") else 1.0) for a in arms}, strata=["age_band", "gender"],
        salt="loop-wave3", outcome="registration", attribution_days=28, minimum_detectable_effect=0.01,
        start=start, end=start + dt.timedelta(days=27),
    )
    registered = set(world.enrolments.loc[world.enrolments["event"] == "registration", "person_id"])
    eligible = world.audience[~world.audience["person_id"].isin(registered)]
    costs = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
    design = design_wave(exp, eligible, costs=costs, base_rate=0.02)
    assert (design.exposures.loc[design.exposures["channel"] == "flyer",
                                 "cost_eur"] == costs.channel("flyer").unit_cost).all()

    # the simulator draws what happened, and the new rows are appended to the input files
    wave3 = run_assigned_wave(spec, people=PEOPLE, seed=SEED, assignment=design.exposures, history=world.exposures,
                              enrolments=world.enrolments)
    exposures = pd.concat([read_table(data / "exposures.parquet"), design.exposures], ignore_index=True)
    enrolments = pd.concat([read_table(data / "enrolments.parquet"), wave3.enrolments], ignore_index=True)
    write_table(exposures, data / "exposures.parquet")
    write_table(enrolments, data / "enrolments.parquet")

    table = table_from_folder(data, features)
    rows = table.frame[table.frame["wave"] == 3]
    assert len(rows) == len(eligible)
    shares = design_shares(exp)
    for arm, share in shares.items():
        assert rows[f"{PROPENSITY_PREFIX}{arm}"].to_numpy() == pytest.approx(share)
    new_registrations = int((wave3.enrolments["event"] == "registration").sum())
    assert new_registrations > 50 and int(rows["outcome"].sum()) == new_registrations
    assert (rows["prior_waves"] > 0).mean() > 0.9  # history features see waves 1-2

    second = train_and_log(model_spec, table, settings=settings, data_source=str(data))
    assert second.version == 2 and second.registered_model == "uplift-registration"
    # more data than the champion's: judged on the people both splits hold out, and the reason says so
    assert "other data than the champion's" in second.reason
    assert 3 in set(second.report.train.frame["wave"])

    # the analysis finds the designed arms in the designed proportions, and covers the true effects
    frame, covariates = analysis_frame(exp, exposures, enrolments, audience=world.audience, segment_by="age_band")
    result = analyze(frame, outcome_col="registration", covariates=covariates, segment_col="segment",
                     expected_shares=shares.to_dict())
    counts = design.assignment["arm"].value_counts()
    assert result.arms.set_index("arm")["n"].to_dict() == counts.to_dict()
    assert not result.srm.flagged
    assert "prior_contacts" in covariates
    truth = wave3.truth
    for row in result.arms[result.arms["arm"] != "holdout"].itertuples():
        true = (truth[f"p__{row.arm}"] - truth["p__holdout"]).mean()
        assert row.ci_low < true < row.ci_high, row.arm

    # and the new champion scores the coming wave from the same files; the job is an MLflow run
    out = workdir / "scores.parquet"
    res = CliRunner().invoke(app, [
        "score", "--audience", str(data / "audience.parquet"), "--out", str(out), "--exposures",
        str(data / "exposures.parquet"), "--enrolments", str(data / "enrolments.parquet"), "--as-of",
        str(start + dt.timedelta(days=42)), "--chunk-rows", "5000",
    ])
    assert res.exit_code == 0, res.output
    scores = read_table(out)
    assert len(scores) == PEOPLE and scores["person_id"].is_unique
    champion = mlflow.MlflowClient().get_model_version_by_alias(second.registered_model, "champion").version
    runs = mlflow.search_runs(experiment_names=["uplift-scoring"], output_format="list")
    assert len(runs) == 1
    params, metrics = runs[0].data.params, runs[0].data.metrics
    assert params["model_version"] == str(champion) and len(params["input_sha256"]) == 64
    assert metrics["rows_scored"] == PEOPLE and metrics["rows_rejected"] == 0
    assert runs[0].data.tags["output_path"] == str(out)
