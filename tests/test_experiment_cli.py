"""``uplift experiment design`` and ``analyze`` through the CLI: files, determinism, plan weights, MLflow runs."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT
from uplift.cli import app
from uplift.cli.experiment import analysis_frame, plan_effects
from uplift.data.contracts import EXPOSURES, validate
from uplift.data.tableio import read_table, write_table
from uplift.errors import DataError, SchemaError
from uplift.specs.experiment import ExperimentSpec

runner = CliRunner()


@pytest.fixture()
def audience_file(workdir, strong_world):
    return write_table(strong_world.audience.head(6000), workdir / "audience.parquet")


def _spec(workdir, **changes):
    raw = yaml.safe_load((ROOT / "experiments" / "wave5.yaml").read_text())
    raw.update(changes)
    path = workdir / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_design_writes_valid_exposures_power_and_balance_and_is_deterministic(workdir, audience_file):
    spec = _spec(workdir)
    for out in ("a.parquet", "b.parquet"):
        res = runner.invoke(app, ["experiment", "design", "--spec", str(spec), "--audience", str(audience_file),
                                  "--out", str(workdir / out)])
        assert res.exit_code == 0, res.output
    a, b = read_table(workdir / "a.parquet"), read_table(workdir / "b.parquet")
    pd.testing.assert_frame_equal(a, b)
    validate(a, EXPOSURES, source="design")
    assert len(a) == 6000 and set(a["wave"]) == {5}
    assert (a.loc[a["channel"] == "flyer", "cost_eur"].eq(0.07).all()
            and a.loc[a["arm"] == "holdout", "cost_eur"].eq(0).all())
    power = read_table(workdir / "a.power.csv")
    assert len(power) == 18 and {"n_arm_needed", "mde_available", "power_available"} <= set(power.columns)
    assert (workdir / "a.balance.csv").exists()
    assert "power per arm" in res.output
    runs = mlflow.search_runs(experiment_names=["uplift-experiments"], output_format="list")
    assert len(runs) == 2 and runs[0].data.params["job"] == "design"
    assert runs[0].data.params["salt"] == "haaglanden-wave5-2025-07-21"


def _two_segment_plan(audience: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A plan over the two largest targetable segments of ``audience``: 40 and 30 contacts, 10 held out in each."""
    from uplift.features.library import age_band_of
    from uplift.pipeline import load_segment_spec
    from uplift.segments.assign import targetable_cells

    spec = load_segment_spec()
    people = audience.assign(age_band=age_band_of(audience["age"]))
    labels = targetable_cells(people, spec.dimensions, spec.min_size)["segment"]
    top = [s for s in labels.value_counts().index if s][:2]
    plan = pd.DataFrame({"segment": [top[0], top[0], top[1]],
                         "arm": ["fresh_start@meta", "free_voucher@flyer", "fresh_start@meta"],
                         "contacts": [40, 30, 30], "holdout_people": [5, 5, 10],
                         "spend": [40 * 0.03, 30 * 0.07, 30 * 0.03], "expected_conversions": [0.4, 0.2, 0.3],
                         "lo": [0.1, 0.0, 0.1], "hi": [0.7, 0.4, 0.5], "exploration": [0.0, 0.7, 0.0]})
    return plan, top


def test_design_from_plan_gives_each_cell_its_contacts_and_holdout(workdir, audience_file, strong_world):
    spec = _spec(workdir, name="from-plan", arm_weights="from_plan", arms=["fresh_start@meta", "free_voucher@flyer"])
    plan, top = _two_segment_plan(read_table(audience_file))
    plan_path = write_table(plan, workdir / "plan.csv")
    enrolments = write_table(strong_world.enrolments, workdir / "enrolments.parquet")
    res = runner.invoke(app, ["experiment", "design", "--spec", str(spec), "--audience", str(audience_file),
                              "--out", str(workdir / "fp.parquet"), "--plan", str(plan_path),
                              "--enrolments", str(enrolments)])
    assert res.exit_code == 0, res.output
    ex = read_table(workdir / "fp.parquet")
    validate(ex, EXPOSURES, source="design")
    counts = ex.groupby(["design_cell", "arm"]).size().to_dict()
    assert counts == {(top[0], "holdout"): 10, (top[0], "fresh_start@meta"): 40, (top[0], "free_voucher@flyer"): 30,
                      (top[1], "holdout"): 10, (top[1], "fresh_start@meta"): 30}
    assert ex.loc[ex["design_cell"] == top[1], "assignment_probability"].round(6).unique().tolist() == [0.25, 0.75]
    assert ex["exploration"].sum() == 10  # a third of the flyer cell's spend
    check = read_table(workdir / "fp.plan_check.csv")
    assert (check["rounding"] == 0).all() and check["spend"].sum() == pytest.approx(1.2 + 2.1 + 0.9)
    postcodes = read_table(workdir / "fp.postcodes.csv")
    assert set(postcodes["arm"]) == {"free_voucher@flyer"} and postcodes["postcode"].astype(str).str.len().eq(4).all()
    registered = set(strong_world.enrolments.loc[strong_world.enrolments["event"] == "registration", "person_id"])
    assert not set(ex["person_id"]) & registered
    assert "already registered and left out" in res.output and "every cell has the plan's contacts" in res.output
    runs = mlflow.search_runs(experiment_names=["uplift-experiments"], output_format="list")
    assert runs[0].data.params["design"] == "from_plan" and runs[0].data.metrics["spend_eur"] == pytest.approx(4.2)


def test_design_refuses_a_plan_without_the_plans_columns(workdir, audience_file):
    spec = _spec(workdir, name="from-plan", arm_weights="from_plan", arms=["fresh_start@meta", "free_voucher@flyer"])
    plan = write_table(pd.DataFrame({"segment": ["s"], "arm": ["fresh_start@meta"], "contacts": [10]}),
                       workdir / "plan.csv")
    res = runner.invoke(app, ["experiment", "design", "--spec", str(spec), "--audience", str(audience_file),
                              "--out", str(workdir / "x.csv"), "--plan", str(plan), "--keep-registered"])
    assert isinstance(res.exception, SchemaError)
    assert f"{plan}: missing column(s) ['holdout_people', 'spend'" in str(res.exception)
    assert not (workdir / "x.csv").exists()


def _wave(n_per_arm: dict[str, int], rate: dict[str, float], seed: int = 0):
    """Exposures of wave 5 plus enrolments with the given registration rate per arm (inside the window)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-07-21", tz="UTC")
    rows, events = [], []
    k = 0
    for arm, n in n_per_arm.items():
        msg, ch = ("none", "none") if arm == "holdout" else arm.split("@")
        for _ in range(n):
            pid = f"p{k:06d}"
            k += 1
            rows.append((pid, 5, arm, msg, ch, start, 0.0, 0.0))
            if rng.random() < rate[arm]:
                events.append((pid, "registration", start + pd.Timedelta(days=int(rng.integers(0, 28)))))
    ex = pd.DataFrame(rows, columns=["person_id", "wave", "arm", "message", "channel", "assigned_at",
                                     "assignment_probability", "cost_eur"])
    total = sum(n_per_arm.values())
    ex["assignment_probability"] = ex["arm"].map({a: n / total for a, n in n_per_arm.items()})
    late = pd.DataFrame({"person_id": ["p000000"], "event": ["registration"],
                         "occurred_at": [start + pd.Timedelta(days=40)]})
    en = pd.concat([pd.DataFrame(events, columns=["person_id", "event", "occurred_at"]), late], ignore_index=True)
    return ex, en


def test_analyze_reports_the_winning_arm_and_logs_it(workdir):
    spec = _spec(workdir, name="two-arms", arms=["fresh_start@meta", "free_voucher@flyer"],
                 arm_weights={"fresh_start@meta": 1.0, "free_voucher@flyer": 1.0}, holdout_share=0.2)
    ex, en = _wave({"holdout": 2000, "fresh_start@meta": 4000, "free_voucher@flyer": 4000},
                   {"holdout": 0.01, "fresh_start@meta": 0.04, "free_voucher@flyer": 0.01})
    write_table(ex, workdir / "ex.parquet")
    write_table(en, workdir / "en.parquet")
    plan = write_table(pd.DataFrame({"segment": ["s1", "s2", "s1"], "arm": ["fresh_start@meta", "free_voucher@flyer",
                                                                            "free_voucher@flyer"],
                                     "contacts": [1000, 2000, 2000], "expected_conversions": [30.0, 4.0, 8.0]}),
                       workdir / "plan.csv")
    res = runner.invoke(app, ["experiment", "analyze", "--spec", str(spec), "--exposures", str(workdir / "ex.parquet"),
                              "--enrolments", str(workdir / "en.parquet"), "--segment-by", "channel",
                              "--out", str(workdir / "an.csv"), "--plan", str(plan)])
    assert res.exit_code == 0, res.output
    arms = read_table(workdir / "an.csv").set_index("arm")
    assert arms.loc["fresh_start@meta", "ci_low"] > 0.015 and arms.loc["fresh_start@meta", "verdict"] == "better"
    assert abs(arms.loc["free_voucher@flyer", "effect"]) < 0.008  # no true effect
    assert arms.loc["free_voucher@flyer", "target_effect"] == pytest.approx(0.003)  # the plan's 12 per 4,000 contacts
    assert arms.loc["free_voucher@flyer", "too_small"] and not arms.loc["fresh_start@meta", "too_small"]
    assert (arms["family"].iloc[1:] == "arms").all() and (arms["family_size"].iloc[1:] == 2).all()
    summary = (workdir / "an.summary.txt").read_text()
    assert "fresh_start@meta" in summary.split("Beat the holdout")[1].splitlines()[1]
    assert "2 arms compared with the holdout, judged together (Benjamini-Hochberg" in summary  # wave5.yaml: bh
    assert "free_voucher@flyer: 4,000 people can detect" in summary and "the plan expects 3." in summary
    segments = read_table(workdir / "an.segments.csv")
    assert {"channel", "family", "verdict"} <= set(segments.columns)  # each channel holds one arm: nothing to compare
    assert "By segment: no segment has both the holdout and an arm" in summary
    run = mlflow.search_runs(experiment_names=["uplift-experiments"], output_format="list")[0]
    assert run.data.params["job"] == "analyze" and run.data.metrics["srm_flagged"] == 0.0
    assert run.data.params["multiplicity"] == "bh" and run.data.params["family_size_arms"] == "2"
    assert run.data.params["plan"] == str(plan)
    assert run.data.metrics["arms_better"] == 1.0 and run.data.metrics["arms_too_small"] == 1.0
    assert run.data.metrics["effect_fresh_start.meta"] == pytest.approx(arms.loc["fresh_start@meta", "effect"])
    assert run.data.metrics["estimate_fresh_start.meta"] == pytest.approx(arms.loc["fresh_start@meta", "estimate"])


def test_analysis_metrics_log_each_arms_figures_and_skip_withheld_ones():
    from uplift.design import analyze
    from uplift.tracking.jobs import AnalysisInputs, analysis_metrics, analysis_params

    # 10 of 100 holdout people converted, 30 of 100 on the arm: the effect is 0.2 exactly
    frame = pd.DataFrame({"arm": ["holdout"] * 100 + ["a@sms"] * 100,
                          "outcome": [1] * 10 + [0] * 90 + [1] * 30 + [0] * 70})
    result = analyze(frame)
    metrics = analysis_metrics(result)
    assert metrics["effect_a.sms"] == pytest.approx(0.2)
    assert metrics["arms_better"] == 1.0 and metrics["arms_worse"] == 0.0
    assert "people" not in metrics and "srm_p_value" not in metrics  # not released, no design shares
    assert not any(k.endswith("_holdout") for k in metrics)  # the control's row has no effect
    withheld = result.arms.assign(effect=np.where(result.arms["arm"] == "a@sms", np.nan, result.arms["effect"]))
    metrics = analysis_metrics(dataclasses.replace(result, arms=withheld), people=200)
    assert "effect_a.sms" not in metrics and "ci_low_a.sms" in metrics and metrics["people"] == 200.0
    inputs = AnalysisInputs(spec_path=ROOT / "experiments" / "wave5.yaml", spec_name="wave5", wave=5,
                            exposures=ROOT / "ex.parquet", enrolments=ROOT / "en.parquet")
    params = analysis_params(inputs, result)
    assert params["plan"] == "" and params["family_size_arms"] == 1 and params["job"] == "analyze"


def test_plan_effects_are_expected_conversions_per_contact():
    spec = ExperimentSpec.model_validate(yaml.safe_load((ROOT / "experiments" / "wave5.yaml").read_text()))
    cells = pd.DataFrame({"arm": ["fresh_start@meta", "fresh_start@meta", "free_voucher@flyer"],
                          "contacts": [1000, 3000, 0], "expected_conversions": [5.0, 11.0, 0.0]})
    assert plan_effects(cells, spec) == {"fresh_start@meta": pytest.approx(0.004)}  # no contacts: no expectation
    with pytest.raises(SchemaError, match=r"plan\.csv: missing column\(s\) \['expected_conversions'\]"):
        plan_effects(cells.drop(columns="expected_conversions"), spec, source="plan.csv")


def test_analyze_releases_no_small_cell(workdir):
    spec = _spec(workdir, name="small-arm", arms=["fresh_start@meta", "free_voucher@flyer"],
                 arm_weights={"fresh_start@meta": 1.0, "free_voucher@flyer": 1.0}, holdout_share=0.2)
    ex, en = _wave({"holdout": 2000, "fresh_start@meta": 4000, "free_voucher@flyer": 300},
                   {"holdout": 0.01, "fresh_start@meta": 0.04, "free_voucher@flyer": 0.01}, seed=1)
    write_table(ex, workdir / "ex.parquet")
    write_table(en, workdir / "en.parquet")
    res = runner.invoke(app, ["experiment", "analyze", "--spec", str(spec), "--exposures", str(workdir / "ex.parquet"),
                              "--enrolments", str(workdir / "en.parquet"), "--out", str(workdir / "an.csv")])
    assert res.exit_code == 0, res.output
    arms = read_table(workdir / "an.csv").set_index("arm")
    # free_voucher's few conversions are suppressed, and so is the next smallest arm's (the wave's total is known)
    assert arms[["conversions", "rate", "effect"]].loc[["free_voucher@flyer", "fresh_start@meta"]].isna().all().all()
    assert arms.loc["holdout", "conversions"] >= 10 and arms.loc["holdout", "conversions"] % 5 == 0
    assert (arms["n"] % 5 == 0).all() and "fewer than 10 converters" in arms.loc["free_voucher@flyer", "withheld"]
    summary = (workdir / "an.summary.txt").read_text()
    assert "Not shown: fresh_start@meta, free_voucher@flyer" in summary and "per 1,000 people reached" not in summary
    run = mlflow.search_runs(experiment_names=["uplift-experiments"], output_format="list")[0]
    assert not any(k.startswith("effect_") for k in run.data.metrics) and run.data.metrics["people"] % 5 == 0


def test_analyze_flags_a_broken_split(workdir):
    spec = _spec(workdir, name="two-arms", arms=["fresh_start@meta", "free_voucher@flyer"],
                 arm_weights={"fresh_start@meta": 1.0, "free_voucher@flyer": 1.0}, holdout_share=0.2)
    # a quarter of the holdout lost
    ex, en = _wave({"holdout": 1500, "fresh_start@meta": 4000, "free_voucher@flyer": 4000},
                   {"holdout": 0.01, "fresh_start@meta": 0.01, "free_voucher@flyer": 0.01})
    write_table(ex, workdir / "ex.parquet")
    write_table(en, workdir / "en.parquet")
    res = runner.invoke(app, ["experiment", "analyze", "--spec", str(spec), "--exposures", str(workdir / "ex.parquet"),
                              "--enrolments", str(workdir / "en.parquet"), "--out", str(workdir / "an.csv")])
    assert res.exit_code == 0, res.output
    assert "WARNING" in (workdir / "an.summary.txt").read_text()


def test_analysis_frame_counts_outcomes_in_the_window_and_covariates_before_the_wave():
    spec = ExperimentSpec.model_validate(yaml.safe_load((ROOT / "experiments" / "wave5.yaml").read_text()))
    ex, en = _wave({"holdout": 3, "fresh_start@meta": 3}, {"holdout": 1.0, "fresh_start@meta": 0.0})
    earlier = ex.iloc[[3]].assign(wave=4, assigned_at=pd.Timestamp("2025-06-09", tz="UTC"))
    ex = pd.concat([earlier, ex], ignore_index=True)
    frame, covariates = analysis_frame(spec, ex, en)
    assert frame["registration"].tolist() == [1, 1, 1, 0, 0, 0]  # p000000's late event (day 40) does not count twice
    assert covariates == ("prior_waves", "prior_contacts")
    assert frame["prior_contacts"].tolist() == [0, 0, 0, 1, 0, 0]
    with pytest.raises(SchemaError, match="--segment-by 'age_band'.*pass --audience"):
        analysis_frame(spec, ex, en, segment_by="age_band")
    with pytest.raises(DataError, match="no rows of wave 6"):
        analysis_frame(spec.model_copy(update={"wave": 6}), ex, en)
