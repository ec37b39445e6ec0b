"""How much a plan made from the segment estimates truly buys, judged on the data's own held-out folds.

A plan funds the cells whose estimates look best, and the best-looking estimates are the ones most
likely to be too high (by more where the estimates spread wider than the truth): the sum of its
cells' estimates can over-state what it buys, or, where the estimates are shrunk too far, under-state
it. The folds the stage selection already holds out (:mod:`uplift.segments.stages`) measure by how
much, with what a real user has. In each fold ``k`` the kept estimator's effects ``e`` were made
without the fold's rows, and ``o`` is the fold's own observed randomised difference of the cell
(unbiased for its true effect, its noise independent of ``e``). The cells are ranked by ``e`` and the
best-looking ones making up ``top_share`` of the fold's weight (the cells' rows in the fold) are taken,
as a plan takes the best-looking cells; over every fold,

    R = sum_top w o / sum_top w e

is what those cells bought per conversion they promised. A plan's expected conversions are ``R P``
(``P`` the sum of its cells' estimated conversions). Its interval is centred there, the half-width from
the estimates' own uncertainty scaled by ``R`` and the uncertainty of ``R`` itself added:
``z sqrt((R sd_P)^2 + (P se_R)^2)``, ``se_R`` by the delta method over (fold, segment) clusters.

``top_share`` (``promise_top_share`` of the targetable kind, ``features/segments.yaml``) was chosen on
the family of worlds (docs/benchmarks.md, section 2b). A fold's estimates rest on fewer rows than the
table's, so they are a little noisier and ``R`` errs towards promising less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

__all__ = ["PromiseCalibration", "heldout_calibration", "promise_of"]


@dataclass(frozen=True)
class PromiseCalibration:
    """What the best-looking cells bought per conversion promised on the held-out folds (``ratio``),
    its standard error, the share of weight taken (``top_share``) and the (fold, cell) pairs it rests on."""

    ratio: float
    ratio_se: float
    top_share: float
    lines: int

    def record(self) -> dict:
        """JSON-friendly (what a segment table carries in ``attrs["stages"][kind]["promise"]``)."""
        return {"ratio": self.ratio, "ratio_se": self.ratio_se, "top_share": self.top_share, "lines": self.lines}

    @classmethod
    def from_record(cls, record: dict) -> PromiseCalibration:
        return cls(float(record["ratio"]), float(record["ratio_se"]), float(record["top_share"]), int(record["lines"]))

    @property
    def usable(self) -> bool:
        """Finite numbers (the best-looking cells promised something)."""
        return bool(np.isfinite(self.ratio) and np.isfinite(self.ratio_se))


def heldout_calibration(effects: Sequence[np.ndarray], observed: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                        clusters: Sequence[np.ndarray], *, top_share: float) -> PromiseCalibration:
    """``R`` and its standard error over the folds (see the module docstring).

    One array per fold: the cells' estimates made without the fold, the fold's observed differences,
    their weights (the cell's rows in the fold) and cluster labels (unique across folds, e.g. fold and
    segment). Cells with a non-finite value or no weight are left out; in each fold the cells are taken
    in order of their estimates while the weight taken stays within ``top_share`` of the fold's (at
    least the first). NaN when the cells taken promise nothing (``sum w e <= 0``).
    """
    if not 0 < top_share <= 1:
        raise ValueError(f"top_share: expected a share in (0, 1], got {top_share}")
    num, den, cells = [], [], []
    for e, o, w, c in zip(effects, observed, weights, clusters, strict=True):
        e, o, w, c = (np.asarray(v, dtype=float) for v in (e, o, w, c))
        ok = np.isfinite(e) & np.isfinite(o) & (w > 0)
        e, o, w, c = e[ok], o[ok], w[ok], c[ok]
        if not len(e):
            continue
        order = np.argsort(-e, kind="stable")
        taken = order[: max(1, int(np.sum(np.cumsum(w[order]) <= top_share * w.sum() * (1 + 1e-12))))]
        num.append(w[taken] * o[taken])
        den.append(w[taken] * e[taken])
        cells.append(c[taken])
    nan = float("nan")
    if not num:
        return PromiseCalibration(nan, nan, top_share, 0)
    n, d, c = (np.concatenate(v) for v in (num, den, cells))
    if not d.sum() > 0:
        return PromiseCalibration(nan, nan, top_share, len(d))
    ratio = float(n.sum() / d.sum())
    _, cluster = np.unique(c, return_inverse=True)
    influence = np.bincount(cluster, weights=n - ratio * d) / d.sum()
    return PromiseCalibration(ratio, float(np.sqrt(np.sum(influence**2))), top_share, len(d))


def promise_of(calibration: PromiseCalibration, *, planned: float, half_width: float,
               interval: float) -> tuple[float, float, float]:
    """A plan's calibrated expected conversions and central ``interval`` (lo, hi).

    ``planned``: the sum of its cells' estimated conversions; ``half_width``: its interval's half-width
    from the estimates' own uncertainty (at ``interval``). A negative ratio is taken as 0 (the
    best-looking cells bought nothing on the held-out folds; the interval still spans its uncertainty).
    """
    r = max(calibration.ratio, 0.0)
    z = float(norm.ppf(0.5 + interval / 2))
    centre = r * planned
    half = float(np.hypot(r * half_width, z * calibration.ratio_se * abs(planned)))
    return float(centre), float(centre - half), float(centre + half)
