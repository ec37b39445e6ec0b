"""Small-count honesty of the experiment analysis: no event count (0, 1, 2 ...) yields a claim it does not support.

Property suite over small counts (hypothesis), the two false discoveries reported in issue 27 as regression cases, and
where CUPED falls back to the exact interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from uplift.design import Inference, analyze, clopper_pearson, difference_interval, difference_p_value, summary_text
from uplift.specs.experiment import MULTIPLICITY

SMALL = 10
"""A comparison is small when a group has fewer conversions (or non-conversions) than this."""


def exact_floor(x1: int, n1: int, x0: int, n0: int, alpha: float) -> tuple[float, float]:
    """The narrowest honest interval of x1/n1 - x0/n0: each side as far as either rate's own exact interval reaches."""
    (l1, u1), (l0, u0) = (proportion_confint(x, n, alpha, method="beta") for x, n in ((x1, n1), (x0, n0)))
    p1, p0 = x1 / n1, x0 / n0
    return p1 - p0 - max(p1 - l1, u0 - p0), p1 - p0 + max(u1 - p1, p0 - l0)


def fisher(x1: int, n1: int, x0: int, n0: int) -> float:
    return float(stats.fisher_exact([[x1, n1 - x1], [x0, n0 - x0]]).pvalue)


# -- the rates module on its own: many cheap examples ------------------------------------------
small = st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(0, min(10, n)), st.just(n)))


@settings(max_examples=300, deadline=None)
@given(arm=small, control=small, alpha=st.sampled_from([0.05, 0.01, 0.05 / 18, 0.001]))
def test_difference_interval_is_never_narrower_than_exact_and_claims_only_what_fisher_allows(arm, control, alpha):
    (x1, n1), (x0, n0) = arm, control
    low, high = difference_interval(x1, n1, x0, n0, alpha)
    floor_low, floor_high = exact_floor(x1, n1, x0, n0, alpha)
    assert low <= floor_low + 1e-12 and high >= floor_high - 1e-12
    p = float(difference_p_value(np.array([x1]), np.array([n1]), x0, n0)[0])
    assert p >= fisher(x1, n1, x0, n0) - 1e-12
    if p <= alpha:  # a claim at this level: the interval agrees with it
        assert low > 0 or high < 0
    rate_low, rate_high = clopper_pearson(x1, n1, alpha)
    assert (rate_low, rate_high) == pytest.approx(proportion_confint(x1, n1, alpha, method="beta"), abs=1e-12)


# -- the whole analysis, CUPED offered and provoked ---------------------------------------------
def _cells(rng: np.random.Generator, arm: str, x: int, n: int, strength: float, shift: float) -> pd.DataFrame:
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, x, replace=False)] = 1
    # a covariate that predicts the outcome strongly, shifted per arm so the arms differ in it by more than chance
    return pd.DataFrame({"arm": arm, "outcome": y, "prior": strength * y + rng.normal(shift, 1.0, n)})


def small_wave(cells: dict[str, tuple[int, int]], strength: float, seed: int, big: bool) -> pd.DataFrame:
    """Arms with the given (conversions, people); with ``big``, also a large segment full of conversions."""
    rng = np.random.default_rng(seed)
    shifts = {"holdout": 0.0, "a@meta": 0.4, "b@meta": -0.3}
    parts = [_cells(rng, arm, x, n, strength, shifts[arm]).assign(segment="small") for arm, (x, n) in cells.items()]
    if big:
        parts += [_cells(rng, arm, 100, 2000, strength, 0.0).assign(segment="big") for arm in cells]
    return pd.concat(parts, ignore_index=True)


def check_table(table: pd.DataFrame, control: str, alpha: float) -> int:
    """Assert the small-count properties on every comparison of ``table``; return how many were small."""
    checked = 0
    key = table["segment"] if "segment" in table else pd.Series("", index=table.index)
    controls = table[table["arm"] == control].assign(key=key).set_index("key")
    for (_, row), k in zip(table.iterrows(), key, strict=True):
        x1, n1 = int(row["conversions"]), int(row["n"])
        assert (row["rate_ci_low"], row["rate_ci_high"]) == pytest.approx(
            proportion_confint(x1, n1, alpha, method="beta"), abs=1e-12)
        if row["verdict"] == "":
            continue
        low, high = row["estimate_ci_low"], row["estimate_ci_high"]
        # the verdict and its interval agree, whatever the counts
        assert (row["verdict"] == "better") == (low > 0) and (row["verdict"] == "worse") == (high < 0)
        x0, n0 = int(controls.loc[k, "conversions"]), int(controls.loc[k, "n"])
        if min(x1, n1 - x1, x0, n0 - x0) >= SMALL:
            continue
        checked += 1
        level = 1.0 - row["interval_level"]
        assert row["method"] == "exact" and np.isnan(row["cuped_se"])
        floor_low, floor_high = exact_floor(x1, n1, x0, n0, level)
        assert low <= floor_low + 1e-12 and high >= floor_high - 1e-12
        plain_low, plain_high = exact_floor(x1, n1, x0, n0, alpha)
        assert row["ci_low"] <= plain_low + 1e-12 and row["ci_high"] >= plain_high - 1e-12
        if row["verdict"] in ("better", "worse"):
            assert fisher(x1, n1, x0, n0) <= level + 1e-12
    return checked


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    holdout=st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(0, min(9, n)), st.just(n))),
    arm_a=st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(0, min(9, n)), st.just(n))),
    arm_b=st.integers(1, 600).flatmap(lambda n: st.tuples(st.integers(0, min(9, n)), st.just(n))),
    strength=st.floats(0.0, 6.0),
    seed=st.integers(0, 2**32 - 1),
    multiplicity=st.sampled_from(MULTIPLICITY),
    big=st.booleans(),
)
def test_no_reported_interval_is_narrower_than_exact_nor_claims_what_fisher_does_not(
    holdout, arm_a, arm_b, strength, seed, multiplicity, big
):
    frame = small_wave({"holdout": holdout, "a@meta": arm_a, "b@meta": arm_b}, strength, seed, big)
    result = analyze(frame, covariates=["prior"], segment_col="segment" if big else None,
                     inference=Inference(multiplicity=multiplicity))
    checked = check_table(result.arms, "holdout", 0.05)
    if big:
        checked += check_table(result.segments, "holdout", 0.05)
    assert checked >= 2  # the small cells were compared (against the small holdout)


# -- the two false discoveries of issue 27 -----------------------------------------------------
def zero_of_100_segment() -> pd.DataFrame:
    """A large segment where a prior predicts conversion, and a segment where holdout and arm both have 0 of 100."""
    rng = np.random.default_rng(3)
    n = 20_000
    prior = rng.poisson(1.0, n).astype(float)
    big = pd.DataFrame({"arm": rng.choice(["holdout", "a@meta"], n), "prior": prior, "segment": "big",
                        "outcome": (rng.random(n) < 0.01 + 0.05 * prior).astype(int)})
    small = pd.DataFrame({"arm": ["holdout"] * 100 + ["a@meta"] * 100, "outcome": 0, "segment": "small",
                          "prior": np.concatenate([rng.poisson(1.0, 100), rng.poisson(1.6, 100)]).astype(float)})
    return pd.concat([big, small], ignore_index=True)


def zero_of_534_wave() -> pd.DataFrame:
    """An arm with 0 of 534 against a holdout with 7 of 4,019; another arm with plenty of conversions sets theta."""
    rng = np.random.default_rng(27)
    n = {"holdout": 4019, "a@meta": 534, "b@meta": 6000}
    prior = {"holdout": rng.poisson(0.5, n["holdout"]), "a@meta": rng.poisson(0.6, n["a@meta"]),
             "b@meta": rng.poisson(0.5, n["b@meta"])}
    y_h = np.zeros(n["holdout"], dtype=int)
    y_h[rng.choice(n["holdout"], 7, replace=False)] = 1
    y_b = (rng.random(n["b@meta"]) < 0.002 + 0.02 * prior["b@meta"]).astype(int)
    return pd.DataFrame({"arm": np.repeat(list(n), list(n.values())),
                         "outcome": np.concatenate([y_h, np.zeros(n["a@meta"], dtype=int), y_b]),
                         "prior": np.concatenate(list(prior.values())).astype(float)})


def naive_cuped_p(frame: pd.DataFrame, arm: str, rows: np.ndarray | None = None) -> float:
    """The z-test on per-group sample variances of the CUPED outcome, as the analysis computed it everywhere."""
    y, x = frame["outcome"].to_numpy(float), frame["prior"].to_numpy(float)
    theta = np.cov(x, y, ddof=0)[0, 1] / x.var()
    adj = pd.Series(y - (x - x.mean()) * theta)
    rows = np.ones(len(frame), bool) if rows is None else rows
    a, h = adj[rows & (frame["arm"] == arm).to_numpy()], adj[rows & (frame["arm"] == "holdout").to_numpy()]
    z = (a.mean() - h.mean()) / np.sqrt(a.var(ddof=0) / len(a) + h.var(ddof=0) / len(h))
    return float(2 * stats.norm.sf(abs(z)))


@pytest.mark.parametrize("multiplicity", MULTIPLICITY)
def test_zero_of_100_against_zero_of_100_is_not_a_finding(multiplicity):
    frame = zero_of_100_segment()
    small = (frame["segment"] == "small").to_numpy()
    assert naive_cuped_p(frame, "a@meta", small) < 0.001  # what was reported as "did worse"
    result = analyze(frame, covariates=["prior"], segment_col="segment", inference=Inference(multiplicity=multiplicity))
    row = result.segments.set_index(["segment", "arm"]).loc[("small", "a@meta")]
    assert row["method"] == "exact" and "holdout has 0 conversions of 100" in row["method_note"]
    assert row["verdict"] == "unclear" and row["p_value"] == 1.0 and row["adjusted_p_value"] == 1.0
    assert row["estimate"] == 0.0 and row["estimate_ci_low"] < -0.036 and row["estimate_ci_high"] > 0.036
    assert np.isnan(row["cuped_effect"])
    assert "did worse" not in summary_text(result)


@pytest.mark.parametrize("multiplicity", MULTIPLICITY)
def test_zero_of_534_against_7_of_4019_is_not_a_finding(multiplicity):
    frame = zero_of_534_wave()
    counts = frame.groupby("arm")["outcome"].agg(["sum", "size"])
    assert counts.loc["a@meta"].tolist() == [0, 534] and counts.loc["holdout"].tolist() == [7, 4019]
    assert naive_cuped_p(frame, "a@meta") < 0.01  # what was reported as "did worse"
    result = analyze(frame, covariates=["prior"], inference=Inference(multiplicity=multiplicity))
    arms = result.arms.set_index("arm")
    row = arms.loc["a@meta"]
    assert row["method"] == "exact" and row["verdict"] == "unclear"
    assert row["p_value"] == pytest.approx(1.0) and row["p_value"] >= fisher(0, 534, 7, 4019)
    assert row["estimate_ci_low"] < row["estimate"] < 0 < row["estimate_ci_high"]
    assert arms.loc["b@meta", "verdict"] == "better"  # a real effect is still found
    text = summary_text(result)
    assert "Did worse" not in text and "a@meta (" in text.split("No clear difference yet")[1]


# -- where CUPED applies -------------------------------------------------------------------------
def test_cuped_falls_back_when_the_covariates_do_not_vary_in_a_group():
    rng = np.random.default_rng(1)
    n = 6000
    arm = rng.choice(["holdout", "a@meta"], n)
    prior = np.where(arm == "a@meta", 1.0, rng.poisson(1.0, n))  # constant within the arm
    frame = pd.DataFrame({"arm": arm, "prior": prior, "outcome": (rng.random(n) < 0.05 + 0.05 * prior).astype(int)})
    row = analyze(frame, covariates=["prior"]).treatment.iloc[0]
    assert row["method"] == "exact" and row["method_note"] == "the covariates do not vary within a@meta"
    assert row["estimate"] == row["effect"] and (row["estimate_ci_low"], row["estimate_ci_high"]) == pytest.approx(
        (row["ci_low"], row["ci_high"]))


def test_cuped_needs_enough_events_in_each_group():
    frame = small_wave({"holdout": (9, 2000), "a@meta": (40, 2000)}, strength=3.0, seed=5, big=False)
    row = analyze(frame, covariates=["prior"]).treatment.iloc[0]
    assert row["method"] == "exact" and row["method_note"].startswith("holdout has 9 conversions of 2000")
    frame = small_wave({"holdout": (10, 2000), "a@meta": (40, 2000)}, strength=3.0, seed=5, big=False)
    row = analyze(frame, covariates=["prior"]).treatment.iloc[0]
    assert row["method"] == "cuped" and row["method_note"] == "" and row["cuped_se"] < row["se"]
