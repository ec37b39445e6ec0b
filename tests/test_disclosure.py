"""The disclosure rules: hand-computed cases, the policy file, and properties over random tables."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from uplift.api.tokens import new_token
from uplift.disclosure import (
    WITHHELD,
    DisclosurePolicy,
    Figure,
    Margin,
    Reference,
    Release,
    disclose,
    release_count,
    round_counts,
)
from uplift.errors import SchemaError, SpecError
from uplift.specs.disclosure import load_disclosure_policy

# a production-strength token (the service refuses weak ones in production mode)
STRONG_TOKEN = new_token()

POLICY = DisclosurePolicy()  # threshold 10, base 5


def _reasons(frame: pd.DataFrame, row: int) -> str:
    return str(frame[WITHHELD].iloc[row])


# -- hand-computed cases -------------------------------------------------------------------------
def test_small_counts_are_suppressed_the_rest_rounded_half_up():
    frame = pd.DataFrame({"g": list("abcdefg"), "n": [0, 9, 10, 12, 13, 27, 1003]})
    out = disclose(frame, Release(people=("n",), keep=("g",)), POLICY)
    assert out["n"].tolist() == [pd.NA, pd.NA, 10, 10, 15, 25, 1005]
    assert _reasons(out, 1) == "n: fewer than 10 people" and _reasons(out, 2) == ""
    assert round_counts(np.array([2.5, 7.5, np.nan]), 5)[:2].tolist() == [5.0, 10.0]
    assert (release_count(9, POLICY) is None and release_count(12, POLICY) == 10
            and release_count(float("nan"), POLICY) is None)


def test_a_margin_hides_the_smallest_other_cell_until_the_hidden_cells_hold_the_threshold():
    # one segment: 3 is suppressed; alone it would be the total minus the rest, so 12 (the smallest) goes too
    frame = pd.DataFrame({"segment": "s", "arm": ["a", "b", "c", "d"], "n": [3, 12, 27, 50]})
    release = Release(people=("n",), margins=(Margin(name="the segment", by=("segment",), cells=("n",)),),
                      keep=("segment", "arm"))
    out = disclose(frame, release, POLICY)
    assert out["n"].tolist() == [pd.NA, pd.NA, 25, 50]
    assert _reasons(out, 1) == "n: hidden with a smaller cell of the segment"
    # two small cells already hold 4 + 7 = 11 >= 10 together: nothing more is hidden
    two = disclose(frame.assign(n=[4, 7, 27, 50]), release, POLICY)
    assert two["n"].tolist() == [pd.NA, pd.NA, 25, 50]
    three = disclose(frame.assign(n=[4, 5, 27, 50]), release, POLICY)  # 4 + 5 = 9 < 10: 27 goes too
    assert three["n"].tolist() == [pd.NA, pd.NA, pd.NA, 50]


def test_converters_and_their_complement_must_both_reach_the_threshold():
    frame = pd.DataFrame({"arm": ["a", "b", "c", "d"], "n": [40, 40, 40, 8], "x": [9, 35, 20, 4],
                          "rate": [9 / 40, 35 / 40, 0.5, 0.5]})
    release = Release(people=("n",), converters={"x": "n"}, figures=(Figure(columns=("rate",), rests_on=("n", "x")),),
                      keep=("arm",))
    out = disclose(frame, release, POLICY)
    assert out["x"].tolist() == [pd.NA, pd.NA, 20, pd.NA]
    assert _reasons(out, 1).startswith("x: fewer than 10 people of the cell did not convert")
    assert np.isnan(out["rate"].iloc[:2]).all() and out["rate"].iloc[2] == 0.5 and np.isnan(out["rate"].iloc[3])
    assert "rate: rests on x (fewer than 10 converters)" in _reasons(out, 0)
    assert "rate: rests on n (fewer than 10 people)" in _reasons(out, 3)


def test_an_effect_rests_on_the_control_row_too():
    frame = pd.DataFrame({"segment": ["s", "s", "t", "t"], "arm": ["holdout", "a", "holdout", "a"],
                          "n": [200, 400, 200, 400], "conversions": [8, 40, 30, 40],
                          "effect": [np.nan, 0.02, np.nan, 0.03]})
    release = Release(people=("n",), converters={"conversions": "n"},
                      figures=(Figure(columns=("effect",), rests_on=("n", "conversions"),
                                      rests_on_reference=("n", "conversions")),),
                      reference=Reference(column="arm", value="holdout", by=("segment",)), keep=("segment", "arm"))
    out = disclose(frame, release, POLICY)
    assert np.isnan(out["effect"].iloc[1]) and out["effect"].iloc[3] == 0.03
    assert "effect: rests on conversions of the arm 'holdout' row (fewer than 10 converters)" in _reasons(out, 1)


def test_a_margin_hides_an_arm_before_the_control_every_effect_rests_on():
    # the wave's conversions are known: b's 3 would be total minus the rest, so another cell goes too; the
    # holdout's 20 is smaller than a's 160, but hiding it would withhold every effect
    frame = pd.DataFrame({"arm": ["holdout", "a", "b"], "n": [2000, 4000, 300], "conversions": [20, 160, 3],
                          "effect": [np.nan, 0.03, 0.0]})
    release = Release(people=("n",), converters={"conversions": "n"},
                      figures=(Figure(columns=("effect",), rests_on=("n", "conversions"),
                                      rests_on_reference=("n", "conversions")),),
                      margins=(Margin(name="the wave's converters", cells=("conversions",)),),
                      reference=Reference(column="arm", value="holdout"), keep=("arm",))
    out = disclose(frame, release, POLICY)
    assert out["conversions"].tolist() == [20, pd.NA, pd.NA]
    assert np.isnan(out["effect"]).all()  # a's effect rests on its hidden conversions, b's on its own


def test_constant_cells_are_hidden_on_every_row_and_counted_once():
    # the holdout's 6 people repeat on each arm row of the segment: one cell of the margin, hidden everywhere
    frame = pd.DataFrame({"segment": "s", "arm": ["a", "b"], "treated": [30, 40], "control": [6, 6]})
    release = Release(people=("treated", "control"), constant_within={"control": ("segment",)},
                      margins=(Margin(name="the segment", by=("segment",), cells=("treated", "control")),),
                      keep=("segment", "arm"))
    out = disclose(frame, release, POLICY)
    assert out["control"].isna().all() and out["treated"].tolist() == [pd.NA, 40]


def test_floor_rows_go_undeclared_and_internal_columns_never_leave():
    frame = pd.DataFrame({"segment": ["big", "small"], "size": [120, 8], "secret": [1, 2], "x": [50, 4],
                          "effect": [0.1, 0.2]})
    release = Release(people=("size",), converters={"x": "size"}, keep=("segment", "effect"), internal=("x",),
                      floor="size")
    before = frame.copy()
    out = disclose(frame, release, POLICY)
    assert list(out.columns) == ["segment", "size", "effect", WITHHELD]
    assert out["segment"].tolist() == ["big"] and out["size"].tolist() == [120]
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is untouched


def test_missing_columns_and_inconsistent_declarations_are_named():
    with pytest.raises(SchemaError, match=r"segment table: missing column\(s\) \['n'\]"):
        disclose(pd.DataFrame({"a": [1]}), Release(people=("n",)), POLICY, source="segment table")
    with pytest.raises(SchemaError, match="column 'n': expected a count"):
        disclose(pd.DataFrame({"n": ["many"]}), Release(people=("n",)), POLICY)
    with pytest.raises(ValidationError, match="its people column 'm' is not in people"):
        Release(people=("n",), converters={"x": "m"})
    with pytest.raises(ValidationError, match="rests on a reference row, but no reference is declared"):
        Release(people=("n",), figures=(Figure(columns=("e",), rests_on_reference=("n",)),))
    with pytest.raises(ValidationError, match="mixes counts of people and of converters"):
        Release(people=("n",), converters={"x": "n"}, margins=(Margin(name="m", cells=("n", "x")),))


# -- the policy file ----------------------------------------------------------------------------
def test_policy_file_defaults_grid_and_errors(tmp_path):
    assert load_disclosure_policy() == DisclosurePolicy(threshold=10, rounding_base=5)  # serve/disclosure.yaml
    path = tmp_path / "d.yaml"
    path.write_text("threshold: 20\nrounding_base: 10\n")
    assert load_disclosure_policy(path) == DisclosurePolicy(threshold=20, rounding_base=10)
    path.write_text("threshold: 12\n")
    with pytest.raises(SpecError,
                       match=r"d.yaml: invalid DisclosurePolicy: .*threshold 12 must be a multiple of rounding_base 5"):
        load_disclosure_policy(path)
    path.write_text("treshold: 20\n")
    with pytest.raises(SpecError, match="treshold"):
        load_disclosure_policy(path)
    with pytest.raises(SpecError, match="no such spec file"):
        load_disclosure_policy(tmp_path / "missing.yaml")
    assert DisclosurePolicy(threshold=5).lowered and not DisclosurePolicy(threshold=20).lowered
    assert DisclosurePolicy(threshold=20).satisfies(POLICY) and not POLICY.satisfies(DisclosurePolicy(threshold=20))


def test_service_production_mode_only_raises_the_threshold(tmp_path, monkeypatch):
    from uplift.api.settings import ServiceSettings

    for key in [k for k in os.environ if k.startswith("UPLIFT_SERVICE_")]:
        monkeypatch.delenv(key)
    lowered, raised = tmp_path / "low.yaml", tmp_path / "high.yaml"
    lowered.write_text("threshold: 5\n")
    raised.write_text("threshold: 20\n")
    token = (STRONG_TOKEN,)
    with pytest.raises(SpecError,
                       match=r"low.yaml: threshold 5 is below the default 10; production mode may only raise it"):
        ServiceSettings(mode="production", tokens=token, disclosure=lowered).disclosure_policy()
    assert ServiceSettings(mode="production", tokens=token, disclosure=raised).disclosure_policy().threshold == 20
    assert ServiceSettings(mode="dev", disclosure=lowered, min_segment_size=5).disclosure_policy().threshold == 5
    with pytest.raises(SpecError, match="min_segment_size 15 is below the disclosure threshold 20"):
        ServiceSettings(mode="dev", disclosure=raised, min_segment_size=15).disclosure_policy()


def test_the_app_refuses_a_lowered_threshold_in_production_and_warns_in_dev(tmp_path, monkeypatch, caplog):
    from uplift.api.app import create_app
    from uplift.api.settings import ServiceSettings

    for key in [k for k in os.environ if k.startswith("UPLIFT_SERVICE_")]:
        monkeypatch.delenv(key)
    lowered = tmp_path / "low.yaml"
    lowered.write_text("threshold: 5\n")
    with pytest.raises(SpecError, match="production mode may only raise it"):
        create_app(ServiceSettings(mode="production", tokens=(STRONG_TOKEN,), disclosure=lowered))
    with caplog.at_level("WARNING", logger="uplift.api"):
        app = create_app(ServiceSettings(mode="dev", tokens=(STRONG_TOKEN,), disclosure=lowered, min_segment_size=5))
    assert app.state.disclosure.threshold == 5
    assert any("DISCLOSURE THRESHOLD LOWERED to 5" in r.getMessage() for r in caplog.records)


# -- properties over random segment tables --------------------------------------------------------
RELEASE = Release(
    people=("size", "people_treated", "people_control"),
    converters={"converters_treated": "people_treated", "converters_control": "people_control"},
    constant_within={c: ("segment",) for c in ("size", "people_control", "converters_control")},
    figures=(Figure(columns=("base_rate",), rests_on=("people_control", "converters_control")),
             Figure(columns=("observed",), rests_on=("people_treated", "converters_treated", "people_control",
                                                     "converters_control"))),
    margins=(Margin(name="segment", by=("segment",), cells=("people_treated", "people_control")),
             Margin(name="arm people", by=("arm",), cells=("people_treated",)),
             Margin(name="arm converters", by=("arm",), cells=("converters_treated",))),
    keep=("segment", "arm"),
)
"""The segment table's shape with the converters released too, so that every hidden cell can be seen."""


@st.composite
def segment_tables(draw):
    n_segments, n_arms = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    rows = []
    for s in range(n_segments):
        control = draw(st.integers(0, 60))
        control_x = draw(st.integers(0, control))
        for a in range(n_arms):
            treated = draw(st.integers(0, 60))
            rows.append({"segment": f"s{s}", "arm": f"a{a}", "size": treated + control + draw(st.integers(0, 40)),
                         "people_treated": treated, "converters_treated": draw(st.integers(0, treated)),
                         "people_control": control, "converters_control": control_x})
    frame = pd.DataFrame(rows)
    frame["size"] = frame.groupby("segment")["size"].transform("max")
    with np.errstate(invalid="ignore", divide="ignore"):
        base = frame["converters_control"] / frame["people_control"]
        frame["base_rate"] = base
        frame["observed"] = frame["converters_treated"] / frame["people_treated"] - base
    return frame


POLICIES = st.sampled_from([DisclosurePolicy(threshold=t, rounding_base=b)
                            for t, b in ((10, 5), (5, 5), (20, 5), (6, 3), (10, 1))])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=segment_tables(), policy=POLICIES)
def test_released_counts_reach_the_threshold_and_sit_on_the_grid(frame, policy):
    out = disclose(frame, RELEASE, policy)
    for column in RELEASE.counts:
        shown = out[column].notna().to_numpy()
        released, true = out[column].to_numpy(dtype=float, na_value=np.nan)[shown], frame[column].to_numpy(float)[shown]
        assert (released >= policy.threshold).all() and (released % policy.rounding_base == 0).all()
        assert (np.abs(released - true) <= policy.rounding_base / 2).all()
        assert (true >= policy.threshold).all()
        if column in RELEASE.converters:  # and the complement of a released converter count
            people = frame[RELEASE.converters[column]].to_numpy(float)[shown]
            assert (people - true >= policy.threshold).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=segment_tables(), policy=POLICIES)
def test_no_subtraction_from_a_margin_gives_a_small_cell_back(frame, policy):
    out = disclose(frame, RELEASE, policy)
    for margin in RELEASE.margins:
        for _, rows in frame.assign(**{f"hidden_{c}": out[c].isna().to_numpy()
                                       for c in margin.cells}).groupby(list(margin.by)):
            hidden_people = hidden_complement = 0.0
            any_hidden = False
            for c in margin.cells:
                # one cell per segment
                cells = rows.drop_duplicates("segment") if c in RELEASE.constant_within else rows
                hidden = cells[f"hidden_{c}"].to_numpy()
                any_hidden |= bool(hidden.any())
                hidden_people += float(cells[c].to_numpy(float)[hidden].sum())
                if c in RELEASE.converters:
                    hidden_complement += float((cells[RELEASE.converters[c]] - cells[c]).to_numpy(float)[hidden].sum())
                else:
                    hidden_complement = np.inf
            everything = all(rows[f"hidden_{c}"].all() for c in margin.cells)
            if any_hidden and not everything:  # the released total minus the released cells is the hidden sum
                assert hidden_people >= policy.threshold and hidden_complement >= policy.threshold


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=segment_tables(), policy=POLICIES)
def test_a_figure_is_released_only_over_released_counts(frame, policy):
    out = disclose(frame, RELEASE, policy)
    for figure in RELEASE.figures:
        for column in figure.columns:
            shown = out[column].notna().to_numpy()
            for count in figure.rests_on:
                assert out[count].notna().to_numpy()[shown].all()
            np.testing.assert_array_equal(out[column].to_numpy()[shown], frame[column].to_numpy()[shown])
    # every suppressed count and withheld figure is named in its row's reasons
    for i in range(len(out)):
        named = {entry.split(":")[0] for entry in str(out[WITHHELD].iloc[i]).split("; ") if entry}
        gone = {c for c in (*RELEASE.counts, "base_rate", "observed") if pd.isna(out[c].iloc[i])
                and not pd.isna(frame[c].iloc[i])}
        assert named == gone


def test_stratum_balance_withholds_tests_of_strata_with_a_small_arm():
    from uplift.design.release import released_balance, released_power

    # stratum big: 60 holdout, 140 arm; small: 4 holdout, 36 arm (its test would show the 4)
    assignment = pd.DataFrame({"stratum": ["big"] * 200 + ["small"] * 40,
                               "arm": ["holdout"] * 60 + ["a"] * 140 + ["holdout"] * 4 + ["a"] * 36})
    balance = pd.DataFrame({"stratum": ["big", "small"], "n": [200, 40], "max_share_gap": [0.0, 0.05],
                            "statistic": [0.0, 0.4], "p_value": [1.0, 0.5]})
    out = released_balance(balance, assignment, POLICY)
    assert list(out.columns) == ["stratum", "n", "max_share_gap", "statistic", "p_value", WITHHELD]
    assert out["n"].tolist() == [200, 40] and out["p_value"].iloc[0] == 1.0 and np.isnan(out["p_value"].iloc[1])
    assert "rests on smallest_arm (fewer than 10 people)" in out[WITHHELD].iloc[1]
    power = pd.DataFrame({"arm": ["a"], "arm_share": [0.7], "holdout_share": [0.3], "base_rate": [0.01],
                          "minimum_detectable_effect": [0.002], "n_arm_needed": [1234], "n_holdout_needed": [529],
                          "n_total_needed": [1763], "n_arm_available": [168], "n_holdout_available": [72],
                          "mde_available": [0.01], "power_available": [0.2], "sufficient": [False]})
    shown = released_power(power, POLICY)
    assert shown[["n_arm_available", "n_holdout_available"]].iloc[0].tolist() == [170, 70]
    assert shown["n_arm_needed"].iloc[0] == 1234  # a requirement, not a count of anyone
