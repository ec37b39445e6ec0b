"""A plain-language summary of an :class:`~uplift.design.analysis.Analysis` for campaign planners."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.design.analysis import Analysis

__all__ = ["WIDE_INTERVAL", "summary_text"]

WIDE_INTERVAL = 0.5
"""An interval is called wide when its half-width exceeds this fraction of the holdout rate (for an
inconclusive arm) or of the estimate itself (for an arm that clearly won or lost)."""

_MAX_SEGMENT_LINES = 5


def _per_1000(value: float) -> str:
    v = 1000.0 * value
    return f"{v:+.2f}" if abs(v) < 1 else f"{v:+.1f}"


def _estimates(table: pd.DataFrame, adjusted: bool) -> pd.DataFrame:
    """``effect``, ``low``, ``high`` from the adjusted columns when covariates were used."""
    pre = "adjusted_" if adjusted else ""
    return pd.DataFrame(
        {
            "arm": table["arm"],
            "n": table["n"],
            "effect": table[f"{pre}effect"],
            "low": table[f"{pre}ci_low"],
            "high": table[f"{pre}ci_high"],
        }
    )


def summary_text(analysis: Analysis) -> str:
    """Say in plain words which arms beat the holdout, by how much, and how far to trust it.

    Parameters
    ----------
    analysis : Analysis
        The result of :func:`~uplift.design.analysis.analyze`.

    Returns
    -------
    str
        A few lines: the holdout's rate, whether the randomisation looks broken, the arms that beat
        the holdout with confidence (per 1,000 people reached, with the interval), those that did
        worse, those without a clear difference, and cautions (wide intervals, many arms).
    """
    level = f"{100 * (1 - analysis.alpha):g}%"
    adjusted = bool(analysis.covariates)
    control = analysis.arms[analysis.arms["arm"] == analysis.control].iloc[0]
    rate = float(control["rate"])
    lines = [
        f"Outcome {analysis.outcome!r}: the {analysis.control} ({int(control['n']):,} people) converted at "
        f"{1000 * control['rate']:.2f} per 1,000."
    ]
    lines.append(_srm_line(analysis))
    est = _estimates(analysis.treatment, adjusted)
    if adjusted:
        lines.append(f"Effects are adjusted for pre-wave {', '.join(analysis.covariates)} (CUPED).")
    wins = est[est["low"] > 0].sort_values("effect", ascending=False)
    losses = est[est["high"] < 0].sort_values("effect")
    unclear = est[~(est["low"] > 0) & ~(est["high"] < 0)].sort_values("effect", ascending=False)
    if len(wins):
        lines.append(f"Beat the {analysis.control} with {level} confidence:")
        lines += [f"  - {r.arm}: {_effect_phrase(r, level, analysis.control, rate)}" for r in wins.itertuples()]
    else:
        lines.append(f"No arm beat the {analysis.control} with {level} confidence.")
    if len(losses):
        lines.append(f"Did worse than the {analysis.control} (fewer conversions than showing nothing):")
        lines += [f"  - {r.arm}: {_effect_phrase(r, level, analysis.control, rate)}" for r in losses.itertuples()]
    if len(unclear):
        lines.append("No clear difference yet: " + "; ".join(
            f"{r.arm} ({_per_1000(r.low)} to {_per_1000(r.high)} per 1,000)" for r in unclear.itertuples()
        ) + ".")
    lines += _cautions(analysis, est, wins, losses, unclear, rate)
    if analysis.segments is not None:
        lines += _segment_lines(analysis, adjusted, level)
    return "\n".join(lines)


def _effect_phrase(row: tuple, level: str, control: str, control_rate: float) -> str:
    relative = row.effect / control_rate if control_rate > 0 else float("nan")
    lift = ""
    if np.isfinite(relative):
        lift = f", {100 * abs(relative):.0f}% {'more' if relative > 0 else 'fewer'} than the {control}"
    return (
        f"{_per_1000(row.effect)} conversions per 1,000 people reached "
        f"({level} interval {_per_1000(row.low)} to {_per_1000(row.high)}){lift}."
    )


def _srm_line(analysis: Analysis) -> str:
    srm = analysis.srm
    if srm is None:
        return "Randomisation: not checked (no design shares were given)."
    if not srm.flagged:
        return f"Randomisation: the split of people over arms matches the design (p = {srm.p_value:.2g})."
    t = srm.table
    resid = (t["observed"] - t["expected"]) / np.sqrt(t["expected"])
    worst = t.loc[resid.abs().idxmax()]
    return (
        f"WARNING: the randomisation looks broken: the split over arms does not match the design "
        f"(p = {srm.p_value:.2g}); {worst['arm']} has {100 * worst['observed_share']:.2f}% of the people instead "
        f"of {100 * worst['expected_share']:.2f}%. Find the cause (lost rows, wrong join, people moved between "
        f"arms) before trusting the effects below."
    )


def _cautions(
    analysis: Analysis,
    est: pd.DataFrame,
    wins: pd.DataFrame,
    losses: pd.DataFrame,
    unclear: pd.DataFrame,
    control_rate: float,
) -> list[str]:
    out = []
    decided = pd.concat([wins, losses])
    half = (decided["high"] - decided["low"]) / 2
    vague = decided[half > WIDE_INTERVAL * decided["effect"].abs()]
    for r in vague.itertuples():
        bound = r.low if r.effect > 0 else r.high
        out.append(
            f"Caution: the size of the effect of {r.arm} is uncertain: it could be as small as "
            f"{_per_1000(bound)} per 1,000."
        )
    half_u = (unclear["high"] - unclear["low"]) / 2
    wide = unclear[half_u > WIDE_INTERVAL * control_rate]
    if len(wide):
        out.append(
            f"Caution: the intervals of {', '.join(wide['arm'])} are wide (more than "
            f"{100 * WIDE_INTERVAL:.0f}% of the {analysis.control} rate either way): this wave cannot tell a gain "
            f"from a loss for them; more people are needed."
        )
    n_tests = len(est)
    if n_tests * analysis.alpha >= 0.5:
        out.append(
            f"Note: with {n_tests} arms compared, about {n_tests * analysis.alpha:.1f} may look different by chance "
            f"alone; confirm surprising results in the next wave."
        )
    return out


def _segment_lines(analysis: Analysis, adjusted: bool, level: str) -> list[str]:
    seg = analysis.segments
    seg = seg[seg["arm"] != analysis.control]
    est = _estimates(seg, adjusted).assign(segment=seg["segment"].to_numpy())
    wins = est[est["low"] > 0].sort_values("effect", ascending=False)
    losses = est[est["high"] < 0].sort_values("effect")
    out = []
    for title, rows in (("By segment, beat the holdout", wins), ("By segment, did worse", losses)):
        if len(rows):
            out.append(f"{title} ({level} confidence, not corrected for the many segment comparisons):")
            out += [
                f"  - {r.segment} / {r.arm}: {_per_1000(r.effect)} per 1,000 "
                f"({_per_1000(r.low)} to {_per_1000(r.high)})"
                for r in rows.head(_MAX_SEGMENT_LINES).itertuples()
            ]
            if len(rows) > _MAX_SEGMENT_LINES:
                out.append(f"  - and {len(rows) - _MAX_SEGMENT_LINES} more")
    return out
