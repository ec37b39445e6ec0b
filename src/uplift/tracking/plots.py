"""Figures logged with every training run: Qini curves and uplift by score decile, one panel per arm."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from uplift.data.trainingtable import TrainingTable  # noqa: E402
from uplift.modeling.metrics import decile_uplift, pairwise_ipw_weights, qini_curve  # noqa: E402

__all__ = ["qini_figure", "decile_figure", "cost_curve_figure", "calibration_figure"]


def _grid(n: int):
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _arm_data(table: TrainingTable, scores: pd.DataFrame, arm: str):
    f = table.frame
    weights = pairwise_ipw_weights(f["arm"].to_numpy(), table.propensity(), table.control)
    m = f["arm"].isin([arm, table.control]).to_numpy()
    return (
        f["outcome"].to_numpy()[m],
        (f["arm"].to_numpy()[m] == arm).astype(int),
        scores[arm].to_numpy()[m],
        weights[arm].to_numpy()[m],
    )


def qini_figure(table: TrainingTable, scores: pd.DataFrame, title: str):
    """Qini curve per arm with the random-targeting line."""
    arms = list(scores.columns)
    fig, axes = _grid(len(arms))
    for ax, arm in zip(axes, arms, strict=False):
        y, t, s, w = _arm_data(table, scores, arm)
        x, q = qini_curve(y, t, s, weights=w)
        ax.plot(x, q, lw=1.4, label="model")
        ax.plot([0, 1], [0, q[-1]], "k--", lw=0.8, label="random")
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("share targeted", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def decile_figure(table: TrainingTable, scores: pd.DataFrame, title: str):
    """Observed uplift (treated minus holdout rate) per decile of the predicted uplift, per arm."""
    arms = list(scores.columns)
    fig, axes = _grid(len(arms))
    for ax, arm in zip(axes, arms, strict=False):
        y, t, s, w = _arm_data(table, scores, arm)
        d = decile_uplift(y, t, s, weights=w)
        col = "uplift" if "uplift" in d.columns else d.columns[-1]
        ax.bar(np.arange(1, len(d) + 1), 100 * d[col].to_numpy(float), color="tab:blue")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("decile (1 = highest predicted)", fontsize=8)
        ax.set_ylabel("uplift, points", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def cost_curve_figure(curve, title: str):
    """Gain and net value per person against the spend per person (:class:`~uplift.modeling.costcurve.CostCurve`),
    each with its interval, and the spend where the next euro stops paying."""
    t = curve.table
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for column, label in (("gain", "value gained"), ("net", "net value (gain - spend)")):
        ax.plot(t["spend"], t[column], lw=1.4, label=label)
        ax.fill_between(t["spend"], t[f"{column}_lo"], t[f"{column}_hi"], alpha=0.2)
    ax.axvline(curve.break_even_spend, color="k", ls="--", lw=0.8, label="next euro stops paying (estimated)")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("spend per person", fontsize=9)
    ax.set_ylabel("per person, over contacting no one", fontsize=9)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def calibration_figure(cells: pd.DataFrame, calibration, title: str):
    """Realised against promised incremental conversions per 1,000 contacts, one point per planned cell with
    its realised interval; the fitted calibration line and the line of a perfect model.

    ``cells`` as released (:func:`uplift.design.release.released_outcome`): cells whose realised figures are
    withheld are not drawn."""
    shown = cells.dropna(subset=["realised"])
    per = 1000.0 / shown["contacts"].to_numpy(float)
    x = shown["promised"].to_numpy(float) * per
    y = shown["realised"].to_numpy(float) * per
    err = np.vstack([y - shown["realised_lo"].to_numpy(float) * per, shown["realised_hi"].to_numpy(float) * per - y])
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.errorbar(x, y, yerr=err, fmt="o", ms=3, lw=0.6, alpha=0.7, label=f"cells ({len(shown)} shown)")
    lo, hi = (float(np.nanmin(x)), float(np.nanmax(x))) if len(x) else (0.0, 1.0)
    grid = np.linspace(min(lo, 0.0), max(hi, 1e-9), 50)
    ax.plot(grid, grid, "k--", lw=0.8, label="perfect (slope 1)")
    if np.isfinite(calibration.slope):
        ax.plot(grid, calibration.intercept * 1000 + calibration.slope * grid, color="tab:red", lw=1.2,
                label=f"fit: slope {calibration.slope:.2f} [{calibration.slope_lo:.2f}, {calibration.slope_hi:.2f}]")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("promised, per 1,000 contacts", fontsize=8)
    ax.set_ylabel("realised, per 1,000 contacts", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
