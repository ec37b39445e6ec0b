"""Power of a design: people needed per arm for the declared effect, and the effect detectable with those available."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import optimize, stats

from uplift.design.shares import design_shares
from uplift.errors import DataError
from uplift.specs.experiment import ExperimentSpec

__all__ = ["detectable_effect", "holdout_n_needed", "power_at", "power_table"]


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(stats.norm.ppf(1.0 - alpha / 2.0)), float(stats.norm.ppf(power))


def holdout_n_needed(base_rate: float, effect: float, ratio: float, *, alpha: float, power: float) -> float:
    """People needed in the control arm for a two-sided two-proportion z-test (unrounded).

    With ``p0 = base_rate``, ``p1 = p0 + effect``, ``k = ratio`` (arm size / control size) and
    ``pbar = (p0 + k p1) / (1 + k)``::

        n_control = (z_{1-alpha/2} sqrt(pbar (1 - pbar) (1 + 1/k))
                     + z_{power} sqrt(p0 (1 - p0) + p1 (1 - p1) / k))**2 / effect**2

    and the arm needs ``k * n_control``: the usual formula for unequal group sizes, with the pooled
    variance under the null and the unpooled one under the alternative (see e.g. Fleiss, Levin &
    Paik, *Statistical Methods for Rates and Proportions*, ch. 4).

    Parameters
    ----------
    base_rate : float
        Control conversion rate, in (0, 1).
    effect : float
        Absolute difference to detect; ``base_rate + effect`` must lie in (0, 1).
    ratio : float
        Arm size divided by control size (> 0).
    alpha, power : float
        Two-sided significance level and desired power.
    """
    return _n_needed(base_rate, effect, ratio, *_z(alpha, power))


def _n_needed(p0: float, effect: float, k: float, z_a: float, z_b: float) -> float:
    """:func:`holdout_n_needed` with the two normal quantiles given."""
    p1 = p0 + effect
    pbar = (p0 + k * p1) / (1.0 + k)
    root = z_a * np.sqrt(pbar * (1 - pbar) * (1 + 1 / k)) + z_b * np.sqrt(p0 * (1 - p0) + p1 * (1 - p1) / k)
    return float(root**2 / effect**2)


def power_at(base_rate: float, effect: float, n_control: float, ratio: float, *, alpha: float) -> float:
    """Power of the two-sided two-proportion z-test with ``n_control`` control and ``ratio * n_control`` arm people.

    The inverse of :func:`holdout_n_needed` (the far rejection tail is ignored).

    Parameters
    ----------
    base_rate, effect, ratio : float
        As in :func:`holdout_n_needed`.
    n_control : float
        People in the control arm.
    alpha : float
        Two-sided significance level.

    Returns
    -------
    float
        The probability of rejecting "no difference" when the true difference is ``effect``.
    """
    p0, p1, k = base_rate, base_rate + effect, ratio
    z_a = float(stats.norm.ppf(1.0 - alpha / 2.0))
    pbar = (p0 + k * p1) / (1.0 + k)
    null_sd = np.sqrt(pbar * (1 - pbar) * (1 + 1 / k))
    alt_sd = np.sqrt(p0 * (1 - p0) + p1 * (1 - p1) / k)
    return float(stats.norm.cdf((abs(effect) * np.sqrt(n_control) - z_a * null_sd) / alt_sd))


def _mde(base_rate: float, n_control: float, ratio: float, *, alpha: float, power: float) -> float:
    """Smallest positive effect detectable with ``n_control`` control people; NaN if none is."""
    if n_control <= 0:
        return float("nan")
    top = (1.0 - base_rate) * (1.0 - 1e-9)
    z_a, z_b = _z(alpha, power)

    def gap(effect: float) -> float:
        return _n_needed(base_rate, effect, ratio, z_a, z_b) - n_control

    if gap(top) > 0:
        return float("nan")
    return float(optimize.brentq(gap, 1e-12, top, xtol=1e-12, rtol=1e-10))


def detectable_effect(base_rate: float, n_control: float, n_arm: float, *, alpha: float, power: float) -> float:
    """Smallest rise in the rate that ``n_arm`` people against ``n_control`` detect with probability ``power``.

    The inverse of :func:`holdout_n_needed` in the effect, for the two-sided two-proportion z-test
    at level ``alpha`` with ratio ``n_arm / n_control``.

    Returns
    -------
    float
        The effect (absolute rate difference), or NaN when no rise up to a rate of 1 is detectable,
        a group is empty, or ``base_rate`` is outside [0, 1).
    """
    if not (0.0 <= base_rate < 1.0) or not (n_control > 0 and n_arm > 0):
        return float("nan")
    return _mde(base_rate, n_control, n_arm / n_control, alpha=alpha, power=power)


def power_table(
    spec: ExperimentSpec,
    base_rate: float,
    n_available: int,
    weights: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Sample size and minimum detectable effect of each treatment arm against the control.

    Each row is one two-sided two-proportion z-test of an arm against the control at
    ``spec.alpha`` and ``spec.power``, with the arm and control sizes in the ratio of their design
    shares (see :func:`holdout_n_needed`). No correction for testing many arms is made.

    Parameters
    ----------
    spec : ExperimentSpec
        The experiment (shares, ``minimum_detectable_effect``, ``alpha``, ``power``).
    base_rate : float
        Expected conversion rate of the control (the holdout), in (0, 1).
    n_available : int
        People who will be randomised (the audience size).
    weights : mapping of arm to float, optional
        The plan's contacts per arm when ``spec.arm_weights`` is ``"from_plan"``.

    Returns
    -------
    pandas.DataFrame
        One row per treatment arm: ``arm``, ``arm_share``, ``holdout_share``, ``base_rate``,
        ``minimum_detectable_effect`` (declared), ``n_arm_needed``, ``n_holdout_needed``,
        ``n_total_needed`` (audience size under the design shares for this arm's test),
        ``n_arm_available``, ``n_holdout_available`` (expected under the design),
        ``mde_available`` (smallest effect detectable with them, NaN if none),
        ``power_available`` (power at the declared effect) and ``sufficient``.

    Raises
    ------
    DataError
        ``base_rate`` outside (0, 1), ``base_rate + minimum_detectable_effect`` not below 1, or
        ``n_available`` not a positive integer.
    """
    if not 0.0 < base_rate < 1.0:
        raise DataError(f"base_rate must lie strictly between 0 and 1, got {base_rate}")
    mde = spec.minimum_detectable_effect
    if base_rate + mde >= 1.0:
        raise DataError(f"base_rate + minimum_detectable_effect must be below 1; got {base_rate} + {mde}")
    if isinstance(n_available, bool) or int(n_available) != n_available or n_available <= 0:
        raise DataError(f"n_available must be a positive whole number of people, got {n_available!r}")
    shares = design_shares(spec, weights)
    s_c = float(shares[spec.control])
    rows = []
    for arm in spec.arms:
        s_t = float(shares[arm])
        k = s_t / s_c
        n_c = holdout_n_needed(base_rate, mde, k, alpha=spec.alpha, power=spec.power)
        avail_c, avail_t = n_available * s_c, n_available * s_t
        rows.append(
            {
                "arm": arm,
                "arm_share": s_t,
                "holdout_share": s_c,
                "base_rate": base_rate,
                "minimum_detectable_effect": mde,
                "n_arm_needed": int(np.ceil(k * n_c)),
                "n_holdout_needed": int(np.ceil(n_c)),
                "n_total_needed": int(np.ceil(n_c / s_c)),
                "n_arm_available": int(np.floor(avail_t)),
                "n_holdout_available": int(np.floor(avail_c)),
                "mde_available": _mde(base_rate, avail_c, k, alpha=spec.alpha, power=spec.power),
                "power_available": power_at(base_rate, mde, avail_c, k, alpha=spec.alpha),
                "sufficient": bool(avail_c >= n_c),
            }
        )
    return pd.DataFrame(rows)
