"""How honest the experiment analysis is at small counts and over many arms (the figures of docs/experiments.md).

Run ``.venv/bin/python benchmarks/bench_analysis.py [--replicates 4000 --waves 120]``; prints, as Markdown:

1. coverage of the 95% difference interval (square-and-add of exact intervals, ``uplift.design.rates``) beside
   Newcombe's interval with Wilson limits, and how often "no difference" is wrongly called at 5% (the analysis's
   p-value beside the pooled z-test), on a few small-count settings;
2. the share of simulated waves with 18 arms and no effect at all in which some arm is called better or worse,
   per multiplicity adjustment (``none``, ``holm``, ``bh``);
3. with ``--example``, the plain-language summary of one simulated wave (the example of docs/experiments.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from uplift.design import Inference, adjust_family, analyze, difference_interval, difference_p_value, summary_text

SETTINGS = ((534, 0.004, 4019, 0.002), (100, 0.01, 100, 0.01), (2000, 0.003, 8000, 0.003))
"""(arm people, arm rate, holdout people, holdout rate)."""


def _newcombe_wilson(x1: np.ndarray, n1: int, x0: np.ndarray, n0: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    def wilson(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        p = x / n
        d = 1 + z**2 / n
        centre, half = (p + z**2 / (2 * n)) / d, z / d * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        return centre - half, centre + half

    (l1, u1), (l0, u0) = wilson(x1, n1), wilson(x0, n0)
    p1, p0 = x1 / n1, x0 / n0
    return p1 - p0 - np.hypot(p1 - l1, u0 - p0), p1 - p0 + np.hypot(u1 - p1, p0 - l0)


def _pooled_z_p(x1: np.ndarray, n1: int, x0: np.ndarray, n0: int) -> np.ndarray:
    pooled = (x1 + x0) / (n1 + n0)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, 2 * stats.norm.sf(np.abs(x1 / n1 - x0 / n0) / se), 1.0)


def small_counts(replicates: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    z = float(stats.norm.ppf(0.975))
    rows = ["| arm people, rate /1,000 | holdout people, rate /1,000 | exact coverage | Newcombe-Wilson coverage "
            "| called at 5% (analysis) | called at 5% (pooled z) |", "|---|---|---|---|---|---|"]
    for n1, p1, n0, p0 in SETTINGS:
        x1, x0 = rng.binomial(n1, p1, replicates), rng.binomial(n0, p0, replicates)
        low, high = difference_interval(x1, n1, x0, n0, 0.05)
        w_low, w_high = _newcombe_wilson(x1, n1, x0, n0, z)
        d = p1 - p0
        called = called_z = "-"
        if d == 0:
            called = f"{np.mean(difference_p_value(x1, n1, x0, n0) <= 0.05):.2%}"
            called_z = f"{np.mean(_pooled_z_p(x1, n1, x0, n0) <= 0.05):.2%}"
        rows.append(f"| {n1:,}, {1000 * p1:g} | {n0:,}, {1000 * p0:g} | {np.mean((low <= d) & (d <= high)):.2%} "
                    f"| {np.mean((w_low <= d) & (d <= w_high)):.2%} | {called} | {called_z} |")
    return rows


def many_null_arms(waves: int, seed: int, arms: int = 18, n: int = 2000, rate: float = 0.05) -> list[str]:
    rng = np.random.default_rng(seed)
    hits = {"none": 0, "holm": 0, "bh": 0}
    for _ in range(waves):
        x0, x = rng.binomial(n, rate), rng.binomial(n, rate, arms)
        p = difference_p_value(x, np.full(arms, n), x0, n)
        for method in hits:
            hits[method] += bool(adjust_family(p, method, 0.05).reject.any())
    head = (f"Waves with some of {arms} null arms ({n:,} people per group, rate {rate:g}) called better or worse, "
            f"of {waves}:")
    return [head, "", "| multiplicity | share |", "|---|---|"] + [f"| {m} | {k / waves:.1%} |" for m, k in hits.items()]


def example_summary() -> str:
    """Seven arms over 90,534 people, one a late arm of 534 with no conversion; a plan expecting 8 per 1,000."""
    effects = {"fresh_start@meta": 0.012, "steady_income@flyer": -0.008, "free_voucher@flyer": 0.002,
               "ict_role_model@linkedin": 0.0, "care_with_children@meta": 0.0, "heavy_work_future@flyer": 0.0}
    rng = np.random.default_rng(5)
    n = 90_000
    arms = np.array(["holdout", *effects])
    arm = rng.choice(arms, n, p=[0.25] + [0.75 / len(effects)] * len(effects))
    prior = (rng.random(n) < 0.2).astype(float)
    p = 0.02 + 0.05 * prior + pd.Series(arm).map({"holdout": 0.0, **effects}).to_numpy()
    frame = pd.DataFrame({"arm": arm, "outcome": (rng.random(n) < p).astype(int), "prior": prior})
    rng = np.random.default_rng(1)
    frame["age_band"] = rng.choice(["18-24", "25-34", "35-44", "45-54", "55-67"], n)
    late = pd.DataFrame({"arm": "fresh_start@flyer", "outcome": 0, "prior": (rng.random(534) < 0.2).astype(float),
                         "age_band": rng.choice(["18-24", "25-34"], 534)})
    frame = pd.concat([frame, late], ignore_index=True)
    targets = dict.fromkeys([*effects, "fresh_start@flyer"], 0.008)
    result = analyze(frame, covariates=["prior"], segment_col="age_band",
                     inference=Inference(multiplicity="holm", target_effect=targets))
    return summary_text(result)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=4000)
    parser.add_argument("--waves", type=int, default=120)
    parser.add_argument("--example", action="store_true", help="also print the summary of one simulated wave")
    args = parser.parse_args(argv)
    print("\n".join(small_counts(args.replicates, seed=7)))
    print()
    print("\n".join(many_null_arms(args.waves, seed=32)))
    if args.example:
        print()
        print(example_summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
