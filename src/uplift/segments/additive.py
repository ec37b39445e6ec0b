"""Each arm's effects across the targetable segments read as an additive model over their dimensions.

A targetable segment is a combination of dimension values (age band x gender x municipality). How
much a message lifts a segment depends on who lives in it, and with rare outcomes every cell's
estimate carries noise of its own. Read as a sum of parts shared by many cells, for example an
age band x gender part plus a municipality part, the cells' table of one arm rests on far fewer
numbers than it has cells, and the noise that the sum cannot hold averages out: each cell's effect
becomes its arm's weighted least-squares fit on one-hot indicators of each term's joint value
(weights: the cells' rows). The fit has an intercept per term, so each arm's row-weighted mean
over the cells, its level, is kept exactly.

On the simulator the true effects are additive in (age band x gender) + municipality to R^2 0.99,
and the smoothed estimates plan closer to the oracle (docs/decisions.md). It
is an assumption about the world, declared per segment kind in the segment spec
(``smooth_over``): a message whose effect differs by place for one age band only breaks it. Pure
numpy and pandas; no I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PART_PREFIX", "additive_effects", "additive_loadings", "part_columns", "smoothed_draws"]

PART_PREFIX = "part__"
"""Segment-table columns ``part__<dim>+<dim>``: the additive parts a kind's effects were fitted on."""


def _term_codes(attributes: pd.DataFrame, terms: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """(n, terms): each line's code of each term's joint value."""
    return np.column_stack([pd.factorize(attributes[term[0]])[0] if len(term) == 1
                            else attributes.groupby(list(term), sort=False, dropna=False).ngroup().to_numpy()
                            for term in terms])


def _design(codes: np.ndarray) -> np.ndarray:
    """One-hot indicators of each term's values among these lines (``codes``: (n, terms))."""
    blocks = []
    for column in codes.T:
        _, local = np.unique(column, return_inverse=True)
        block = np.zeros((len(column), int(local.max()) + 1))
        block[np.arange(len(column)), local] = 1.0
        blocks.append(block)
    return np.hstack(blocks)


def additive_effects(
    effect: np.ndarray,
    arm: np.ndarray,
    attributes: pd.DataFrame,
    terms: tuple[tuple[str, ...], ...],
    weights: np.ndarray,
) -> np.ndarray:
    """Per arm, the cells' effects replaced by their weighted least-squares fit on the ``terms``.

    Parameters
    ----------
    effect : (n,) one line per (cell, arm), or (k, n) for k sets of effects at once (e.g. Thompson
        draws), each fitted as if alone.
    arm : (n,) each line's arm.
    attributes : (n rows) each line's cell's dimension values, one column per dimension named in
        ``terms``.
    terms : the additive parts, each a tuple of dimensions whose joint value has a part of its own,
        e.g. ``(("age_band", "gender"), ("municipality",))``.
    weights : (n,) each line's weight in the fit (its cell's rows); lines with weight 0 or a
        non-finite effect (in any set) are not fitted and keep their effect.

    Returns
    -------
    numpy.ndarray
        The fitted effects, shaped as ``effect``, in the input's order. Each arm's weighted mean over
        its fitted lines is unchanged. With no terms the effects are returned as they are.
    """
    effect = np.asarray(effect, dtype=float)
    sets = np.atleast_2d(effect)
    arm = np.asarray(arm)
    weights = np.asarray(weights, dtype=float)
    if not (sets.shape[1] == len(arm) == len(attributes) == len(weights)):
        raise ValueError(f"effect, arm, attributes and weights: expected one line each, got lengths "
                         f"{sets.shape[1]}, {len(arm)}, {len(attributes)}, {len(weights)}")
    missing = sorted({d for term in terms for d in term} - set(attributes.columns))
    if missing:
        raise ValueError(f"attributes: missing the dimension column(s) {missing} named in the terms")
    out = sets.copy()
    if terms:
        usable = np.isfinite(sets).all(axis=0) & (weights > 0)
        codes = _term_codes(attributes.reset_index(drop=True), terms)
        arm_codes, _ = pd.factorize(arm)
        # arms over the same cells with the same weights share one design: one solve for all of them
        alike: dict[bytes, list[np.ndarray]] = {}
        for a in np.unique(arm_codes[usable]):
            idx = np.flatnonzero(usable & (arm_codes == a))
            alike.setdefault(codes[idx].tobytes() + weights[idx].tobytes(), []).append(idx)
        k = len(sets)
        for lines in alike.values():
            x = _design(codes[lines[0]])
            root_w = np.sqrt(weights[lines[0]])
            rhs = np.concatenate([sets[:, idx].T for idx in lines], axis=1) * root_w[:, None]
            fitted = x @ (np.linalg.pinv(x * root_w[:, None]) @ rhs)  # the least-squares fit (minimum norm)
            for j, idx in enumerate(lines):
                out[:, idx] = fitted[:, j * k:(j + 1) * k].T
    return out.reshape(effect.shape)


def additive_loadings(
    sd: np.ndarray,
    arm: np.ndarray,
    attributes: pd.DataFrame,
    terms: tuple[tuple[str, ...], ...],
    weights: np.ndarray,
) -> np.ndarray:
    """Per line, its loadings on the errors its arm's additive fit carries (:func:`additive_effects`).

    The fit is linear: per arm, ``fitted = H effect`` with ``H`` the weighted least-squares
    projection on the terms. Effects whose errors are independent with sd ``sd`` give fitted effects
    whose errors have the covariance ``H diag(sd^2) H^T``, shared between every two cells with a part
    in common. It has the rank of the arm's design (a few dozen for hundreds of cells), and is
    returned as that many factors: ``L`` with ``L L^T = H diag(sd^2) H^T``, one column per factor,
    each factor the arm's own (an arm's lines load on the first columns; other arms' factors are
    independent of them).

    Parameters
    ----------
    sd : (n,) each line's sd before the fit; arm, attributes, terms, weights as for
        :func:`additive_effects`.

    Returns
    -------
    numpy.ndarray
        ``(n, k)``, ``k`` the largest rank over the arms; 0 for the lines the fit leaves as they are
        (weight 0 or a non-finite sd), and ``(n, 0)`` without terms.
    """
    sd = np.asarray(sd, dtype=float)
    arm = np.asarray(arm)
    weights = np.asarray(weights, dtype=float)
    if not (len(sd) == len(arm) == len(attributes) == len(weights)):
        raise ValueError(f"sd, arm, attributes and weights: expected one line each, got lengths "
                         f"{len(sd)}, {len(arm)}, {len(attributes)}, {len(weights)}")
    if not terms:
        return np.zeros((len(sd), 0))
    usable = np.isfinite(sd) & (weights > 0)
    codes = _term_codes(attributes.reset_index(drop=True), terms)
    arm_codes, _ = pd.factorize(arm)
    per_arm = []
    for a in np.unique(arm_codes[usable]):
        idx = np.flatnonzero(usable & (arm_codes == a))
        x = _design(codes[idx])
        root_w = np.sqrt(weights[idx])
        hat = x @ np.linalg.pinv(x * root_w[:, None]) * root_w[None, :]  # fitted = hat @ effect
        left, singular, _ = np.linalg.svd(hat * sd[idx][None, :], full_matrices=False)
        rank = int(np.sum(singular > 1e-9 * singular[0])) if singular.size and singular[0] > 0 else 0
        per_arm.append((idx, left[:, :rank] * singular[:rank]))
    out = np.zeros((len(sd), max((load.shape[1] for _, load in per_arm), default=0)))
    for idx, load in per_arm:
        out[idx, :load.shape[1]] = load
    return out


def part_columns(attributes: pd.DataFrame, terms: tuple[tuple[str, ...], ...]) -> pd.DataFrame:
    """One column per term, ``part__<dim>+<dim>``, holding each line's joint value of the term's
    dimensions (e.g. ``18-24|female``): the parts the effects were fitted on, kept with the segment
    table so that the planner's Thompson draws can be fitted the same way (:func:`smoothed_draws`)."""
    def joint(term: tuple[str, ...]) -> pd.Series:
        first, *rest = (attributes[d].astype(str) for d in term)
        return first.str.cat(rest, sep="|") if rest else first

    return pd.DataFrame({f"{PART_PREFIX}{'+'.join(term)}": joint(term) for term in terms}, index=attributes.index)


def smoothed_draws(frame: pd.DataFrame, draws: np.ndarray) -> np.ndarray:
    """``draws`` ((k, n), one column per line of ``frame``) fitted on the parts named by ``frame``'s
    ``part__*`` columns, as the estimates were (:func:`part_columns`); lines without a part value
    (empty) keep their draws, and so do all when there are no such columns. Weights: the cells'
    ``rows``, else their ``size``."""
    parts = [c for c in frame.columns if str(c).startswith(PART_PREFIX)]
    if not parts:
        return draws
    weights = frame["rows" if "rows" in frame.columns else "size"].to_numpy(dtype=float)
    values = frame[parts].fillna("").astype(str)  # a CSV round trip reads an empty part as missing
    weights = np.where((values != "").all(axis=1).to_numpy(), weights, 0.0)
    return additive_effects(draws, frame["arm"].to_numpy(), values, tuple((c,) for c in parts), weights)
