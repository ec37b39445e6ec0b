"""A plain-language summary of an :class:`~uplift.design.analysis.Analysis` for campaign planners."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from uplift.design.analysis import Analysis
from uplift.design.comparisons import CUPED
from uplift.design.cuped import CUPED_MIN_EVENTS
from uplift.design.multiplicity import describe_method
from uplift.design.verdicts import BETTER, WORSE

__all__ = ["WIDE_INTERVAL", "summary_text"]

WIDE_INTERVAL = 0.5
"""An interval is called wide when its half-width exceeds this fraction of the holdout rate (for an
inconclusive arm) or of the estimate itself (for an arm that clearly won or lost)."""

_MAX_SEGMENT_LINES = 5
_MAX_NAMED = 5


def _per_1000(value: float) -> str:
    v = 1000.0 * value
    return f"{v:+.2f}" if abs(v) < 1 else f"{v:+.1f}"


def _size_1000(value: float) -> str:
    """An unsigned size per 1,000 with two significant digits (21, 4.2, 0.67)."""
    v = 1000.0 * abs(value)
    if v >= 10:
        return f"{v:.0f}"
    return f"{v:.1f}".rstrip("0").rstrip(".") if v >= 1 else f"{v:.2f}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _level(confidence: float) -> str:
    """0.95 -> '95%', 0.99722 -> '99.7%', 0.99986 -> '99.99%' (never rounded up to 100%)."""
    for digits in range(0, 6):
        text = f"{100 * confidence:.{digits}f}"
        if float(text) < 100 and abs(float(text) - 100 * confidence) < 0.5 * 10 ** (1 - digits):
            return f"{text}%"
    return f"{100 * confidence:g}%"


def _estimates(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict columns under short names."""
    return table.rename(
        columns={"effect": "exact_effect", "estimate": "effect", "estimate_ci_low": "low", "estimate_ci_high": "high"}
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
        A few lines: the holdout's rate with its interval, whether the randomisation looks broken,
        which comparisons were judged together and how, how the effects were estimated, the arms
        that beat the holdout (per 1,000 people reached, with the interval the verdict rests on),
        those that did worse, those without a clear difference, cautions (wide intervals, cells too
        small to detect the expected effect) and the clearest segment results.
    """
    control = analysis.arms[analysis.arms["arm"] == analysis.control].iloc[0]
    rate = float(control["rate"])
    lines = [
        f"Outcome {analysis.outcome!r}: the {analysis.control} ({int(control['n']):,} people) converted at "
        f"{1000 * rate:.2f} per 1,000 ({_level(1 - analysis.alpha)} interval {1000 * control['rate_ci_low']:.2f} to "
        f"{1000 * control['rate_ci_high']:.2f})."
    ]
    lines.append(_srm_line(analysis))
    est = _estimates(analysis.treatment)
    est = est[est["verdict"] != ""]
    lines.append(_family_line(analysis, "arms", f"{_count(len(est), 'arm')} compared with the {analysis.control}"))
    lines += _method_lines(analysis, est)
    level = _level(float(est["interval_level"].iloc[0])) if len(est) else _level(1 - analysis.alpha)
    wins = est[est["verdict"] == BETTER].sort_values("effect", ascending=False)
    losses = est[est["verdict"] == WORSE].sort_values("effect")
    unclear = est[~est["verdict"].isin([BETTER, WORSE])].sort_values("effect", ascending=False)
    if len(wins):
        lines.append(f"Beat the {analysis.control} ({level} intervals):")
        lines += [f"  - {r.arm}: {_effect_phrase(r, level, analysis.control, rate)}" for r in wins.itertuples()]
    else:
        lines.append(f"No arm beat the {analysis.control} with confidence.")
    if len(losses):
        lines.append(
            f"Did worse than the {analysis.control} (fewer conversions than showing nothing; {level} intervals):"
        )
        lines += [f"  - {r.arm}: {_effect_phrase(r, level, analysis.control, rate)}" for r in losses.itertuples()]
    if len(unclear):
        lines.append(f"No clear difference yet ({level} intervals): " + "; ".join(
            f"{r.arm} ({_per_1000(r.low)} to {_per_1000(r.high)} per 1,000)" for r in unclear.itertuples()
        ) + ".")
    lines += _cautions(analysis, wins, losses, unclear, rate)
    lines += _too_small_lines(analysis, est)
    if analysis.segments is not None:
        lines += _segment_lines(analysis)
    return "\n".join(lines)


def _family_line(analysis: Analysis, family: str, what: str) -> str:
    adjustment = analysis.families.get(family)
    method = analysis.inference.multiplicity
    m = adjustment.size if adjustment is not None else 0
    if m <= 1:
        return f"{what[0].upper()}{what[1:]}, tested at {100 * analysis.alpha:g}%."
    if method == "none":
        expected = m * analysis.alpha
        chance = (f"; about {expected:.1f} may look different by chance alone, so confirm surprising results in the "
                  "next wave") if expected >= 0.5 else ""
        return f"{what[0].upper()}{what[1:]}, {describe_method(method, analysis.alpha)}{chance}."
    return f"{what[0].upper()}{what[1:]}, judged together ({describe_method(method, analysis.alpha)})."


def _method_lines(analysis: Analysis, est: pd.DataFrame) -> list[str]:
    exact_text = "exact intervals (Clopper-Pearson for each rate, combined by square-and-add; Fisher's exact test)"
    if not analysis.covariates:
        return [f"Effects use {exact_text}."]
    cuped = est[est["method"] == CUPED]
    exact = est[est["method"] != CUPED]
    covariates = ", ".join(analysis.covariates)
    if not len(exact):
        return [f"Effects are adjusted for pre-wave {covariates} (CUPED)."]
    why = (f"CUPED needs {CUPED_MIN_EVENTS} conversions and {CUPED_MIN_EVENTS} non-conversions in each group, "
           "covariates that vary, and a narrower interval")
    if not len(cuped):
        return [f"Effects use {exact_text}, not adjusted for pre-wave {covariates}: {why}."]
    named = ", ".join(exact["arm"].head(_MAX_NAMED))
    if len(exact) > _MAX_NAMED:
        named += f" and {len(exact) - _MAX_NAMED} more"
    return [
        f"Effects of {len(cuped)} of {_count(len(est), 'arm')} are adjusted for pre-wave {covariates} (CUPED); "
        f"{named} {'uses' if len(exact) == 1 else 'use'} {exact_text}: {why}."
    ]


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
    return out


def _expects(analysis: Analysis, target: float) -> str:
    if isinstance(analysis.inference.target_effect, Mapping):
        return f"the plan expects {_size_1000(target)}"
    return f"the experiment aims to detect {_size_1000(target)}"


def _too_small(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["too_small"].to_numpy(dtype=bool)]


def _cell_phrase(analysis: Analysis, r: tuple) -> str:
    power = f"{100 * analysis.inference.power:.0f}% power"
    if np.isfinite(r.detectable_effect):
        can = f"{int(r.n):,} people can detect {_size_1000(r.detectable_effect)} per 1,000 at {power}"
    else:
        can = f"{int(r.n):,} people cannot detect any rise at {power}"
    return f"{can}; {_expects(analysis, r.target_effect)}"


def _too_small_lines(analysis: Analysis, est: pd.DataFrame) -> list[str]:
    short = _too_small(est)
    if not len(short):
        return []
    out = [
        f"Too small to detect the expected effect ({len(short)} of {_count(len(est), 'arm')}; more people are needed):"
    ]
    out += [f"  - {r.arm}: {_cell_phrase(analysis, r)}." for r in short.itertuples()]
    return out


def _segment_lines(analysis: Analysis) -> list[str]:
    seg = analysis.segments
    seg = _estimates(seg[(seg["arm"] != analysis.control) & (seg["verdict"] != "")])
    wins = seg[seg["verdict"] == BETTER].sort_values("effect", ascending=False)
    losses = seg[seg["verdict"] == WORSE].sort_values("effect")
    if not len(seg):
        return [f"By segment: no segment has both the {analysis.control} and an arm, so there is nothing to compare."]
    level = _level(float(seg["interval_level"].iloc[0]))
    out = [_family_line(analysis, "segments", f"by segment, {_count(len(seg), 'segment x arm comparison')}")]
    for title, rows in (("By segment, beat the holdout", wins), ("By segment, did worse", losses)):
        if len(rows):
            out.append(f"{title} ({level} intervals):")
            out += [
                f"  - {r.segment} / {r.arm}: {_per_1000(r.effect)} per 1,000 "
                f"({_per_1000(r.low)} to {_per_1000(r.high)})"
                for r in rows.head(_MAX_SEGMENT_LINES).itertuples()
            ]
            if len(rows) > _MAX_SEGMENT_LINES:
                out.append(f"  - and {len(rows) - _MAX_SEGMENT_LINES} more")
    short = _too_small(seg)
    if len(short):
        worst = next(short.sort_values("n").itertuples())
        out.append(
            f"{len(short)} of {len(seg)} segment cells are too small to detect the expected effect; the smallest, "
            f"{worst.segment} / {worst.arm}: {_cell_phrase(analysis, worst)}."
        )
    return out
