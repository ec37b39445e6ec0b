"""Randomised assignment of an audience to arms by a salted hash, stratum balance, and exposures rows.

Each person's arm depends only on the spec's salt, the person's id and the design shares, so the
same spec always gives the same assignment and adding people never moves anyone already assigned.
Strata are not used to force balance (that would make one person's arm depend on who else is in
the audience); :func:`stratum_balance` reports how close each stratum came to the design instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from uplift.data.contracts import EXPOSURES, validate
from uplift.data.vocabulary import NO_MESSAGE, split_arm
from uplift.design.shares import design_shares
from uplift.design.srm import srm_check
from uplift.design.strata import stratum_keys
from uplift.errors import DataError, SchemaError
from uplift.specs.experiment import ExperimentSpec

__all__ = ["hash_uniform", "assign", "stratum_balance", "to_exposures", "ASSIGNMENT_COLUMNS", "EXPOSURE_COLUMNS"]

ASSIGNMENT_COLUMNS = (
    "person_id",
    "wave",
    "arm",
    "message",
    "channel",
    "assignment_probability",
    "stratum",
)
"""Columns of the frame :func:`assign` returns, in order."""

EXPOSURE_COLUMNS = (
    "person_id",
    "wave",
    "arm",
    "message",
    "channel",
    "assigned_at",
    "assignment_probability",
    "cost_eur",
)
"""Columns of the frame :func:`to_exposures` returns, in order."""

_MANTISSA_SHIFT = np.uint64(11)  # keep the top 53 bits: exactly representable, so u < 1 always


def hash_uniform(person_ids: pd.Series, salt: str) -> np.ndarray:
    """A stable uniform number in [0, 1) per id: BLAKE2b-64 of ``f"{salt}:{person_id}"``.

    The first 8 digest bytes are read as a big-endian unsigned integer; its top 53 bits divided
    by 2**53 give the number (dividing all 64 bits by 2**64 in floating point can round up to 1).
    The value depends only on ``salt`` and the id, not on the order or presence of other ids.

    Parameters
    ----------
    person_ids : pandas.Series
        Ids (converted to ``str``).
    salt : str
        The experiment's salt.

    Returns
    -------
    numpy.ndarray
        Float64 array of shape ``(len(person_ids),)``.
    """
    blake2b = hashlib.blake2b
    keys = (f"{salt}:" + person_ids.astype(str)).tolist()
    digests = b"".join([blake2b(key.encode(), digest_size=8).digest() for key in keys])
    words = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
    return (words >> _MANTISSA_SHIFT).astype(np.float64) / float(2**53)


def assign(
    audience: pd.DataFrame,
    spec: ExperimentSpec,
    *,
    weights: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Randomise every person in ``audience`` to one arm of ``spec``.

    The person's hash number ``u`` (:func:`hash_uniform`) is mapped to arms by cumulative design
    shares, control first: ``u < holdout_share`` is the control, and so on.

    Parameters
    ----------
    audience : pandas.DataFrame
        One row per person with ``person_id`` and the spec's strata columns (``age`` for
        ``age_band``). Not modified.
    spec : ExperimentSpec
        The experiment.
    weights : mapping of arm to float, optional
        The plan's contacts per arm when ``spec.arm_weights`` is ``"from_plan"``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ASSIGNMENT_COLUMNS`, one row per audience row in the same order:
        ``message`` and ``channel`` split from the arm (the control gets ``"none"``/``"none"``),
        ``assignment_probability`` the design share of the assigned arm, ``stratum`` the key of
        the person's stratum.

    Raises
    ------
    SchemaError
        ``person_id`` or a stratum column is missing, or an id is missing or duplicated.
    DataError, SpecError
        See :func:`~uplift.design.shares.design_shares` and :func:`~uplift.design.strata.stratum_keys`.
    """
    ids = _person_ids(audience, spec)
    shares = design_shares(spec, weights)
    strata = stratum_keys(audience, spec.strata)
    u = hash_uniform(ids, spec.salt)
    edges = np.cumsum(shares.to_numpy())
    idx = np.minimum(np.searchsorted(edges, u, side="right"), len(shares) - 1)
    arms = list(shares.index)
    parts = [(NO_MESSAGE, NO_MESSAGE) if arm == spec.control else split_arm(arm) for arm in arms]

    def pick(labels: list[str]) -> pd.Series:
        return pd.Series(labels, dtype="str").take(idx).reset_index(drop=True)

    return pd.DataFrame(
        {
            "person_id": ids.reset_index(drop=True),
            "wave": np.full(len(ids), spec.wave, dtype=np.int64),
            "arm": pick(arms),
            "message": pick([m for m, _ in parts]),
            "channel": pick([c for _, c in parts]),
            "assignment_probability": shares.to_numpy()[idx],
            "stratum": strata.reset_index(drop=True),
        }
    )


def _person_ids(audience: pd.DataFrame, spec: ExperimentSpec) -> pd.Series:
    """The audience's ``person_id`` as text, checked present and unique (the hash randomises on it)."""
    if "person_id" not in audience.columns:
        raise SchemaError(f"audience for experiment {spec.name!r}: column 'person_id' is missing")
    ids = audience["person_id"]
    if ids.isna().any():
        raise SchemaError(f"audience: column 'person_id' has {int(ids.isna().sum())} missing value(s)")
    ids = ids.astype("str")
    dup = ids.duplicated()
    if dup.any():
        raise SchemaError(
            f"audience: column 'person_id': expected unique values; {int(dup.sum())} duplicate(s) "
            f"(e.g. {ids[dup].head(3).tolist()})"
        )
    return ids


def stratum_balance(assignment: pd.DataFrame, shares: pd.Series) -> pd.DataFrame:
    """How close each stratum's realised arm shares came to the design.

    Parameters
    ----------
    assignment : pandas.DataFrame
        Output of :func:`assign` (columns ``stratum`` and ``arm``).
    shares : pandas.Series
        Design shares by arm (:func:`~uplift.design.shares.design_shares`).

    Returns
    -------
    pandas.DataFrame
        One row per stratum (largest first): ``stratum``, ``n``, ``max_share_gap`` (largest
        absolute difference between an arm's realised and design share), ``statistic`` and
        ``p_value`` of a chi-square test of the stratum's arm counts against the design. With many
        strata some small p-values are expected by chance; in small strata large gaps are too.
    """
    for col in ("stratum", "arm"):
        if col not in assignment.columns:
            raise SchemaError(f"assignment: column {col!r} is missing")
    counts = pd.crosstab(assignment["stratum"], assignment["arm"])
    unknown = sorted(set(counts.columns) - set(shares.index))
    if unknown:
        raise DataError(f"assignment: arms {unknown} are not in the design {list(shares.index)}")
    counts = counts.reindex(columns=shares.index, fill_value=0)
    n = counts.sum(axis=1)
    gaps = (counts.div(n, axis=0) - shares.to_numpy()).abs().max(axis=1)
    rows = []
    for stratum, row in counts.iterrows():
        check = srm_check(row, shares)
        rows.append((stratum, int(n[stratum]), float(gaps[stratum]), check.statistic, check.p_value))
    table = pd.DataFrame(rows, columns=["stratum", "n", "max_share_gap", "statistic", "p_value"])
    return table.sort_values(["n", "stratum"], ascending=[False, True], ignore_index=True)


def to_exposures(
    assignment: pd.DataFrame,
    spec: ExperimentSpec,
    costs_per_channel: Mapping[str, float],
) -> pd.DataFrame:
    """Rows of the EXPOSURES contract from an assignment.

    Parameters
    ----------
    assignment : pandas.DataFrame
        Output of :func:`assign`. Not modified.
    spec : ExperimentSpec
        The experiment; ``assigned_at`` is midnight UTC of ``spec.start``.
    costs_per_channel : mapping of channel to float
        Cost in EUR of one exposure on each channel used; the control's channel ``"none"`` costs 0
        unless given.

    Returns
    -------
    pandas.DataFrame
        Validated against :data:`uplift.data.contracts.EXPOSURES`: ``person_id, wave, arm, message,
        channel, assigned_at, assignment_probability, cost_eur``.

    Raises
    ------
    DataError
        A channel in the assignment has no cost, or a cost is negative.
    SchemaError
        The result breaks the exposures contract.
    """
    missing_cols = [c for c in ASSIGNMENT_COLUMNS if c not in assignment.columns]
    if missing_cols:
        raise SchemaError(f"assignment for experiment {spec.name!r}: missing column(s) {missing_cols}")
    costs = {NO_MESSAGE: 0.0, **{k: float(v) for k, v in costs_per_channel.items()}}
    negative = {k: v for k, v in costs.items() if not v >= 0}
    if negative:
        raise DataError(f"costs_per_channel: costs must be >= 0 EUR; got {negative}")
    used = set(assignment["channel"].unique())
    uncosted = sorted(used - set(costs))
    if uncosted:
        raise DataError(f"costs_per_channel: no cost for channel(s) {uncosted}; given: {sorted(costs_per_channel)}")
    frame = assignment.loc[:, ["person_id", "wave", "arm", "message", "channel", "assignment_probability"]].assign(
        assigned_at=pd.Timestamp(spec.start, tz="UTC"),
        cost_eur=assignment["channel"].map(costs).astype(float),
    )
    frame = frame[list(EXPOSURE_COLUMNS)]
    return validate(frame, EXPOSURES, source=f"exposures of experiment {spec.name!r}")
