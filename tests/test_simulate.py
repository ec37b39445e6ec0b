"""Tests of the campaign simulator: contracts, determinism, rates, true effects, design, spec checks, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import uplift.simulate as simulate_pkg
from uplift.data.contracts import AUDIENCE, ENROLMENTS, EXPOSURES, validate
from uplift.data.tableio import read_table, write_table
from uplift.data.vocabulary import FUNNEL_EVENTS, arm_name
from uplift.errors import DataError, SchemaError, SpecError
from uplift.simulate import (
    CampaignWorld,
    arm_summary,
    funnel_counts,
    registered_in_window,
    simulate,
    true_effects,
    write_world,
)
from uplift.specs import load_spec
from uplift.specs.region import LATER_EVENTS, RegionSpec

REGION = Path(__file__).resolve().parents[1] / "features" / "regions" / "haaglanden.yaml"


@pytest.fixture(scope="module")
def spec() -> RegionSpec:
    return load_spec(REGION, RegionSpec)


@pytest.fixture(scope="module")
def world(spec: RegionSpec) -> CampaignWorld:
    return simulate(spec, people=20_000, waves=4, seed=11)


@pytest.fixture(scope="module")
def strong(spec: RegionSpec) -> RegionSpec:
    """A small world: 2 messages x 1 channel, a high baseline and strong effects (one positive, one negative)."""
    return spec.subset(messages=["free_voucher", "fresh_start"], channels=["meta"]).updated(
        baseline={"registration": 0.03, "modifiers": []},
        messages={
            "free_voucher": {"lift": {"other": 1.5, "security_guard": 3.0}},
            "fresh_start": {"lift": {"other": -0.8, "young_dropout": 1.0}},
        },
        channels={"meta": {"cost_eur": 0.6, "multiplier": 1.0}},
    )


def _p(world: CampaignWorld, arm: str) -> pd.Series:
    return world.truth[f"p__{arm}"]


# -- the default region ---------------------------------------------------------------------


def test_default_region_declares_persona_messages_and_priced_channels(spec: RegionSpec) -> None:
    assert len(spec.messages) >= 6 and len(spec.channels) >= 3
    assert {"meta", "linkedin", "flyer"} <= set(spec.channels)
    # the simulated history prices a contact as the planner's cost catalogue does (first-tier unit cost)
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue

    catalogue = load_spec(Path(__file__).resolve().parents[1] / "serve" / "costs.yaml", CostCatalogue)
    for name, channel in spec.channels.items():
        assert channel.cost_eur == pytest.approx(catalogue.channels[name].unit_cost), name
    assert len(spec.personas) == 8 and "other" in spec.personas
    expected = ("holdout",) + tuple(arm_name(m, c) for m in spec.messages for c in spec.channels)
    assert spec.arm_names() == expected
    assert len({m.name for m in spec.municipalities}) >= 9


def test_exported_names() -> None:
    assert set(simulate_pkg.__all__) == {
        "CampaignWorld",
        "simulate",
        "write_world",
        "true_effects",
        "arm_summary",
        "funnel_counts",
        "registered_in_window",
        "FORMATS",
    }
    assert all(hasattr(simulate_pkg, name) for name in simulate_pkg.__all__)


# -- contracts and determinism --------------------------------------------------------------


def test_outputs_validate_against_the_contracts(world: CampaignWorld) -> None:
    for name, schema in (("audience", AUDIENCE), ("exposures", EXPOSURES), ("enrolments", ENROLMENTS)):
        frame = getattr(world, name)
        checked = validate(frame, schema, source=name)
        pd.testing.assert_frame_equal(checked, frame)  # nothing needed coercing
    assert world.arms[0] == world.control == "holdout"
    assert world.attribution_days == 28
    holdout = world.exposures[world.exposures["arm"] == "holdout"]
    assert (holdout["message"] == "none").all() and (holdout["channel"] == "none").all()
    assert (holdout["cost_eur"] == 0).all()
    treated = world.exposures[world.exposures["arm"] != "holdout"]
    assert (treated["arm"] == treated["message"] + "@" + treated["channel"]).all()
    assert (treated["cost_eur"] > 0).all()
    assert set(world.exposures["arm"]) == set(world.arms)


def test_persona_stays_in_the_truth_only(world: CampaignWorld, spec: RegionSpec) -> None:
    assert "persona" not in world.audience.columns
    assert list(world.truth.columns[:3]) == ["person_id", "wave", "persona"]
    assert set(world.truth["persona"]) == set(spec.personas)
    assert [c for c in world.truth.columns if c.startswith("p__")] == [f"p__{a}" for a in world.arms]
    assert [c for c in world.truth.columns if c.startswith("q__")] == [f"q__{e}" for e in LATER_EVENTS]
    pd.testing.assert_frame_equal(world.truth[["person_id", "wave"]], world.exposures[["person_id", "wave"]])
    probs = world.truth.filter(like="p__").to_numpy()
    assert np.all((probs > 0) & (probs < 1))


def test_same_seed_gives_identical_frames_and_file_bytes(spec: RegionSpec, tmp_path: Path) -> None:
    first = simulate(spec, people=3_000, waves=2, seed=5)
    second = simulate(spec, people=3_000, waves=2, seed=5)
    for name in ("audience", "exposures", "enrolments", "truth"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    for fmt in ("parquet", "csv"):
        a = write_world(first, tmp_path / f"a_{fmt}", fmt=fmt)
        b = write_world(second, tmp_path / f"b_{fmt}", fmt=fmt)
        assert set(a) == {"audience", "exposures", "enrolments", "truth"}
        for name in a:
            assert a[name].read_bytes() == b[name].read_bytes(), (fmt, name)
    other = simulate(spec, people=3_000, waves=2, seed=6)
    assert not first.audience.equals(other.audience)
    assert not first.exposures["arm"].equals(other.exposures["arm"])


def test_written_files_read_back_and_validate(world: CampaignWorld, tmp_path: Path) -> None:
    for fmt in ("parquet", "csv"):
        paths = write_world(world, tmp_path / fmt, fmt=fmt)
        assert paths["audience"] == tmp_path / fmt / f"audience.{fmt}"
        assert paths["truth"] == tmp_path / fmt / "truth" / "truth.parquet"
        for name, schema in (("audience", AUDIENCE), ("exposures", EXPOSURES), ("enrolments", ENROLMENTS)):
            back = validate(read_table(paths[name]), schema, source=str(paths[name]))
            assert len(back) == len(getattr(world, name))
            assert back["person_id"].tolist() == getattr(world, name)["person_id"].tolist()
        exposures = validate(read_table(paths["exposures"]), EXPOSURES, source="exposures")
        assert (exposures["assigned_at"] == world.exposures["assigned_at"]).all()
        truth = read_table(paths["truth"])
        np.testing.assert_array_equal(truth.filter(like="p__").to_numpy(), world.truth.filter(like="p__").to_numpy())
    with pytest.raises(SchemaError, match="format 'xlsx' is not supported"):
        write_world(world, tmp_path / "x", fmt="xlsx")  # type: ignore[arg-type]


def test_population_does_not_depend_on_the_number_of_waves(spec: RegionSpec) -> None:
    one = simulate(spec, people=2_000, waves=1, seed=3)
    three = simulate(spec, people=2_000, waves=3, seed=3)
    pd.testing.assert_frame_equal(one.audience, three.audience)
    wave1 = three.exposures[three.exposures["wave"] == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(one.exposures, wave1)


# -- the population -------------------------------------------------------------------------


def test_personas_are_findable_by_readable_rules(world: CampaignWorld) -> None:
    persona = world.truth.drop_duplicates("person_id").set_index("person_id")["persona"]
    people = world.audience.set_index("person_id").assign(persona=persona)
    rules = {
        "heavy_work": (people["gender"] == "male") & (people["sector"] == "construction")
        & people["age"].between(36, 60),
        "young_dropout": people["age"].between(18, 27) & (people["education"] == "no_diploma")
        & (people["income_band"] == "minimum"),
        "towards_ict": (people["gender"] == "male") & (people["sector"] == "administration")
        & people["age"].between(24, 37),
        "towards_education": (people["gender"] == "female") & (people["sector"] == "cleaning"),
    }
    for name, rule in rules.items():
        member = people["persona"] == name
        recall = (rule & member).sum() / member.sum()
        precision = (rule & member).sum() / rule.sum()
        assert recall > 0.6 and precision > 0.6, (name, recall, precision)
    # noisy: the rule's attributes are not a persona label
    assert (people.loc[people["sector"] == "construction", "persona"] != "heavy_work").mean() > 0.2


def test_poorer_neighbourhoods_have_lower_income_and_more_migration(world: CampaignWorld, spec: RegionSpec) -> None:
    deprivation = {n.postcode: n.deprivation for m in spec.municipalities for n in m.neighbourhoods}
    level = world.audience["neighbourhood"].map(deprivation)
    poor, rich = world.audience[level >= 0.7], world.audience[level <= 0.2]
    low_income = world.audience["income_band"].isin(["minimum", "low"])
    assert low_income[poor.index].mean() > low_income[rich.index].mean() + 0.15
    assert poor["migration_background"].mean() > rich["migration_background"].mean() + 0.2
    assert world.audience["age"].between(18, 67).all()
    jobless = world.audience["employment"].isin(["unemployed", "student"])
    assert (world.audience.loc[jobless, "sector"] == "none").all()
    assert (world.audience.loc[~jobless, "sector"] != "none").all()


# -- rates and the funnel --------------------------------------------------------------------


def test_registration_rates_are_realistically_low(world: CampaignWorld) -> None:
    treated = world.exposures["arm"] != "holdout"
    holdout_p = _p(world, "holdout")
    assert 0.001 <= holdout_p.mean() <= 0.003
    own = world.truth.filter(like="p__").to_numpy()[np.arange(len(world.truth)),
                                                    pd.Index(world.arms).get_indexer(world.exposures["arm"])]
    assert 0.002 <= own[treated.to_numpy()].mean() <= 0.015
    registered = registered_in_window(world)
    assert 0.0005 <= registered[~treated.to_numpy()].mean() <= 0.004
    assert registered.mean() < 0.01
    # the matched persona is lifted into the 0.5-2% range
    young = (world.truth["persona"] == "young_dropout").to_numpy()
    assert 0.005 <= _p(world, "fresh_start@meta")[young].mean() <= 0.02


def test_funnel_ratios_follow_the_region_example(spec: RegionSpec) -> None:
    busy = spec.updated(baseline={"registration": 0.05, "modifiers": []})
    world = simulate(busy, people=10_000, waves=2, seed=2)
    counts = funnel_counts(world)
    assert counts["registration"] > 1_000
    assert 0.74 <= counts["advice_conversation"] / counts["registration"] <= 0.84  # 1,500 / 1,900 = 0.79
    assert 0.14 <= counts["application"] / counts["registration"] <= 0.22  # 350 / 1,900 = 0.18
    assert 0.8 <= counts["granted"] / counts["application"] <= 0.97
    assert list(counts.index) == list(FUNNEL_EVENTS)
    assert (counts.diff().dropna() <= 0).all()


def test_funnel_events_are_ordered_and_registrations_fall_in_the_window(world: CampaignWorld) -> None:
    ev = world.enrolments
    assert not ev.duplicated(["person_id", "event"]).any()
    rank = ev["event"].map({e: i for i, e in enumerate(FUNNEL_EVENTS)})
    wide = ev.assign(rank=rank).pivot(index="person_id", columns="rank", values="occurred_at")
    times = wide.to_numpy()
    reached = ~pd.isna(times)
    assert reached[:, 0].all()  # every funnel path starts with a registration
    assert np.all(reached[:, :-1] >= reached[:, 1:])  # a later event implies the earlier ones
    for j in range(1, times.shape[1]):
        both = reached[:, j]
        assert (wide.iloc[both.nonzero()[0], j] > wide.iloc[both.nonzero()[0], j - 1]).all()
    # every registration lies within the window of the person's last randomised wave
    regs = ev[ev["event"] == "registration"].set_index("person_id")["occurred_at"]
    last = world.exposures.sort_values("wave").drop_duplicates("person_id", keep="last").set_index("person_id")
    assigned = last.loc[regs.index, "assigned_at"]
    assert (regs >= assigned).all() and (regs < assigned + pd.Timedelta(days=28)).all()
    assert registered_in_window(world).sum() == len(regs)


def test_later_events_have_realistic_delays(world: CampaignWorld) -> None:
    first = world.enrolments.pivot(index="person_id", columns="event", values="occurred_at")
    completion = (first["completed"] - first["registration"]).dropna().dt.days
    conversation = (first["advice_conversation"] - first["registration"]).dropna().dt.days
    assert 2 <= conversation.median() <= 20
    assert completion.median() > 120


def test_continuation_depends_on_the_person_not_the_arm(world: CampaignWorld) -> None:
    q = world.truth.filter(like="q__")
    per_persona = q.groupby(world.truth["persona"]).nunique()
    assert (per_persona == 1).all().all()
    assert q.groupby(world.exposures["arm"]).mean().std().max() < 0.02
    assert q["q__application"].nunique() > 1  # persona members continue more often


# -- design ----------------------------------------------------------------------------------


def test_recorded_assignment_probabilities_match_realised_shares(world: CampaignWorld, spec: RegionSpec) -> None:
    ex = world.exposures
    assert (ex.groupby(["wave", "arm"])["assignment_probability"].nunique() == 1).all()
    design = ex.groupby(["wave", "arm"])["assignment_probability"].first().unstack()
    np.testing.assert_allclose(design.sum(axis=1), 1.0)
    np.testing.assert_allclose(design["holdout"], spec.waves.holdout_share)
    for wave in design.index:
        np.testing.assert_allclose(design.loc[wave, list(world.arms)], list(spec.wave_probabilities(wave).values()))
    shares = pd.crosstab(ex["wave"], ex["arm"], normalize="index")
    n = ex.groupby("wave").size()
    se = np.sqrt(design * (1 - design)).div(np.sqrt(n), axis=0)
    assert ((shares - design).abs() < 4 * se).all().all()
    # wave 1 is uniform over the treatment arms, later waves are tilted
    assert design.loc[1].drop("holdout").nunique() == 1
    assert (design.loc[2, "free_voucher@meta"] > design.loc[2, "fresh_start@meta"]
            > design.loc[2, "fresh_start@linkedin"])


def test_registered_people_are_not_randomised_again(world: CampaignWorld) -> None:
    ex = world.exposures
    reg_wave = ex[registered_in_window(world)].set_index("person_id")["wave"]
    later = ex.merge(reg_wave.rename("reg_wave"), left_on="person_id", right_index=True)
    assert (later["wave"] <= later["reg_wave"]).all()
    per_wave = ex.groupby("wave").size()
    cumulative = reg_wave.value_counts().reindex(per_wave.index, fill_value=0).cumsum().shift(fill_value=0)
    np.testing.assert_array_equal(per_wave.to_numpy(), len(world.audience) - cumulative.to_numpy())
    jitter = ex["assigned_at"] - pd.Timestamp(2025, 2, 3, tz="UTC") - pd.to_timedelta((ex["wave"] - 1) * 42, unit="D")
    assert (jitter >= pd.Timedelta(0)).all() and (jitter < pd.Timedelta(hours=48)).all()


def test_reach_fraction_randomises_only_part_of_the_eligible(spec: RegionSpec) -> None:
    partial = spec.updated(waves={**spec.waves.model_dump(), "reach": 0.5})
    world = simulate(partial, people=4_000, waves=2, seed=1)
    per_wave = world.exposures.groupby("wave").size()
    assert ((per_wave > 1_800) & (per_wave < 2_200)).all()


# -- true effects ----------------------------------------------------------------------------


def test_true_effects_are_differences_of_truth_columns(world: CampaignWorld) -> None:
    effects = true_effects(world.truth, world.arms)
    assert list(effects.columns) == list(world.arms[1:])
    assert effects.index.equals(world.truth.index)
    np.testing.assert_allclose(effects["fresh_start@meta"], _p(world, "fresh_start@meta") - _p(world, "holdout"))
    later = true_effects(world.truth, world.arms, outcome="application")
    np.testing.assert_allclose(later["fresh_start@meta"], effects["fresh_start@meta"] * world.truth["q__application"])
    with pytest.raises(DataError, match="'job' is not a funnel event"):
        true_effects(world.truth, world.arms, outcome="job")
    with pytest.raises(DataError, match="control 'nobody' is not among arms"):
        true_effects(world.truth, world.arms, control="nobody")
    with pytest.raises(SchemaError, match="missing column"):
        true_effects(world.truth.drop(columns=["q__granted"]), world.arms, outcome="granted")


def test_some_persona_arm_effects_are_negative(world: CampaignWorld) -> None:
    effects = true_effects(world.truth, world.arms)
    by_persona = effects.groupby(world.truth["persona"]).mean()
    assert by_persona.loc["young_dropout", "ict_role_model@meta"] < 0
    assert by_persona.loc["heavy_work", "care_with_children@flyer"] < 0
    older = (world.audience.set_index("person_id").loc[world.truth["person_id"], "age"] >= 50).to_numpy()
    assert effects.loc[older, "fresh_start@meta"].mean() < 0
    # the message that speaks to a persona's barrier lifts it most
    assert by_persona.loc["towards_ict"].idxmax().startswith("ict_role_model@")
    assert by_persona.loc["retail_to_childcare"].idxmax().startswith("care_with_children@")
    assert by_persona.loc["young_dropout"].idxmax().startswith("fresh_start@")


def test_channel_effectiveness_depends_on_the_person(world: CampaignWorld) -> None:
    effects = true_effects(world.truth, world.arms)
    age = world.audience.set_index("person_id").loc[world.truth["person_id"], "age"].to_numpy()
    young, old = age <= 30, (age >= 45) & (age < 50)
    ratio_young = effects.loc[young, "free_voucher@meta"].mean() / effects.loc[young, "free_voucher@flyer"].mean()
    ratio_old = effects.loc[old, "free_voucher@meta"].mean() / effects.loc[old, "free_voucher@flyer"].mean()
    assert ratio_young > 2 * ratio_old


def test_empirical_arm_differences_agree_with_the_truth(strong: RegionSpec) -> None:
    world = simulate(strong, people=40_000, waves=2, seed=4)
    registered = registered_in_window(world)
    effects = true_effects(world.truth, world.arms)
    ex = world.exposures
    for wave in (1, 2):
        in_wave = (ex["wave"] == wave).to_numpy()
        control = in_wave & (ex["arm"] == "holdout").to_numpy()
        for arm in world.arms[1:]:
            mine = in_wave & (ex["arm"] == arm).to_numpy()
            observed = registered[mine].mean() - registered[control].mean()
            truth = effects.loc[in_wave, arm].mean()
            se = np.sqrt(registered[mine].var() / mine.sum() + registered[control].var() / control.sum())
            assert abs(observed - truth) < 4 * se, (wave, arm, observed, truth, se)
            assert abs(truth) > 4 * se  # the check could tell an effect from none
    assert effects.loc[(ex["wave"] == 1).to_numpy(), "fresh_start@meta"].mean() < 0
    summary = arm_summary(world)
    assert summary["reached"].sum() == len(ex)
    assert (summary["rate"] - summary["true_rate"]).abs().max() < 0.01


def test_wear_out_shrinks_the_lift_of_a_repeated_message(strong: RegionSpec) -> None:
    world = simulate(strong, people=5_000, waves=2, seed=8)
    t, ex = world.truth, world.exposures
    first = t[ex["wave"] == 1].set_index("person_id")
    second = t[ex["wave"] == 2].set_index("person_id")
    shown = ex[(ex["wave"] == 1) & (ex["arm"] == "free_voucher@meta")]["person_id"]
    shown = shown[shown.isin(second.index)]
    lift1 = first.loc[shown, "p__free_voucher@meta"] - first.loc[shown, "p__holdout"]
    lift2 = second.loc[shown, "p__free_voucher@meta"] - second.loc[shown, "p__holdout"]
    assert len(shown) > 500
    np.testing.assert_allclose(lift2, strong.wear_out * lift1, rtol=1e-9)
    fresh = ex[(ex["wave"] == 1) & (ex["arm"] == "holdout")]["person_id"]
    fresh = fresh[fresh.isin(second.index)]
    np.testing.assert_allclose(
        second.loc[fresh, "p__free_voucher@meta"], first.loc[fresh, "p__free_voucher@meta"], rtol=1e-12
    )


# -- specs -------------------------------------------------------------------------------------


def test_small_worlds_via_subset_and_model_copy(spec: RegionSpec) -> None:
    small = spec.subset(messages=["fresh_start", "free_voucher"], channels=["meta"])
    assert small.arm_names() == ("holdout", "fresh_start@meta", "free_voucher@meta")
    world = simulate(small, people=1_000, waves=2, seed=0)
    assert set(world.exposures["arm"]) <= set(world.arms) and world.arms == small.arm_names()
    copied = spec.model_copy(update={"wear_out": 1.0, "attribution_days": 14})
    assert simulate(copied, people=500, waves=1, seed=0).attribution_days == 14
    with pytest.raises(SpecError, match="unknown message"):
        spec.subset(messages=["no_such_message"])


def test_invalid_specs_are_rejected_with_the_field_named(spec: RegionSpec, tmp_path: Path) -> None:
    broken = spec.model_copy(update={"attribution_days": 50})
    with pytest.raises(SpecError, match="gap_days"):
        simulate(broken, people=100, waves=1, seed=0)
    with pytest.raises(SpecError, match="unknown persona"):
        spec.updated(messages={"m": {"lift": {"astronaut": 1.0}}})
    with pytest.raises(SpecError, match="funnel"):
        spec.updated(funnel={k: v for k, v in list(spec.model_dump()["funnel"].items())[:3]})
    with pytest.raises(SpecError, match="message name '@x'"):
        spec.updated(messages={"@x": {"lift": {}}})
    with pytest.raises(SpecError, match="people must be an integer >= 1"):
        simulate(spec, people=0, waves=1, seed=0)
    text = REGION.read_text().replace("sector: {security: 0.85", "sector: {guarding: 0.85")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(SpecError, match=r"bad.yaml: invalid RegionSpec: .*security_guard.*guarding"):
        load_spec(bad, RegionSpec)


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_writes_the_world_and_prints_a_summary(tmp_path: Path) -> None:
    from uplift.cli import app

    out = tmp_path / "sim"
    result = CliRunner().invoke(
        app,
        ["simulate", "--region", str(REGION), "--people", "3000", "--waves", "2", "--seed", "7", "--out", str(out),
         "--format", "csv"],
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"audience.csv", "exposures.csv", "enrolments.csv", "truth"}
    assert (out / "truth" / "truth.parquet").exists()
    assert "registration : conversation : application" in result.output
    assert "holdout" in result.output
    exposures = read_table(out / "exposures.csv")
    assert sorted(exposures["wave"].unique()) == [1, 2]
    bad = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--format", "xls"])
    assert bad.exit_code == 2
    assert not (tmp_path / "x").exists()


# -- worlds written in chunks of people ----------------------------------------------------------------------------
def test_a_world_of_one_chunk_is_the_world_simulated_whole(region, tmp_path):
    from uplift.simulate.chunked import write_world_in_chunks

    whole = simulate(region, people=1_500, waves=3, seed=5)
    summary = write_world_in_chunks(region, tmp_path, people=1_500, waves=3, seed=5, chunk_people=1_500)
    for name in ("audience", "exposures", "enrolments", "truth"):
        # the files as written whole
        written = write_table(getattr(whole, name), tmp_path / "whole" / f"{name}.parquet")
        pd.testing.assert_frame_equal(pd.read_parquet(summary.paths[name]), pd.read_parquet(written), check_exact=True)
    assert summary.chunks == 1 and summary.rows["exposures"] == len(whole.exposures)


def test_a_world_in_chunks_is_seeded_valid_and_adds_up(region, tmp_path):
    from uplift.data.inputs import load_inputs
    from uplift.simulate.chunked import write_world_in_chunks
    from uplift.simulate.summary import funnel_counts

    first = write_world_in_chunks(region, tmp_path / "a", people=2_000, waves=3, seed=5, chunk_people=600)
    again = write_world_in_chunks(region, tmp_path / "b", people=2_000, waves=3, seed=5, chunk_people=600)
    assert first.chunks == 4 and all(first.paths[n].read_bytes() == again.paths[n].read_bytes() for n in first.paths)
    assert pq.ParquetFile(first.paths["exposures"]).metadata.num_row_groups == 4
    inputs = load_inputs(first.paths["audience"], first.paths["exposures"], first.paths["enrolments"])  # contracts
    assert inputs.audience["person_id"].is_unique and len(inputs.audience) == 2_000
    ex = inputs.exposures
    assert first.rows["exposures"] == len(ex) == len(pd.read_parquet(first.paths["truth"]))
    reached = ex["arm"].value_counts().reindex(list(first.arms.index), fill_value=0)
    assert (first.arms["reached"] == reached).all()
    world = CampaignWorld(audience=inputs.audience, exposures=ex, enrolments=inputs.enrolments,
                          truth=pd.read_parquet(first.paths["truth"]), arms=first.arm_names)
    assert (funnel_counts(world) == first.funnel).all()
    assert not (first.paths["audience"].read_bytes() == write_world_in_chunks(
        region, tmp_path / "c", people=2_000, waves=3, seed=5, chunk_people=1_000).paths["audience"].read_bytes())


def test_csv_is_for_worlds_of_one_chunk(region, tmp_path):
    from uplift.simulate.chunked import write_world_in_chunks

    with pytest.raises(SpecError, match="more than 500 people .* is written as Parquet"):
        write_world_in_chunks(region, tmp_path, people=1_000, waves=2, seed=1, chunk_people=500, fmt="csv")
    assert not list(tmp_path.iterdir())
