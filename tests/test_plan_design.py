"""A wave designed from a plan, on hand-made plans: every cell's counts and probabilities worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from uplift.design.fromplan import cell_counts, design_from_plan, registered_people
from uplift.errors import DataError, SchemaError
from uplift.features.propensity import DESIGN_CELL, design_keys, design_table, row_propensities
from uplift.specs import load_spec
from uplift.specs.experiment import ExperimentSpec
from uplift.specs.planning import CostCatalogue
from uplift.specs.segments import SegmentSpec

COSTS = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
SEGMENTS = SegmentSpec(dimensions=("age_band", "gender", "municipality"), min_size=1)
ARMS = ("a@meta", "b@meta", "a@flyer", "b@flyer")
A = "age_band=25-34|gender=female|municipality=Delft"
B = "age_band=35-44|gender=male|municipality=other"
META, FLYER = 0.03, 0.07  # EUR per contact, first tier (serve/costs.yaml)
START = dt.date(2026, 3, 2)


def _spec(salt: str = "w3") -> ExperimentSpec:
    return ExperimentSpec(name="w3", wave=3, arms=list(ARMS), holdout_share=0.1, arm_weights="from_plan", salt=salt,
                          outcome="registration", attribution_days=28, minimum_detectable_effect=0.01, start=START,
                          end=START + dt.timedelta(days=27))


def _audience() -> pd.DataFrame:
    """100 women of 30 in Delft (segment A), 60 men of 40 in Leiden and 20 in Gouda (both in B, merged),
    and 15 people of 60 in Delft (in no planned segment)."""
    rows = ([(30, "female", "Delft", "2611")] * 100 + [(40, "male", "Leiden", "2311")] * 60
            + [(40, "male", "Gouda", "2801")] * 20 + [(60, "female", "Delft", "2612")] * 15)
    frame = pd.DataFrame(rows, columns=["age", "gender", "municipality", "neighbourhood"])
    frame.insert(0, "person_id", [f"p{i:03d}" for i in range(len(frame))])
    return frame


def _plan() -> pd.DataFrame:
    return pd.DataFrame({
        "segment": [A, A, A, B],
        "arm": ["a@meta", "b@flyer", "b@meta", "a@meta"],
        "message": ["a", "b", "b", "a"], "channel": ["meta", "flyer", "meta", "meta"],
        "contacts": [30, 20, 0, 70],
        "holdout_people": [10, 5, 0, 20],
        "spend": [30 * META, 20 * FLYER, 0.0, 70 * META],
        "expected_conversions": [0.3, 0.1, 0.0, 0.7], "lo": [0.1, 0.0, 0.0, 0.2], "hi": [0.5, 0.2, 0.0, 1.2],
        "exploration": [10 * META, 0.0, 0.0, 0.0],  # a third of the first cell's spend is exploration
    })


def _design(plan=None, audience=None, **kw):
    return design_from_plan(_plan() if plan is None else plan, _audience() if audience is None else audience,
                            _spec(), segment_spec=SEGMENTS, costs=COSTS, **kw)


def test_every_cells_counts_and_probabilities_are_those_worked_out_by_hand():
    design = _design()
    ex = design.exposures
    counts = ex.groupby([DESIGN_CELL, "arm"]).size().to_dict()
    # A: 15 holdout (10 + 5), 30 a@meta, 20 b@flyer = 65 of its 100 people; b@meta has no contacts
    assert counts[(A, "holdout")] == 15 and counts[(A, "a@meta")] == 30 and counts[(A, "b@flyer")] == 20
    # B: 80 people for 90 asked: 20 x 80/90 = 17.8 -> 18, 70 x 80/90 = 62.2 -> 62 (largest remainders)
    assert counts[(B, "holdout")] == 18 and counts[(B, "a@meta")] == 62
    assert len(ex) == 65 + 80 and design.unplanned == 15 and design.excluded_registered == 0
    prob = ex.groupby([DESIGN_CELL, "arm"])["assignment_probability"].agg(["min", "max"])
    assert (prob["min"] == prob["max"]).all()
    assert prob.loc[(A, "holdout"), "min"] == pytest.approx(15 / 65)
    assert prob.loc[(A, "a@meta"), "min"] == pytest.approx(30 / 65)
    assert prob.loc[(A, "b@flyer"), "min"] == pytest.approx(20 / 65)
    assert prob.loc[(B, "holdout"), "min"] == pytest.approx(18 / 80)
    assert prob.loc[(B, "a@meta"), "min"] == pytest.approx(62 / 80)
    # costs from the plan's price, checked against the catalogue; the holdout costs nothing
    cost = ex.groupby("arm")["cost_eur"].agg(["min", "max"])
    assert cost.loc["a@meta"].tolist() == pytest.approx([META, META]) and cost.loc["holdout"].tolist() == [0, 0]
    assert cost.loc["b@flyer"].tolist() == pytest.approx([FLYER, FLYER])
    # a third of A's a@meta contacts are exploration, nobody else's
    assert int(ex["exploration"].sum()) == 10 and set(ex.loc[ex["exploration"], "arm"]) == {"a@meta"}
    # flyers are delivered per postcode: the design names it; the other channels name none
    assert set(ex.loc[ex["channel"] == "flyer", "area"]) == {"2611"}
    assert set(ex.loc[ex["channel"] != "flyer", "area"]) == {""}
    # the check reports the rounding in B and none in A
    check = design.check.set_index(["segment", "arm"])
    assert check.loc[(B, "a@meta"), "rounding"] == -8 and check.loc[(B, "holdout"), "rounding"] == -2
    assert check.loc[(A, "a@meta"), "rounding"] == 0 and check.loc[(A, "a@meta"), "spend"] == pytest.approx(0.9)
    assert check.loc[(B, "a@meta"), "spend"] == pytest.approx(62 * META)
    assert check.loc[(B, "a@meta"), "planned_spend"] == pytest.approx(70 * META)


def test_the_design_is_read_back_as_each_cells_propensities():
    ex = _design().exposures
    arms = ("holdout", *ARMS)
    table = design_table(ex, arms)
    prop = row_propensities(design_keys(ex), table)
    np.testing.assert_allclose(prop.sum(axis=1), 1.0)
    in_b = (ex[DESIGN_CELL] == B).to_numpy()
    np.testing.assert_allclose(prop.loc[in_b, "a@meta"], 62 / 80)
    np.testing.assert_allclose(prop.loc[~in_b, "b@flyer"], 20 / 65)
    assert (prop.loc[in_b, "b@flyer"] == 0).all()


def test_the_holdout_is_drawn_at_random_inside_each_cell():
    """Over many salts each person of A is in the holdout 15 / 100 of the time, whoever they are."""
    audience = _audience()
    held = pd.Series(0.0, index=audience["person_id"])
    salts = 150
    for k in range(salts):
        ex = design_from_plan(_plan(), audience, _spec(f"s{k}"), segment_spec=SEGMENTS, costs=COSTS).exposures
        held[ex.loc[(ex["arm"] == "holdout") & (ex[DESIGN_CELL] == A), "person_id"]] += 1
    rate = held.iloc[:100] / salts
    assert rate.mean() == pytest.approx(0.15, abs=0.01)
    # binomial(150, 0.15): sd 0.029; no person far off (4 sd), and the first and last fifty alike (4 sd)
    assert rate.between(0.03, 0.27).all()
    assert abs(rate.iloc[:50].mean() - rate.iloc[50:].mean()) < 0.025


def test_the_same_salt_gives_the_same_design_and_another_salt_another():
    one, two = _design().exposures, _design().exposures
    pd.testing.assert_frame_equal(one, two)
    other = design_from_plan(_plan(), _audience(), _spec("other"), segment_spec=SEGMENTS, costs=COSTS).exposures
    assert not one.set_index("person_id")["arm"].equals(other.set_index("person_id")["arm"].reindex(one["person_id"]))


def test_registered_people_are_left_out_and_counted():
    enrolments = pd.DataFrame({"person_id": ["p000", "p001", "p002"],
                               "event": ["registration", "registration", "application"],
                               "occurred_at": pd.to_datetime(["2026-01-10", "2026-04-01", "2026-01-11"], utc=True)})
    registered = registered_people(enrolments, START)
    assert registered == {"p000"}  # p001 registers after the wave starts; p002's event is not a registration
    design = _design(registered=registered)
    assert design.excluded_registered == 1 and "p000" not in set(design.exposures["person_id"])
    assert len(design.exposures[design.exposures[DESIGN_CELL] == A]) == 65  # A still has 99 people for its 65


def test_a_segment_short_of_people_is_scaled_down_in_proportion():
    plan = pd.DataFrame({"segment": ["s", "s", "s"], "arm": ["a@meta", "b@meta", "a@flyer"],
                         "contacts": [50, 30, 0], "holdout_people": [10, 10, 0]})
    counts = cell_counts(plan, pd.Series({"s": 50}))
    assert counts["planned"].tolist() == [20, 50, 30]
    assert counts["n"].tolist() == [10, 25, 15] and counts["arm"].tolist() == ["holdout", "a@meta", "b@meta"]
    assert cell_counts(plan, pd.Series({"s": 0}))["n"].tolist() == [0, 0, 0]


def test_a_plan_with_missing_columns_names_the_file_and_columns():
    with pytest.raises(SchemaError, match=r"plan\.csv: missing column\(s\) \['holdout_people'\]"):
        _design(plan=_plan().drop(columns="holdout_people"), source="plan.csv")


def test_a_plan_for_another_models_arms_is_refused():
    plan = _plan().assign(arm=["a@meta", "c@linkedin", "b@meta", "a@meta"])
    with pytest.raises(DataError, match=r"plan\.csv: column 'arm' has \['c@linkedin'\], which the experiment does not"):
        _design(plan=plan, source="plan.csv")


def test_a_plan_priced_with_another_catalogue_is_refused():
    plan = _plan().assign(spend=[30 * 1.0, 20 * FLYER, 0.0, 70 * META])
    with pytest.raises(DataError, match=r"arm 'a@meta': spend / contacts = EUR 1\.0000 per contact"):
        _design(plan=plan, source="plan.csv")


def test_a_repeated_cell_and_a_negative_count_are_refused():
    plan = pd.concat([_plan(), _plan().iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match="appear more than once"):
        _design(plan=plan)
    with pytest.raises(SchemaError, match=r"column 'contacts': expected values >= 0"):
        _design(plan=_plan().assign(contacts=[30, 20, 0, -1]))


def test_a_stored_plan_is_read_from_its_json_with_the_model_that_made_it(tmp_path):
    import json

    from uplift.cli.experiment import read_plan

    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"id": "p1", "model_name": "uplift-registration", "model_version": 3,
                                "cells": _plan().to_dict(orient="records")}))
    stored = read_plan(path)
    assert stored.model == "uplift-registration/3"
    pd.testing.assert_frame_equal(stored.cells[_plan().columns], _plan())
    assert len(_design(plan=stored.cells).exposures) == 145
    (tmp_path / "bad.json").write_text(json.dumps({"id": "p1"}))
    with pytest.raises(SchemaError, match=r"bad\.json: field 'cells' is missing or not a list"):
        read_plan(tmp_path / "bad.json")
