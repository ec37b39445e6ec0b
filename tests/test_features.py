"""Point-in-time features: hand-worked values, outcome windows, propensities and the no-leakage proof."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from handmade import SPEC, T1, T2, audience, enrolments, exposures
from uplift.errors import DataError, SpecError
from uplift.features import build_features, build_training_table
from uplift.features.library import age_band_of
from uplift.features.propensity import design_table


@pytest.fixture(scope="module")
def table():
    return build_training_table(audience(), exposures(), enrolments(), SPEC)


def _row(table, person, wave):
    f = table.frame
    return f[(f["person_id"] == person) & (f["wave"] == wave)].iloc[0]


def test_history_features_by_hand(table):
    r = _row(table, "p1", 2)  # p1 had a@meta in wave 1 and registered 3 days later, advice at day 10
    assert r["prior_waves"] == 1
    assert r["prior_contacts"] == 1
    assert r["prior_contacts__meta"] == 1 and r["prior_contacts__flyer"] == 0
    assert r["prior_contacts__a"] == 1 and r["prior_contacts__b"] == 0
    assert r["days_since_last_contact"] == pytest.approx((T2 - T1) / pd.Timedelta(days=1))
    assert r["prior_spend_eur"] == pytest.approx(0.6)
    assert r["funnel_stage"] == 2  # advice_conversation
    assert r["days_since_last_event"] == pytest.approx((T2 - T1 - pd.Timedelta(days=10)) / pd.Timedelta(days=1))

    h = _row(table, "p2", 2)  # p2 was in the holdout in wave 1: a wave, but not a contact
    assert h["prior_waves"] == 1 and h["prior_contacts"] == 0
    assert np.isnan(h["days_since_last_contact"]) and h["prior_spend_eur"] == 0
    assert h["funnel_stage"] == 0 and np.isnan(h["days_since_last_event"])

    first = table.frame[table.frame["wave"] == 1]
    assert (first["prior_waves"] == 0).all() and (first["funnel_stage"] == 0).all()


def test_outcome_window_is_half_open(table):
    assert _row(table, "p1", 1)["outcome"] == 1  # day 3
    assert _row(table, "p3", 1)["outcome"] == 0  # day 30 > 28
    assert _row(table, "p2", 2)["outcome"] == 1  # day 27
    assert _row(table, "p1", 2)["outcome"] == 0  # advice is not the declared outcome


def test_propensities_come_from_the_wave_design(table):
    prop = table.propensity()
    w1 = prop[table.frame["wave"] == 1].iloc[0]
    # wave 1 records a@meta 0.4, holdout 0.2, b@flyer 0.4; the other arms had no rows -> 0
    assert (w1["a@meta"] == pytest.approx(0.4) and w1["holdout"] == pytest.approx(0.2)
            and w1["b@flyer"] == pytest.approx(0.4))
    assert w1["a@flyer"] == 0
    np.testing.assert_allclose(prop.sum(axis=1), 1.0)


def test_design_must_be_one_probability_per_wave_and_arm():
    ex = exposures()
    ex.loc[0, "assignment_probability"] = 0.5  # a@meta in wave 1 now 0.5, but another a@meta row? add one
    extra = ex.iloc[[0]].assign(person_id="p9", assignment_probability=0.4)
    with pytest.raises(DataError, match=r"differs within wave 1, arm 'a@meta'"):
        design_table(pd.concat([ex, extra]), ("holdout", "a@meta", "b@flyer", "b@meta", "a@flyer"))


def test_design_that_does_not_sum_to_one_is_named():
    ex = exposures()[lambda d: d["arm"] != "holdout"]
    with pytest.raises(DataError, match=r"wave 1 sum to 0.8000"):
        design_table(ex, ("holdout", "a@meta", "b@flyer", "b@meta", "a@flyer", "a@flyer"))


def test_unknown_arm_and_unknown_feature_are_refused():
    ex = exposures()
    ex.loc[0, ["arm", "message"]] = ["c@meta", "c"]
    with pytest.raises(DataError, match=r"\['c@meta'\] which the feature set 'handmade' does not declare"):
        build_training_table(audience(), ex, enrolments(), SPEC)
    bad = SPEC.model_copy(update={"features": ("age", "shoe_size")})
    with pytest.raises(SpecError, match="unknown feature 'shoe_size'"):
        build_training_table(audience(), exposures(), enrolments(), bad)


def test_age_bands():
    assert list(age_band_of([18, 24, 25, 44, 45, 55, 67])) == ["18-24", "18-24", "25-34", "35-44", "45-54",
                                                               "55-67", "55-67"]


def test_inputs_are_not_mutated():
    aud, ex, en = audience(), exposures(), enrolments()
    before = (aud.copy(), ex.copy(), en.copy())
    build_training_table(aud, ex, en, SPEC)
    for a, b in zip((aud, ex, en), before, strict=True):
        pd.testing.assert_frame_equal(a, b)


def _scramble_after(frame: pd.DataFrame, time_col: str, cutoff: pd.Series, rng) -> pd.DataFrame:
    """Rewrite every row at or after its person's cutoff: new times (still >= cutoff), new labels, extra rows."""
    out = frame.copy()
    c = pd.to_datetime(out["person_id"].map(cutoff), utc=True)
    late = (out[time_col] >= c).to_numpy() & c.notna().to_numpy()
    shift = pd.to_timedelta(rng.integers(0, 90 * 24, late.sum()), unit="h")
    out.loc[late, time_col] = (c[late] + shift.to_numpy()).to_numpy()
    if "event" in out.columns:
        out.loc[late, "event"] = rng.choice(["registration", "application", "completed"], late.sum())
    else:
        out.loc[late, "cost_eur"] = rng.uniform(0, 9, late.sum())
    # plus a fake event exactly at the cutoff for every person of the wave
    fake = out.loc[late].head(0)
    if "event" in out.columns:
        fake = pd.DataFrame({"person_id": cutoff.index, "event": "completed", "occurred_at": cutoff.to_numpy()})
    return pd.concat([out, fake], ignore_index=True)


def leakage_check(aud: pd.DataFrame, ex: pd.DataFrame, en: pd.DataFrame, spec, seed: int = 0) -> int:
    """For every wave: rewrite all history at/after each person's assignment time; features must not move."""
    rng = np.random.default_rng(seed)
    checked = 0
    for wave, rows in ex.groupby("wave"):
        keys = pd.DataFrame({"person_id": rows["person_id"], "wave": wave,
                             "as_of": rows["assigned_at"]}).reset_index(drop=True)
        cutoff = keys.set_index("person_id")["as_of"]
        before = build_features(keys, aud, ex, en, spec)
        ex2 = _scramble_after(ex, "assigned_at", cutoff, rng)
        en2 = _scramble_after(en, "occurred_at", cutoff, rng)
        after = build_features(keys, aud, ex2, en2, spec)
        pd.testing.assert_frame_equal(before, after)
        checked += len(keys)
    return checked


def test_no_leakage_handmade():
    assert leakage_check(audience(), exposures(), enrolments(), SPEC) == 6


@pytest.mark.parametrize("leak", ["on_or_before", "everything"])
def test_leakage_check_catches_a_leaky_join(monkeypatch, leak):
    """The check must be able to fail: a history join that lets the as-of moment (or the future) in is caught."""
    from uplift.features import context

    def leaky_prior(keys, history, time_col):
        left = pd.DataFrame({"row": np.arange(len(keys)), "person_id": keys["person_id"].to_numpy(),
                             "as_of": keys["as_of"].to_numpy()})
        joined = left.merge(history, on="person_id", how="inner")
        if leak == "on_or_before":
            joined = joined[joined[time_col] <= joined["as_of"]]
        return joined.drop(columns=["as_of"]).reset_index(drop=True)

    monkeypatch.setattr(context, "_prior", leaky_prior)
    with pytest.raises(AssertionError):
        leakage_check(audience(), exposures(), enrolments(), SPEC)
