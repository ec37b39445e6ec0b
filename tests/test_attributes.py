"""Optional audience attributes: the contract, a programme's own attributes, and what is switched off without them."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from apiserver import SMALL
from conftest import ROOT
from handmade import SPEC, audience, enrolments, exposures
from uplift.data.contracts import AUDIENCE, audience_schema, validate
from uplift.data.inputs import load_inputs
from uplift.data.vocabulary import OPTIONAL_ATTRIBUTES, REQUIRED_ATTRIBUTES
from uplift.errors import DataError, MissingAttributesWarning, SchemaError
from uplift.features import build_features, build_training_table
from uplift.features.build import features_for_audience, missing_attributes
from uplift.pipeline import load_feature_set, load_segment_spec
from uplift.scoring import Scorer, SegmentLabeler, model_feature_set, score_file
from uplift.segments import build_segment_table
from uplift.segments.assign import assign_personas, rules_for_columns
from uplift.simulate import simulate, write_world
from uplift.simulate.generate import generate_region
from uplift.specs import load_spec
from uplift.specs.family import FamilySpec
from uplift.specs.features import AttributeSpec, FeatureSetSpec
from uplift.specs.model import ModelSpec
from uplift.specs.planning import CostCatalogue, PlanningPolicy
from uplift.tracking.pyfunc import UpliftPyfunc

POOR = list(REQUIRED_ATTRIBUTES)


def test_the_contract_requires_id_age_gender_and_place_and_checks_the_rest_when_present():
    assert [n for n, c in AUDIENCE.columns.items() if c.required] == list(REQUIRED_ATTRIBUTES)
    assert [n for n, c in AUDIENCE.columns.items() if not c.required] == list(OPTIONAL_ATTRIBUTES)
    poor = audience()[POOR]
    assert list(validate(poor, AUDIENCE, source="poor.csv").columns) == POOR
    with pytest.raises(SchemaError, match=r"(?s)poor.csv.*column 'gender': missing"):
        validate(poor.drop(columns=["gender"]), AUDIENCE, source="poor.csv")
    bad = audience()[[*POOR, "sector"]].assign(sector=["construction", "bricklaying", "care"])
    with pytest.raises(SchemaError, match=r"(?s)column 'sector'.*1 row\(s\) break it \(e.g. 'bricklaying'\)"):
        validate(bad, AUDIENCE, source="some.csv")


def test_a_programme_declares_attributes_of_its_own_which_are_checked_and_become_features():
    spec = load_feature_set(str(ROOT / "features" / "own_attributes.yaml"))
    people = audience().assign(language=["dutch", "arabic", "polish"], benefit_status=[True, False, True],
                               months_unemployed=[0, 14.5, 3])
    checked = validate(people, audience_schema(spec.attributes), source="audience.csv")
    wrong = people.assign(language=["dutch", "klingon", "polish"], months_unemployed=[0, -2, 3])
    with pytest.raises(SchemaError) as err:
        validate(wrong, audience_schema(spec.attributes), source="audience.csv")
    assert "column 'language'" in str(err.value) and "column 'months_unemployed'" in str(err.value)
    small = spec.model_copy(update={"messages": SPEC.messages, "channels": SPEC.channels})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = build_training_table(checked, exposures(), enrolments(), small)
    kinds = {c.name: c.kind for c in table.features}
    assert kinds["language"] == "categorical" and kinds["benefit_status"] == kinds["months_unemployed"] == "numeric"
    row = table.frame[table.frame["person_id"] == "p2"].iloc[0]
    assert (row["language"], row["benefit_status"], row["months_unemployed"]) == ("arabic", 0.0, 14.5)
    # a required attribute of the programme's own must be there; a declared name may not shadow a standard one
    required = {"language": spec.attributes["language"].model_copy(update={"required": True})}
    with pytest.raises(SchemaError, match="column 'language': missing"):
        validate(audience(), audience_schema(required), source="audience.csv")
    with pytest.raises(ValidationError, match="standard audience attributes"):
        FeatureSetSpec(name="x", features=("age",), attributes={"sector": AttributeSpec(kind="boolean")})
    with pytest.raises(ValidationError, match="needs its levels"):
        AttributeSpec(kind="categorical")


def test_features_that_need_an_absent_attribute_are_left_out_with_one_note():
    spec = SPEC.model_copy(update={"features": (*SPEC.features, "sector", "education")})
    assert missing_attributes(spec, POOR) == {"migration_background": ("migration_background",),
                                              "sector": ("sector",), "education": ("education",)}
    with pytest.warns(MissingAttributesWarning, match=r"no education, migration_background, sector; features left "
                                                      r"out: migration_background, sector, education"):
        table = build_training_table(audience()[POOR], exposures(), enrolments(), spec)
    full = build_training_table(audience(), exposures(), enrolments(), spec)
    kept = [c for c in full.features if c.name not in ("migration_background", "sector", "education")]
    assert list(table.features) == kept
    pd.testing.assert_frame_equal(table.frame, full.frame.drop(columns=["migration_background", "sector", "education"]))
    # scoring-time features are strict: a feature set that reads an absent attribute is refused by name
    keys = pd.DataFrame({"person_id": ["p1"], "wave": [0], "as_of": [pd.Timestamp("2026-03-01", tz="UTC")]})
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['education', 'migration_background', 'sector'\]"):
        build_features(keys, audience()[POOR], exposures(), enrolments(), spec)
    only = SPEC.model_copy(update={"features": ("sector", "education")})
    with pytest.raises(DataError, match="lacks \\['education', 'sector'\\], which every feature needs"):
        features_for_audience(only, POOR)


def test_persona_rules_over_absent_attributes_are_switched_off_with_one_note():
    spec = load_segment_spec()
    columns = ["person_id", "age", "gender", "municipality", "neighbourhood", "sector"]
    with pytest.warns(MissingAttributesWarning) as notes:
        kept = rules_for_columns(spec.personas, columns)
    assert len(notes) == 1
    message = str(notes[0].message)
    assert "the data have no education, employment, has_children, income_band" in message
    assert "towards_ict (needs education)" in message and "heavy_work" not in message
    assert [r.name for r in kept] == ["heavy_work", "security_guard", "towards_education"]
    assert list(assign_personas(audience()[columns], kept)) == ["none", "heavy_work", "towards_education"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rules_for_columns(spec.personas, [*REQUIRED_ATTRIBUTES, *OPTIONAL_ATTRIBUTES]) == spec.personas


@pytest.fixture(scope="module")
def poor_world():
    """A world from the family whose programme hands over only age, gender and place."""
    family = load_spec(ROOT / "features" / "regions" / "family.yaml", FamilySpec)
    region = next(r for r in (generate_region(family, seed) for seed in range(40)) if not r.given_attributes)
    return simulate(region, people=15_000, waves=2, seed=4)


def test_a_world_with_only_age_gender_and_postcode_trains_segments_and_plans(poor_world, tmp_path):
    from uplift.allocation import plan
    from uplift.modeling.validation import validate_model

    paths = write_world(poor_world, tmp_path, fmt="csv")
    inputs = load_inputs(paths["audience"], paths["exposures"], paths["enrolments"])
    assert list(inputs.audience.columns) == POOR
    with pytest.warns(MissingAttributesWarning, match="features left out: employment, sector, education"):
        table = build_training_table(inputs.audience, inputs.exposures, inputs.enrolments, load_feature_set("default"))
    names = {c.name for c in table.features}
    assert not names & set(OPTIONAL_ATTRIBUTES) and {"age", "age_band", "gender", "neighbourhood"} <= names
    report = validate_model(ModelSpec.model_validate(SMALL), table)
    segment_spec = load_segment_spec()
    folds, heldout = report.out_of_sample_folds()
    with pytest.warns(MissingAttributesWarning) as notes:
        segments = build_segment_table(*report.out_of_sample(), segment_spec, folds=folds, heldout_fold=heldout)
    assert len(notes) == 1 and "persona rules switched off, the data have no education" in str(notes[0].message)
    assert set(segments["kind"]) == {"targetable"} and (segments["size"] >= segment_spec.min_size).all()
    assert np.isfinite(segments[["effect", "effect_sd", "lo", "hi"]].to_numpy()).all()
    # the priority groups the data can count: migration background is not in the data, and the generated
    # region's neighbourhoods have no deprivation scores in serve/groups.yaml's deprivation_from
    from uplift.pipeline import load_priority_groups
    from uplift.segments.composition import with_composition

    with pytest.warns(MissingAttributesWarning,
                      match="priority groups not counted, the data have no migration_background, "
                      "neighbourhood deprivation: migration_background, poorer_neighbourhoods") as notes:
        counted = with_composition(segments, report.out_of_sample()[0].frame, segment_spec, load_priority_groups())
    assert len(notes) == 1
    assert counted.attrs == segments.attrs and "stages" in counted.attrs  # the stage choice travels with the table
    segments = counted
    assert segments[["group__migration_background", "group__poorer_neighbourhoods"]].isna().all().all()
    assert segments["group__women"].between(0, 1).all()
    costs = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
    policy = load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy)
    result = plan(segments, budget=2_000.0, costs=costs, policy=policy)
    assert result.status == "optimal" and not result.conflicts
    checks = {f.name: f for f in result.floors}
    assert checks["women"].status == "held"
    reach = checks["migration_background_reach"]
    assert reach.status == "not_applicable" and "do not count priority group 'migration_background'" in reach.reason
    assert "fairness floor 'migration_background_reach' does not apply to this plan" in "\n".join(result.notes)
    assert 0 < result.cells["spend"].sum() <= 2_000.0 + 1e-6
    # and the model scores an audience file with the same three attributes
    pyfunc = UpliftPyfunc(report.model, shrinkage=report.shrinkage.lam)
    scorer = Scorer(model=pyfunc, feature_set=model_feature_set(load_feature_set("default"), pyfunc),
                    labeler=SegmentLabeler(segments, segment_spec))
    with pytest.warns(MissingAttributesWarning) as notes:  # said with the first of the three chunks only
        summary = score_file(paths["audience"], tmp_path / "scores.csv", scorer=scorer, exposures=inputs.exposures,
                             enrolments=inputs.enrolments, as_of=pd.Timestamp("2025-07-01", tz="UTC"), chunk_rows=5_000)
    assert [str(n.message)[:29] for n in notes] == ["persona rules switched off, t"] and summary.chunks == 3
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert summary.rows_scored == len(inputs.audience) and summary.rows_rejected == 0
    assert (scores["persona"] == "none").all() and scores["segment"].isin(set(segments["segment"]) | {np.nan}).all()
