"""The closed-loop benchmark in miniature: a small world, 3 waves, every programme (the real one is in benchmarks/)."""

from __future__ import annotations

import pytest

from benchmarks.closedloop import STRATEGIES, LoopSettings, loop_report, run_closed_loop, shares_of_oracle
from conftest import ROOT


@pytest.fixture(scope="module")
def tiny_loop():
    # 6,000 people get a wave budget of about EUR 160: too little for the channels' smallest whole lines
    settings = LoopSettings(people=6000, waves=3, seeds=(1,), folds=2, messages=("heavy_work_future", "fresh_start"),
                            channels=("meta", "flyer"), line_minimums=False)
    return run_closed_loop(settings, root=ROOT)


def test_every_programme_runs_every_wave_within_its_budget(tiny_loop):
    waves = tiny_loop.waves
    assert set(waves["strategy"]) == set(STRATEGIES)
    assert waves.groupby("strategy")["wave"].apply(list).map(sorted).tolist() == [[1, 2, 3]] * len(STRATEGIES)
    budget = waves["spend"].max()
    assert (waves["spend"] <= budget * (1 + 1e-9)).all()
    # every wave spends, but one whose plan funds no cell (every estimate at or below 0) contacts nobody
    assert ((waves["spend"] > 0) | (waves["contacts"] == 0)).all()
    assert (waves.loc[~waves["strategy"].str.startswith("product"), "spend"] > 0).all()
    # wave 1 is the even split for every programme but the oracle: the same plan, the same design
    first = waves[(waves["wave"] == 1) & (waves["strategy"] != "oracle")]
    assert first["true_incremental"].nunique() == 1 and set(first["planned_from"]) == {"even"}
    product = waves[waves["strategy"] == "product"].set_index("wave")
    assert product.loc[1, "exploration_contacts"] == 0 and product.loc[3, "exploration_contacts"] > 0
    assert (waves.loc[waves["strategy"] == "product_no_exploration", "exploration_contacts"] == 0).all()


def test_the_oracle_beats_the_even_split_and_the_report_scores_the_product(tiny_loop):
    shares = shares_of_oracle(tiny_loop.waves)
    last = shares[shares["wave"] == 3].set_index("strategy")["cumulative_share"]
    assert last["oracle"] == pytest.approx(1.0)
    assert last["even"] < 0.8  # knowing the truth is worth a lot: the even split reaches well below it
    cal = tiny_loop.calibration
    assert sorted(cal.loc[cal["strategy"] == "product", "wave"]) == [2, 3]
    assert (cal["realised_lo"] <= cal["realised"]).all() and (cal["realised"] <= cal["realised_hi"]).all()
    report = loop_report(tiny_loop)
    assert "Goal: the product's cumulative share beats every reference" in report and "train" in report
