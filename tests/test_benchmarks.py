"""The benchmark command end to end on tiny settings, and its pure helpers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is a top-level folder, not part of the installed package

from benchmarks.__main__ import main  # noqa: E402
from benchmarks.decisions import full_reach_spend, scaled_policy  # noqa: E402
from benchmarks.report import decision_summary, markdown_table  # noqa: E402
from uplift.specs.planning import CostCatalogue, PlanningPolicy  # noqa: E402


def write_experiment(folder: Path, n: int = 1_800, seed: int = 0) -> tuple[Path, Path]:
    """A randomised 3-arm experiment where arm "A" helps young people and "B" helps nobody."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 68, n)
    region = rng.choice(["north", "south"], n)
    group = rng.choice(["ctrl", "A", "B"], n)
    p = 0.1 + 0.25 * ((group == "A") & (age < 35))
    frame = pd.DataFrame({"group": group, "age": age, "region": region, "bought": (rng.random(n) < p).astype(int)})
    csv = folder / "experiment.csv"
    frame.to_csv(csv, index=False)
    mapping = folder / "mapping.yaml"
    mapping.write_text(
        "name: tiny\ntreatment: group\ncontrol: ctrl\noutcomes: [bought]\n"
        "features: {age: numeric, region: categorical}\n"
    )
    return csv, mapping


TINY = [
    "--quick", "--repeats", "1", "--folds", "2", "--learners", "pooled", "logistic_baseline", "--outcomes", "bought",
    "--seeds", "1", "--people", "2500", "--waves", "2", "--sim-folds", "2", "--budget-shares", "0.1",
    "--messages", "heavy_work_future", "fresh_start", "--channels", "meta", "flyer",
    "--speed-rows", "2000", "--forest-sample", "500", "--planning-segments", "20", "--speed-learners", "pooled",
        "--no-external",
]


def section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def table_rows(block: str, first_header: str) -> list[list[str]]:
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_quick_mode_on_tiny_settings_writes_every_table(tmp_path):
    csv, mapping = write_experiment(tmp_path)
    out = tmp_path / "bench"
    assert main([*TINY, "--out", str(out), "--hillstrom", str(csv), "--mapping", str(mapping)]) == 0
    text = (out / "report.md").read_text()
    for png in ("targeting_bought.png", "decisions.png", "speed.png"):
        assert (out / png).stat().st_size > 1_000
        assert f"]({png})" in text

    targeting = section(text, "## 1. Targeting")
    qini = table_rows(targeting, "learner")  # the learner notes table comes first
    assert [r[0] for r in qini] == ["pooled", "logistic_baseline"]
    scores = table_rows(targeting[targeting.index("Qini and AUUC"):], "learner")
    assert [r[0] for r in scores] == ["pooled", "logistic_baseline"]
    header = targeting[targeting.index("Qini and AUUC"):].split("\n| learner |")[1].splitlines()[0]
    assert "qini a" in header and "qini b" in header and "auuc a" in header
    # arm "a" has a strong, learnable effect among the young: both learners rank it better than random
    assert all(float(r[1].split("±")[0]) > 0 for r in scores)
    singles = table_rows(targeting, "policy")
    assert [r[0] for r in singles] == ["all:ctrl", "all:a", "all:b"]
    policies = table_rows(targeting[targeting.index("Held-out value"):], "learner")
    assert [r[0] for r in policies] == ["pooled", "logistic_baseline"]
    assert all(re.fullmatch(r"-?[\d.]+ \[-?[\d.]+, -?[\d.]+\]", r[1]) for r in policies)

    decisions = section(text, "## 2. Decisions")
    shares = table_rows(decisions, "policy")
    floors_shipped = ("women", "over_45", "migration_background_reach", "poorer_neighbourhoods")
    policies = {"conversion_floors", "conversion_floors_90", "no_exploration", "shipped",
                *(f"without_{f}" for f in floors_shipped)}
    assert {r[0] for r in shares} == policies
    for row in shares:
        # recommended, even, single best message: shares of the oracle. Not bounded by [0, 100%]: on this
        # tiny world a plan can fund cells whose true effect is slightly negative, and a plan that breaks a
        # conversion floor under the truth can beat the oracle, which keeps it
        for cell in (row[3], row[5], row[6]):
            assert -100.0 <= float(cell.rstrip("%")) <= 200.0
        assert row[4] in {"optimal", "infeasible"}
    assert "goal >= 95%" in decisions
    summary = table_rows(decisions[decisions.index("Per seed and over all seeds"):], "policy")
    assert {(r[0], r[1]) for r in summary} == {(p, s) for p in policies for s in ("1", "all")}
    assert all(r[2] == "1" and 0 <= int(r[6]) <= 1 for r in summary)  # one seed, one budget
    gains = table_rows(decisions[decisions.index("What the recommended plan said it adds"):], "policy")
    assert {(r[0], r[1]) for r in gains} == {(p, ref) for p in policies for ref in ("even", "single_best_message")}
    assert all(0 <= int(r[k]) <= int(r[2]) for r in gains for k in (3, 4, 5))  # counts out of the plans
    prices = table_rows(decisions[decisions.index("Each shipped floor's price in truth"):], "floor")
    assert [r[0] for r in prices] == list(floors_shipped)
    assert all(r[-1] == "1" for r in prices)  # one seed, one budget
    floors = [r for r in table_rows(decisions[decisions.index("Fairness floors"):], "policy")]
    assert {(r[1], r[2]) for r in floors} == {(p, f) for p in ("recommended", "oracle") for f in floors_shipped}
    frontier = table_rows(decisions[decisions.index("Noise frontier"):], "noise_ratio")
    assert [r[0] for r in frontier] == ["0.30", "0.60", "1.20"]  # the quick mode's ratios
    assert all(0.0 <= float(c.rstrip("%")) <= 100.0 + 1e-6 for r in frontier for c in r[2:5])
    assert re.search(r"- seed 1: our estimates \(corr -?[\d.]+\) are as noisy as reference estimates", decisions)
    gap = table_rows(decisions[decisions.index("Where the gap lives"):], "seed")
    assert [r[0] for r in gap] == ["1"]
    header = decisions[decisions.index("Where the gap lives"):].split("\n| seed |")[1].splitlines()[0]
    assert "fitted_true_form" in header and len(gap[0]) == 6  # seed, ours and four tables
    assert all(0.0 <= float(c.rstrip("%")) <= 100.0 + 1e-6 for c in gap[0][1:])

    speed = section(text, "## 3. Speed")
    steps = table_rows(speed, "step")
    assert [r[0] for r in steps] == ["simulate", "features", "train", "train", "planning"]
    assert all(float(r[5].replace(",", "")) > 50 for r in steps)  # peak RSS in MB of a real interpreter
    assert "skipped: external benchmarks disabled" in speed
    assert "| configuration | median s |" in speed  # bench_planning's own table


def test_missing_experiment_file_skips_that_section_with_a_note(tmp_path):
    out = tmp_path / "bench"
    main(["--quick", "--out", str(out), "--hillstrom", str(tmp_path / "absent.csv"), "--only", "targeting"])
    text = (out / "report.md").read_text()
    assert "Not run: " in text and "absent.csv does not exist" in text
    assert "Not run: not selected (--only)" in text


def test_full_reach_spend_matches_a_hand_calculation():
    costs = CostCatalogue.model_validate({"channels": {
        "meta": {"cost_per_mille": 7.5, "impressions_per_contact": 4,
                 "tiers": [{"share": 0.4, "multiplier": 1.0}, {"share": 0.3, "multiplier": 1.8}]},
        "flyer": {"cost_per_contact": 0.07, "tiers": [{"share": 0.5, "multiplier": 1.0}]},
    }})
    cells = pd.DataFrame({"segment": ["s1", "s1", "s2"], "size": [1_000, 1_000, 500],
                          "channel": ["meta", "flyer", "meta"]})
    per_person = 0.03 * (0.4 + 0.3 * 1.8) + 0.07 * 0.5
    assert full_reach_spend(cells, costs) == pytest.approx(1_500 * per_person)


def test_scaled_policy_scales_channel_limits_and_coverage_and_drops_absent_channels():
    policy = PlanningPolicy(min_spend={"flyer": 500.0}, max_spend={"linkedin": 3_000.0, "meta": 1_000.0},
                            coverage_floors=[{"name": "c", "area": "municipality", "min_contacts": 300}])
    scaled = scaled_policy(policy, 20_000, {"flyer", "meta"})
    assert scaled.min_spend == {"flyer": 100.0}
    assert scaled.max_spend == {"meta": 200.0}
    assert scaled.coverage_floors[0].min_contacts == 60.0
    assert policy.min_spend == {"flyer": 500.0}


def test_markdown_table_formats_and_marks_missing_values():
    frame = pd.DataFrame({"name": ["a", "b"], "x": [0.12345, float("nan")]})
    assert markdown_table(frame, {"x": ".2f"}) == "| name | x |\n|---|---:|\n| a | 0.12 |\n| b | - |"


def test_unknown_learner_is_a_spec_error_listing_the_valid_ones(tmp_path):
    from benchmarks.targeting import TargetingSettings, run_targeting
    from uplift.errors import SpecError

    csv, mapping = write_experiment(tmp_path, n=300)
    settings = TargetingSettings(csv=csv, mapping=mapping, outcomes=("bought",), learners=("pooled", "nope"))
    with pytest.raises(SpecError, match=r"learners \['nope'\] are not valid; valid: \['pooled'"):
        run_targeting(settings, root=ROOT)


def test_the_service_benchmark_cuts_the_shipped_segment_spec_by_its_dimensions_with_the_parts_following():
    from benchmarks.bench_service import _with_dimensions
    from uplift.pipeline import load_segment_spec

    shipped = load_segment_spec()
    cut = _with_dimensions(shipped, ("age_band", "gender", "neighbourhood"))
    assert cut.dimensions == ("age_band", "gender", "neighbourhood")
    assert cut.effect_method("targetable").smooth_over == (("age_band", "gender"), ("neighbourhood",))
    assert (cut.effect_method("targetable").message_channel_rank
            == shipped.effect_method("targetable").message_channel_rank)
    assert cut.personas == shipped.personas
    assert _with_dimensions(shipped, ("age_band",)).effect_method("targetable").smooth_over == (("age_band",),)


def test_decision_summary_by_hand():
    # seed 1: a relaxed plan at the small budget (missed, over-promising) and a feasible one (covered);
    # seed 2: two feasible plans, both covered; the oracle's rows do not count
    plans = pd.DataFrame({
        "policy": "p", "seed": [1, 1, 1, 2, 2, 2], "budget": [10.0, 20.0, 10.0, 10.0, 20.0, 10.0],
        "plan": ["recommended", "recommended", "oracle", "recommended", "recommended", "oracle"],
        "status": ["infeasible", "optimal", "infeasible", "optimal", "optimal", "optimal"],
        "share_of_oracle": [0.5, 0.9, 1.0, 0.8, 1.0, 1.0],
        "planned_conversions": [10.0, 8.0, 1.0, 5.0, 4.0, 1.0], "planned_lo": [5.0, 6.0, 0.0, 4.0, 3.0, 0.0],
        "planned_hi": [15.0, 10.0, 2.0, 6.0, 5.0, 2.0], "true_conversions": [20.0, 9.0, 1.0, 5.0, 4.0, 1.0]})
    got = decision_summary(plans).set_index("seed")
    assert list(got.index) == ["1", "2", "all"]
    assert (got.loc["1", "mean_share"] == pytest.approx(0.7)
            and got.loc["1", "mean_share_feasible"] == pytest.approx(0.9))
    assert got.loc["all", "mean_share"] == pytest.approx(0.8)
    assert got.loc["all", "mean_share_feasible"] == pytest.approx(0.9)  # (0.9 + 0.8 + 1.0) / 3
    assert got.loc["all", "min_share"] == pytest.approx(0.5)
    assert list(got["intervals_covering"]) == [1, 2, 3] and list(got["plans"]) == [2, 2, 4]
    assert got.loc["1", "planned_over_true_min"] == pytest.approx(0.5)
    assert got.loc["1", "planned_over_true_max"] == pytest.approx(8 / 9)


def test_the_family_benchmark_on_tiny_worlds_writes_its_tables(tmp_path):
    from benchmarks.family import main as family_main

    out, cache = tmp_path / "family", tmp_path / "cache"
    argv = ["--out", str(out), "--seeds", "3", "--haaglanden-seeds", "1", "--people", "2500",
            "--waves", "2", "--folds", "2", "--budget-shares", "0.1", "--declared", "--cache", str(cache),
            "--messages", "heavy_work_future", "fresh_start", "--channels", "meta", "flyer"]
    assert family_main(argv) == 0
    worlds = pd.read_csv(out / "worlds.csv")
    assert list(worlds["world"]) == ["family-3-3", "haaglanden-1"] and list(worlds["kind"]) == ["family", "haaglanden"]
    for column in ("shipped", "no_exploration", "single_best_message", "even", "declared"):
        assert worlds[column].between(-1.0, 2.0).all(), column  # shares of the oracle (a tiny world's can stray)
    assert worlds["fitted_true_form"].isna().all()  # not asked for
    # the promise: calibrated on the held-out folds (planned) and the sum of the estimates (estimated)
    assert (worlds["shipped_planned_over_true"].notna() & worlds["shipped_estimated_over_true"].notna()).all()
    assert worlds["promise_ratio"].notna().all()
    stages = pd.read_csv(out / "stages.csv")
    assert set(stages["world"]) == {"family-3-3", "haaglanden-1"} and (stages["by"] == "held-out rows").all()
    text = (out / "report.md").read_text()
    assert "| all | 2 |" in text and "| family | 1 |" in text and "| haaglanden | 1 |" in text
    # the README's headline figures come from the run's own record
    headline = json.loads((out / "headline-family.json").read_text())
    assert headline["command"].startswith("python -m benchmarks.family --out ")
    figures = {row["figure"]: row["value"] for row in headline["rows"]}
    shipped = figures["plan's share of the oracle, shipped policy: mean / 10th percentile / worst world"]
    assert shipped.split(" / ")[0] == f"{100 * worlds['shipped'].mean():.1f}%"
    # the worlds are kept: a second run reads them instead of refitting the model
    assert sorted(p.name for p in cache.iterdir()) == ["family-3-3-2500x2-f2", "haaglanden-1-2500x2-f2"]
    assert family_main(argv) == 0
    np.testing.assert_allclose(pd.read_csv(out / "worlds.csv")["no_exploration"], worlds["no_exploration"])


def test_soak_summaries_count_errors_per_minute_and_the_memory_growth():
    from benchmarks.bench_soak import memory_growth, minute_summary

    line = {"minute": 3, "skipped": 1, "server_mb": 100.0, "workers_mb": [50.0, 50.0], "plans_db_mb": 2.0,
            "unapproved": 7, "approved": 1,
            "results": [["GET /health", 0.001, 200], ["GET /health", 0.003, 200], ["GET /health", 0.002, 503],
                        ["POST /scores (100 rows)", 0.010, -1]]}
    m = minute_summary(line)
    assert m["requests"] == 4 and m["errors"] == {"503": 1, "-1": 1} and m["total_mb"] == 200.0
    assert m["routes"]["GET /health"] == {"n": 3, "p50": 2.0, "p99": 3.0}
    minutes = [{"total_mb": mb} for mb in (100, 150, 200, 200, 201, 202, 204, 206, 208, 210)]
    assert memory_growth(minutes) == pytest.approx((210 - 201) / 201)  # end of minute 5 to end of minute 10
    assert memory_growth(minutes[:5]) is None


def test_scaling_exponents_and_extrapolation_by_hand(tmp_path):
    from benchmarks.scaling import _extrapolated, fit_exponents, render

    rows = np.array([1e6, 3e6, 10e6])
    frame = pd.DataFrame({"step": "features", "rows": rows, "target": rows.astype(int), "seconds": 2e-6 * rows,
                          "cpu_seconds": 1e-12 * rows**2, "peak_rss_mb": 100 * np.sqrt(rows / 1e6),
                          "order": 2, "note": ""})
    e = fit_exponents(frame).iloc[0]
    assert e.time_exponent == pytest.approx(1.0) and e.cpu_exponent == pytest.approx(2.0)
    assert e.memory_exponent_from_3M == pytest.approx(0.5)  # fitted on 3M and 10M only
    ext = _extrapolated(frame, fit_exponents(frame), 30_000_000).iloc[0]
    # the wall time of the largest run (20 s at 10M) grown by the CPU exponent (2): 20 x 3**2
    assert ext.seconds == pytest.approx(180.0) and ext.peak_rss_mb == pytest.approx(100 * np.sqrt(30))
    text = render(frame, tmp_path, header="# t")
    assert "**Extrapolated** to 30,000,000" in text and (tmp_path / "scaling.png").exists()
    # one size from 3M (run twice): the memory exponent over every size, and said so
    two = pd.concat([frame[frame["rows"] != 3e6], frame[frame["rows"] == 10e6]], ignore_index=True)
    e = fit_exponents(two).iloc[0]
    assert e.memory_exponent_from_3M == pytest.approx(0.5) and e.memory_from == 1_000_000 and e.sizes == 2


def test_the_net_value_view_compares_every_rule_on_the_same_rows(tmp_path):
    from benchmarks.netview import NetLevels
    from benchmarks.report import _net_lines
    from benchmarks.targeting import TargetingSettings, run_targeting

    csv, mapping = write_experiment(tmp_path)  # arm a gains 25 pp for the young (about a third), b nothing
    settings = TargetingSettings(csv=csv, mapping=mapping, outcomes=("bought",), repeats=1, folds=2,
                                 learners=("logistic_baseline",), net=NetLevels(1.0, (0.0, 0.05, 0.5)))
    result = run_targeting(settings, root=ROOT)
    net = result.net.set_index(["cost", "policy"])
    ours = "logistic_baseline:targeted"
    assert set(net.index.get_level_values("policy")) == {ours, "logistic_baseline:argmax", "all:ctrl", "all:a", "all:b"}
    assert net.loc[(0.5, ours), "spend"] == 0.0  # a cost above every effect: no one is treated
    assert net.loc[(0.5, ours), "value"] == pytest.approx(net.loc[(0.5, "all:ctrl"), "value"])
    assert net.loc[(0.05, ours), "value"] > net.loc[(0.05, "all:a"), "value"]  # treating everyone with a pays less
    assert net.loc[(0.05, ours), "diff"] == 0.0 and net.loc[(0.0, "all:b"), "spend"] == 0.0
    assert net.loc[(0.05, "all:a"), "spend"] == pytest.approx(0.05)
    text = "\n".join(_net_lines(result, "bought"))
    assert "Cost per contact 0.05: logistic_baseline:targeted >= the best fixed rule" in text
    assert len(table_rows(text[text.index("Cost per contact 0.5"):], "policy")) == 5


def test_plan_loss_swaps_the_arms_levels_and_the_deviations_by_hand():
    from benchmarks.planloss import VARIANTS, hybrid_effects

    arm = np.array(["a", "a", "b", "b"])
    rows = np.array([1.0, 3.0, 1.0, 1.0])
    estimate = np.array([0.04, 0.0, 0.02, 0.0])  # levels: a 0.01, b 0.01
    truth = np.array([0.0, 0.02, 0.03, 0.01])  # levels: a 0.015, b 0.02
    got = hybrid_effects(arm, rows, estimate, truth)
    np.testing.assert_array_equal(got[VARIANTS[0]], estimate)
    np.testing.assert_allclose(got[VARIANTS[1]], [0.01 - 0.015, 0.01 + 0.005, 0.01 + 0.01, 0.01 - 0.01])
    np.testing.assert_allclose(got[VARIANTS[2]], [0.015 + 0.03, 0.015 - 0.01, 0.02 + 0.01, 0.02 - 0.01])


def test_the_family_combines_runs_over_parts_of_its_worlds_in_the_declared_order(tmp_path):
    from benchmarks.family import FamilySettings, WorldSpec, combined_family

    specs = (WorldSpec("random:101", 101), WorldSpec("random:102", 102), WorldSpec("haaglanden", 1))
    parts = {"a": ["family-102-102", "haaglanden-1"], "b": ["family-101-101"]}
    for name, worlds in parts.items():
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame({"world": worlds, "shipped": 0.5}).to_csv(folder / "worlds.csv", index=False)
        pd.DataFrame({"world": worlds, "budget_share": 0.1}).to_csv(folder / "plans.csv", index=False)
        pd.DataFrame({"world": worlds, "stage": "arm_slopes", "kept": True}).to_csv(folder / "stages.csv", index=False)
        (folder / "report.md").write_text(f"Written ...; {len(worlds)} worlds ...; {100 * len(worlds)} s.\n")
    result = combined_family([tmp_path / "a", tmp_path / "b"], FamilySettings(worlds=specs))
    assert result.worlds["world"].tolist() == ["family-101-101", "family-102-102", "haaglanden-1"]
    assert len(result.plans) == 3 and result.seconds == 300.0
    with pytest.raises(ValueError, match="family-101-101"):
        combined_family([tmp_path / "a"], FamilySettings(worlds=specs))
