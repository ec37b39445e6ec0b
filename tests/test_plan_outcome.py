"""What a plan promised against what its wave delivered: a round trip on the simulator, zero-conversion cells."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from uplift.design.fromplan import design_from_plan, registered_people
from uplift.design.promised import promised_and_delivered
from uplift.design.release import released_outcome
from uplift.features.library import age_band_of
from uplift.pipeline import load_segment_spec
from uplift.segments.assign import targetable_cells
from uplift.simulate.assigned import run_assigned_wave
from uplift.specs import load_spec
from uplift.specs.disclosure import DisclosurePolicy
from uplift.specs.experiment import ExperimentSpec
from uplift.specs.planning import CostCatalogue

COSTS = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
POLICY = DisclosurePolicy(threshold=10, rounding_base=5)


def _plan(audience: pd.DataFrame, arms: list[str], segments: int) -> pd.DataFrame:
    spec = load_segment_spec()
    labels = targetable_cells(audience.assign(age_band=age_band_of(audience["age"])), spec.dimensions,
                              spec.min_size)["segment"]
    sizes = labels[labels != ""].value_counts().head(segments)
    rows = []
    for seg, size in sizes.items():
        for arm in arms:
            contacts = int(0.3 * size)
            rows.append({"segment": seg, "arm": arm, "contacts": contacts, "holdout_people": int(0.1 * size),
                         "spend": contacts * 0.03, "expected_conversions": 0.0, "lo": 0.0, "hi": 0.0,
                         "exploration": 0.0})
    return pd.DataFrame(rows)


def test_a_round_trip_recovers_the_simulators_cell_effects_within_their_intervals(strong_region, strong_world):
    world = strong_world
    arms = [a for a in world.arms if a != world.control]
    plan = _plan(world.audience, arms, segments=40)
    start = strong_region.waves.start + dt.timedelta(days=2 * strong_region.waves.gap_days)
    spec = ExperimentSpec(name="round-trip", wave=3, arms=arms, holdout_share=0.1, arm_weights="from_plan",
                          salt="round-trip", outcome="registration", attribution_days=28,
                          minimum_detectable_effect=0.01, start=start, end=start + dt.timedelta(days=27))
    design = design_from_plan(plan, world.audience, spec, segment_spec=load_segment_spec(), costs=COSTS,
                              registered=registered_people(world.enrolments, start))
    ex = design.exposures
    wave = run_assigned_wave(strong_region, people=40_000, seed=11, assignment=ex, history=world.exposures,
                             enrolments=world.enrolments)
    converted = set(wave.enrolments.loc[wave.enrolments["event"] == "registration", "person_id"])
    frame = ex.assign(registration=ex["person_id"].isin(converted).astype(int))
    truth = wave.truth  # same order as the assignment: the truth scores the measurement, never trains
    true_lift = np.where(ex["arm"] == "holdout", np.nan,
                         np.choose(np.maximum(pd.Index(arms).get_indexer(ex["arm"]), 0),
                                   [truth[f"p__{a}"].to_numpy() for a in arms]) - truth["p__holdout"].to_numpy())
    frame = frame.assign(true_lift=true_lift)
    by_cell = frame[frame["arm"] != "holdout"].groupby(["design_cell", "arm"])["true_lift"].sum()
    # promise the truth, so the calibration should find slope 1 and intercept 0
    promised = by_cell.reindex(pd.MultiIndex.from_frame(plan[["segment", "arm"]])).to_numpy()
    plan = plan.assign(expected_conversions=promised)
    plan = plan.assign(lo=plan["expected_conversions"] - 1, hi=plan["expected_conversions"] + 1)
    result = promised_and_delivered(frame, plan, outcome_col="registration", level=0.95,
                                    groups={"women": world.audience.set_index("person_id")
                                            .loc[frame["person_id"], "gender"].eq("female").to_numpy()})
    cells = result.cells
    assert len(cells) == 80
    true = by_cell.reindex(pd.MultiIndex.from_frame(cells[["segment", "arm"]])).to_numpy()
    covered = (cells["realised_lo"] <= true) & (true <= cells["realised_hi"])
    assert covered.mean() >= 0.9, covered.mean()  # 95% exact intervals (conservative): 80 cells
    total_true = float(np.nansum(true))
    t = result.total.iloc[0]
    assert t["realised_lo"] <= total_true <= t["realised_hi"]
    assert t["promised"] == pytest.approx(total_true)
    for row in result.messages.itertuples():
        truth_m = float(by_cell[by_cell.index.get_level_values("arm").str.startswith(row.message + "@")].sum())
        assert row.realised_lo <= truth_m <= row.realised_hi, row.message
    cal = result.calibration
    assert cal.cells == 80 and cal.slope_lo < 1 < cal.slope_hi
    assert "the plan promised" in result.sentence() and "the wave delivered" in result.sentence()
    assert result.groups.loc[0, "realised_lo"] < result.groups.loc[0, "realised"] < result.groups.loc[0, "realised_hi"]


def test_zero_conversion_cells_get_an_honest_interval_and_are_never_released():
    # cell s1: 40 reached, 20 held out, nobody converts; cell s2: 400 and 200, 12 and 3 converters
    rows = [("s1", "a@meta", 0)] * 40 + [("s1", "holdout", 0)] * 20 + [("s2", "a@meta", 1)] * 12 + \
        [("s2", "a@meta", 0)] * 388 + [("s2", "holdout", 1)] * 3 + [("s2", "holdout", 0)] * 197
    frame = pd.DataFrame(rows, columns=["design_cell", "arm", "registration"])
    plan = pd.DataFrame({"segment": ["s1", "s2"], "arm": ["a@meta", "a@meta"], "contacts": [40, 400],
                         "expected_conversions": [0.4, 4.0], "lo": [0.0, 2.0], "hi": [0.8, 6.0]})
    result = promised_and_delivered(frame, plan, outcome_col="registration", level=0.95)
    s1 = result.cells.set_index("segment").loc["s1"]
    assert s1["realised"] == 0 and s1["realised_lo"] < -2 and s1["realised_hi"] > 2  # 0/40 vs 0/20: wide, not zero
    s2 = result.cells.set_index("segment").loc["s2"]
    assert s2["realised"] == pytest.approx(400 * (12 / 400 - 3 / 200))  # 6 more than at the holdout rate
    released = released_outcome(result, POLICY)
    cells = released.cells.set_index("segment")
    assert cells.loc["s1", ["realised", "realised_lo", "realised_hi"]].isna().all()  # nobody converted: withheld
    assert cells.loc["s2", ["realised", "realised_lo", "realised_hi"]].isna().all()  # 3 holdout converters: withheld
    assert not {"n_arm", "conversions_arm", "n_holdout", "conversions_holdout"} & set(released.cells.columns)
    assert result.total.iloc[0]["realised"] == pytest.approx(6.0)
    total = released.total.iloc[0]  # the wave's holdout has 3 converters: its realised figure is withheld too
    assert np.isnan(total["realised"]) and total["promised"] == pytest.approx(4.4)
    assert "withheld" in released.sentence()
    assert np.isnan(result.calibration.slope)  # two cells cannot be calibrated


def test_the_cli_round_trip_writes_the_promise_against_the_wave_and_the_next_training_reads_it(
        workdir, strong_region, strong_world):
    import mlflow
    import yaml
    from typer.testing import CliRunner

    from conftest import feature_set_for
    from uplift.cli import app
    from uplift.data.tableio import read_table, write_table
    from uplift.data.trainingtable import PROPENSITY_PREFIX
    from uplift.features import build_training_table
    from uplift.pipeline import table_from_folder
    from uplift.simulate import write_world

    world, runner = strong_world, CliRunner()
    arms = [a for a in world.arms if a != world.control]
    data = workdir / "data"
    write_world(world, data)
    start = strong_region.waves.start + dt.timedelta(days=2 * strong_region.waves.gap_days)
    spec = workdir / "wave3.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "strong-wave3", "wave": 3, "arms": arms, "holdout_share": 0.2, "arm_weights": "from_plan",
        "salt": "strong-wave3", "outcome": "registration", "attribution_days": 28,
        "minimum_detectable_effect": 0.01, "start": start.isoformat(),
        "end": (start + dt.timedelta(days=27)).isoformat()}))
    plan = _plan(world.audience, arms, segments=30)
    plan = plan.assign(expected_conversions=0.01 * plan["contacts"], lo=0.0, hi=0.02 * plan["contacts"])
    write_table(plan, workdir / "plan.csv")
    res = runner.invoke(app, ["experiment", "design", "--spec", str(spec), "--audience", str(data / "audience.parquet"),
                              "--plan", str(workdir / "plan.csv"), "--enrolments", str(data / "enrolments.parquet"),
                              "--out", str(workdir / "wave3.parquet")])
    assert res.exit_code == 0, res.output
    designed = read_table(workdir / "wave3.parquet")
    wave = run_assigned_wave(strong_region, people=40_000, seed=11, assignment=designed, history=world.exposures,
                             enrolments=world.enrolments)
    write_table(pd.concat([world.exposures, designed], ignore_index=True), data / "exposures.parquet")
    write_table(pd.concat([world.enrolments, wave.enrolments], ignore_index=True), data / "enrolments.parquet")
    out = workdir / "analysis.csv"
    res = runner.invoke(app, ["experiment", "analyze", "--spec", str(spec), "--exposures",
                              str(data / "exposures.parquet"),
                              "--enrolments", str(data / "enrolments.parquet"), "--audience",
                              str(data / "audience.parquet"), "--plan", str(workdir / "plan.csv"), "--plan-model",
                              "uplift-registration/4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "the plan promised" in res.output and "per message" in res.output
    assert "calibration over the cells" in res.output
    cells = read_table(workdir / "analysis.plan_cells.csv")
    assert len(cells) == 60 and not {"n_arm", "conversions_arm"} & set(cells.columns)
    assert set(read_table(workdir / "analysis.plan_groups.csv")["group"]) >= {"women", "age_50_plus"}
    assert (workdir / "analysis.calibration.png").stat().st_size > 1000
    run = mlflow.search_runs(experiment_names=["uplift-experiments"], output_format="list")[0]
    assert run.data.params["plan_model"] == "uplift-registration/4" and "plan_promised" in run.data.metrics
    # the next training reads the wave like any other: each person's propensities are those of their cell
    features = feature_set_for(world)
    table = table_from_folder(data, features)  # out of core
    rows = table.frame[table.frame["wave"] == 3].set_index("person_id")
    truth = designed.set_index("person_id")
    for arm in ("holdout", *arms):
        own = truth["arm"] == arm
        got = rows.loc[truth.index[own], f"{PROPENSITY_PREFIX}{arm}"].to_numpy()
        np.testing.assert_allclose(got, truth.loc[own, "assignment_probability"].to_numpy())
    np.testing.assert_allclose(rows.filter(like=PROPENSITY_PREFIX).sum(axis=1), 1.0)
    in_memory = build_training_table(read_table(data / "audience.parquet"), read_table(data / "exposures.parquet"),
                                     read_table(data / "enrolments.parquet"), features)
    mem = in_memory.frame[in_memory.frame["wave"] == 3].set_index("person_id").filter(like=PROPENSITY_PREFIX)
    pd.testing.assert_frame_equal(mem.sort_index(), rows.filter(like=PROPENSITY_PREFIX).sort_index(), check_dtype=False)
