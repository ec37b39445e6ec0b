"""Segments: the anonymity floor, persona rules, and calibrated effects with honest intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from uplift.errors import SchemaError, SpecError
from uplift.modeling.truthcheck import true_outcome_probabilities
from uplift.modeling.validation import validate_model
from uplift.segments import assign_personas, build_segment_table, fay_herriot, targetable_cells, truth_segment_effects
from uplift.specs import load_spec
from uplift.specs.model import ModelSpec
from uplift.specs.segments import PersonaRule, SegmentSpec


def _people(cells: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = []
    for (band, gender), n in cells.items():
        rows += [{"person_id": f"{band}-{gender}-{i}", "age_band": band, "gender": gender} for i in range(n)]
    return pd.DataFrame(rows)


def test_small_cells_merge_into_other_and_what_stays_small_is_suppressed():
    people = _people({("25-34", "female"): 60, ("25-34", "male"): 30, ("25-34", "other"): 25, ("55-67", "other"): 10})
    cells = targetable_cells(people, ("age_band", "gender"), min_size=50)
    labels = cells.groupby("segment")["gender"].size()
    # 30 male + 25 other in 25-34 are both under 50: together they make "gender=other" of 55 people
    assert labels.to_dict() == {"": 10, "age_band=25-34|gender=female": 60, "age_band=25-34|gender=other": 55}
    # the 10 people of 55-67 are suppressed: never shown
    assert (cells.loc[people["age_band"] == "55-67", "segment"] == "").all()


def test_people_not_rows_count_towards_the_floor():
    people = _people({("25-34", "female"): 30})
    twice = pd.concat([people, people], ignore_index=True)  # 30 people seen in two waves
    cells = targetable_cells(twice, ("age_band", "gender"), min_size=50)
    assert (cells["segment"] == "").all()


def test_persona_rules_first_match_wins():
    frame = pd.DataFrame(
        {
            "age": [45, 45, 23, 60],
            "gender": ["male", "male", "female", "female"],
            "sector": ["construction", "security", "hospitality", "care"],
            "education": ["vocational", "vocational", "no_diploma", "higher"],
            "employment": ["employed_permanent"] * 4,
            "income_band": ["middle"] * 4,
            "migration_background": [0.0, 1.0, 0.0, 0.0],
            "has_children": [1.0, 0.0, 0.0, 1.0],
        }
    )
    rules = (
        PersonaRule(name="heavy_work", rule={"gender": ["male"], "sector": ["construction"], "age_min": 36}),
        PersonaRule(name="any_man", rule={"gender": ["male"]}),
        PersonaRule(name="young", rule={"age_max": 27}),
    )
    assert list(assign_personas(frame, rules)) == ["heavy_work", "any_man", "young", "none"]
    with pytest.raises(SchemaError, match=r"persona rules use column\(s\) \['sector'\]"):
        assign_personas(frame.drop(columns=["sector"]), rules)


def test_segment_spec_validation_names_the_field():
    with pytest.raises(ValidationError, match="cannot be targeted"):
        SegmentSpec(dimensions=("age_band", "income_band"))
    with pytest.raises(ValidationError, match="only use audience attributes"):
        PersonaRule(name="x", rule={"persona": ["heavy_work"]})


def test_segment_spec_file_loads(tmp_path):
    spec = load_spec(__import__("conftest").ROOT / "features" / "segments.yaml", SegmentSpec)
    assert len(spec.personas) == 7 and spec.min_size == 50
    bad = tmp_path / "s.yaml"
    bad.write_text("dimensions: [shoe_size]\n")
    with pytest.raises(SpecError, match=r"s.yaml: invalid SegmentSpec: dimensions"):
        load_spec(bad, SegmentSpec)


def test_fay_herriot_leans_on_precise_observations_and_on_the_model_otherwise():
    model = np.array([0.01, 0.01, 0.02, 0.00])
    observed = np.array([0.05, 0.03, 0.02, np.nan])
    se = np.array([1e-6, 0.02, 0.02, np.nan])
    effect, sd, (alpha, beta), A = fay_herriot(observed, se, model)
    assert effect[0] == pytest.approx(0.05, abs=1e-6) and sd[0] < 1e-5  # precise: the observed effect
    assert np.isfinite(effect[3]) and sd[3] == pytest.approx(np.sqrt(A))  # unobserved: corrected model
    assert effect[3] == pytest.approx(alpha + beta * 0.0)


@pytest.fixture(scope="module")
def calibrated(strong_table, strong_world):
    spec = ModelSpec(name="p", learner="pooled", lightgbm={"n_estimators": 60, "num_leaves": 7, "min_child_samples": 100},
                     cv={"folds": 3, "test_share": 0.25, "seed": 1})
    report = validate_model(spec, strong_table)
    seg_spec = SegmentSpec(dimensions=("age_band", "gender", "municipality"), min_size=50)
    table, preds = report.out_of_sample()
    segments = build_segment_table(table, preds, seg_spec)
    true_p = true_outcome_probabilities(table.frame[["person_id", "wave"]], strong_world.truth, table.arms)
    return segments, segments.merge(truth_segment_effects(table, true_p, seg_spec), on=["segment", "arm"])


def test_segment_table_never_shows_a_small_segment(calibrated):
    segments, _ = calibrated
    assert len(segments) > 0 and (segments["size"] >= 50).all()
    assert set(segments["kind"]) == {"targetable"}
    assert {"effect", "effect_sd", "lo", "hi", "base_rate", "message", "channel", "age_band", "gender"} <= set(segments.columns)
    assert (segments["lo"] <= segments["effect"]).all() and (segments["effect"] <= segments["hi"]).all()


def test_segment_intervals_cover_the_truth_and_effects_track_it(calibrated):
    _, merged = calibrated
    covered = ((merged["true_effect"] >= merged["lo"]) & (merged["true_effect"] <= merged["hi"])).mean()
    # 80% intervals: measured 0.86 on this world; accept a sampling band around 0.8
    assert 0.65 <= covered <= 0.97, covered
    assert np.corrcoef(merged["effect"], merged["true_effect"])[0, 1] > 0.5
    # calibrated: the reported effects are not systematically too small or too large
    slope = np.polyfit(merged["effect"], merged["true_effect"], 1)[0]
    assert 0.5 <= slope <= 1.5, slope
