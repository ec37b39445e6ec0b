"""The floors' price benchmark (benchmarks/floorcost.py): its policies and its aggregation, on hand-made frames."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is a top-level folder, not part of the installed package

from benchmarks.floorcost import CONVERSION_FLOOR, FloorStudy, floor_policies, floor_rows, floor_summary  # noqa: E402
from uplift.specs import load_spec  # noqa: E402
from uplift.specs.planning import PlanningPolicy  # noqa: E402


@pytest.fixture(scope="module")
def shipped() -> PlanningPolicy:
    return load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy)


def test_a_floor_left_out_leaves_the_shipped_policy_without_just_that_floor(shipped):
    policies, studies = floor_policies(shipped)
    names = [f.name for f in shipped.fairness_floors] + [c.name for c in shipped.coverage_floors]
    assert len(names) == 4
    for name in names:
        without = policies[f"without_{name}"]
        assert without.fairness_floors == tuple(f for f in shipped.fairness_floors if f.name != name)
        assert without.coverage_floors == tuple(c for c in shipped.coverage_floors if c.name != name)
        assert len(without.fairness_floors) + len(without.coverage_floors) == len(names) - 1
        # every other field of the policy is the shipped one's
        assert without.model_dump(exclude={"fairness_floors", "coverage_floors"}) == shipped.model_dump(
            exclude={"fairness_floors", "coverage_floors"})
    assert policies["shipped"] is shipped
    assert policies["no_floors"].fairness_floors == () and policies["no_floors"].coverage_floors == ()
    # no shipped conversion floor keeps a confidence: one is added, and priced against the shipped policy
    added = policies[f"with_{CONVERSION_FLOOR.name}"]
    assert added.fairness_floors == (*shipped.fairness_floors, CONVERSION_FLOOR)
    assert studies[-1] == FloorStudy(CONVERSION_FLOOR.name, "conversion_share", f"with_{CONVERSION_FLOOR.name}",
                                     "shipped", 0.9)
    assert [s.without_policy for s in studies[:4]] == [f"without_{n}" for n in names]


def test_no_conversion_floor_is_added_to_a_policy_that_has_one(shipped):
    policy = shipped.model_copy(update={"fairness_floors": (*shipped.fairness_floors, CONVERSION_FLOOR)})
    policies, studies = floor_policies(policy)
    assert not any(name.startswith("with_") for name in policies)
    assert [s.floor for s in studies if s.kind == "conversion_share"] == [CONVERSION_FLOOR.name]
    assert next(s for s in studies if s.floor == CONVERSION_FLOOR.name).confidence == 0.9


def _frames():
    """Three worlds at one budget each, the floor 'women' priced: A binds (stated 9 [4, 14]) and holds, B does
    not apply, C is slack and fails under the truth."""
    worlds = {"A": ("family", "all attributes", 100.0), "B": ("haaglanden", "all attributes", 50.0),
              "C": ("family", "fewer attributes", 40.0)}
    true = {  # (policy, plan) -> true conversions per world
        ("shipped", "recommended"): {"A": 80.0, "B": 40.0, "C": 30.0},
        ("shipped", "oracle"): {"A": 95.0, "B": 50.0, "C": 40.0},
        ("without_women", "recommended"): {"A": 88.0, "B": 45.0, "C": 30.0},
        ("without_women", "oracle"): {"A": 100.0, "B": 50.0, "C": 40.0},
    }
    estimated = {("shipped", "A"): 90.0, ("without_women", "A"): 100.0}
    plans = pd.DataFrame([
        {"world": w, "kind": worlds[w][0], "data": worlds[w][1], "budget": worlds[w][2], "budget_share": 0.1,
         "policy": policy, "plan": plan, "true_conversions": value,
         "share_of_oracle": value / true[(policy, "oracle")][w],
         "estimated_conversions": estimated.get((policy, w), 1.0)}
        for (policy, plan), by_world in true.items() for w, value in by_world.items()])
    floors = pd.DataFrame([
        {"world": w, "budget": worlds[w][2], "policy": "shipped", "plan": "recommended", "floor": "women",
         "kind": "spend_share", "min_share": 0.4, "true_share": share, "holds": share >= 0.4}
        for w, share in (("A", 0.4), ("C", 0.35))])
    price = {"A": (True, "", "binds", 9.0, 4.0, 14.0), "B": (False, "no group", "", np.nan, np.nan, np.nan),
             "C": (True, "", "slack", 0.0, 0.0, 0.0)}
    prices = pd.DataFrame([
        {"world": w, "budget": worlds[w][2], "policy": "shipped", "floor": "women", "applies": a, "reason": r,
         "rule_status": st, "stated_cost": c, "stated_lo": lo, "stated_hi": hi, "promise_ratio": 1.0}
        for w, (a, r, st, c, lo, hi) in price.items()])
    return plans, floors, prices


def test_floor_rows_and_their_summary_on_a_hand_made_frame():
    plans, floors, prices = _frames()
    study = FloorStudy("women", "spend_share", "shipped", "without_women", confidence=0.9)
    rows = floor_rows(plans, floors, prices, [study]).set_index("world")
    assert rows.loc["A", "share_with"] == pytest.approx(0.80) and rows.loc["A", "share_without"] == pytest.approx(0.88)
    assert rows.loc["A", "own_share_with"] == pytest.approx(80 / 95)
    assert rows.loc["A", "true_cost"] == 8.0 and rows.loc["A", "oracle_true_cost"] == 5.0
    assert rows.loc["A", "estimated_cost"] == 10.0
    assert rows.loc["A", "binds"] and rows.loc["A", "stated_covers"] and rows.loc["A", "holds"]
    assert rows.loc["B", "reason"] == "no group" and pd.isna(rows.loc["B", "holds"])
    assert not rows.loc["C", "holds"] and not rows.loc["C", "binds"]

    # every floor at once holds where every floor that applies holds; a world where none applies has no verdict
    together = floor_rows(plans, floors, prices, [FloorStudy("all floors", "all", "shipped", "without_women")])
    verdict = together.set_index("world")
    assert verdict.loc["A", "holds"] is True and verdict.loc["C", "holds"] is False
    assert pd.isna(verdict.loc["B", "holds"])
    assert verdict["applies"].to_dict() == {"A": True, "B": False, "C": True}

    summary = floor_summary(rows.reset_index()).set_index("worlds")
    every = summary.loc["all"]
    counts = ("world_count", "applies_in", "plans", "binds", "holds")
    assert tuple(every[c] for c in counts) == (3, 2, 2, 1, 1)
    assert every["share_with_mean"] == pytest.approx((0.80 + 0.75) / 2)
    assert every["share_without_mean"] == pytest.approx((0.88 + 0.75) / 2)
    assert every["share_with_worst"] == pytest.approx(0.75)
    assert every["true_cost_mean"] == pytest.approx(4.0) and every["oracle_true_cost_mean"] == pytest.approx(2.5)
    assert (every["binding_true_cost_mean"], every["binding_stated_cost_mean"]) == (8.0, 9.0)
    assert (every["stated_covers"], every["priced"]) == (1, 1) and every["binding_estimated_cost_mean"] == 10.0
    assert every["worst_margin"] == pytest.approx(-0.05)
    assert every["p_holds"] == pytest.approx(1 - 0.9**2)  # P(at most 1 of 2 holds | each holds with 0.9)
    assert summary.loc["haaglanden", "plans"] == 0 and np.isnan(summary.loc["haaglanden", "share_with_mean"])
    assert summary.loc["family", "plans"] == 2
    assert summary.loc["fewer attributes", "holds"] == 0 and summary.loc["fewer attributes", "binds"] == 0


def test_the_floors_benchmark_on_tiny_worlds_writes_its_tables(tmp_path):
    import json

    from benchmarks.floorcost import main

    out = tmp_path / "floors"
    argv = ["--out", str(out), "--seeds", "3", "--haaglanden-seeds", "1", "--people", "2500", "--waves", "2",
            "--folds", "2", "--budget-shares", "0.1", "--cache", str(tmp_path / "cache"),
            "--messages", "heavy_work_future", "fresh_start", "--channels", "meta", "flyer"]
    assert main(argv) == 0
    rows = pd.read_csv(out / "floors.csv")
    assert set(rows["world"]) == {"family-3-3", "haaglanden-1"}
    studied = ["women", "over_45", "migration_background_reach", "poorer_neighbourhoods", "all floors",
               CONVERSION_FLOOR.name]
    assert rows.groupby("world")["floor"].agg(list).map(lambda floors: floors == studied).all()
    applies = rows[rows["applies"]]
    assert applies["share_with"].notna().all() and applies["true_cost"].notna().all()
    assert all(isinstance(r, str) and r for r in rows.loc[~rows["applies"], "reason"])  # a floor not applying says why
    text = (out / "report.md").read_text()
    assert "| all | women | spend_share |" in text and "Floors not applicable" in text
    headline = json.loads((out / "headline-floorcost.json").read_text())
    assert headline["command"].startswith("python -m benchmarks.floorcost --out ")
    summary = pd.read_csv(out / "summary.csv").set_index(["worlds", "floor"])
    every = summary.loc[("all", "all floors")]
    shares = f"{100 * every['share_with_mean']:.1f}% / {100 * every['share_without_mean']:.1f}%"
    assert headline["rows"][0]["value"] == shares
