"""A wave designed from a plan: within each planned segment, who gets each funded message and who is held out.

A plan (``uplift plan``'s cells: segment x arm, contacts, holdout people, spend, expected conversions and their
interval, exploration spend) becomes the wave's assignment. Each planned segment is one *design cell*,
randomised on its own by complete randomisation: its eligible people are ordered by the salted hash
(:func:`~uplift.design.assignment.hash_uniform`), the first ``holdout`` of them form the cell's holdout, the
next ``contacts`` of each funded arm get that arm, and the rest of the segment is not part of the wave. Every
person's design probabilities are those of their cell (arm count / people drawn in the cell), recorded in
``assignment_probability`` with the cell in ``design_cell`` (:data:`uplift.features.propensity.DESIGN_CELL`),
which is how the training table reads them back. The first contacts of an arm, in the same order, carry the
cell's exploration (``exploration``: its share of the cell's spend, rounded to whole people).

A segment with fewer eligible people than the plan asks for gets every count scaled down in proportion
(largest remainders); the check table reports every cell's planned and designed contacts and spend.
Unlike :func:`~uplift.design.assignment.assign`, the counts are exact, so adding people to the audience can
move others: design a wave once, from its final audience.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.data.contracts import EXPOSURES, validate
from uplift.data.vocabulary import HOLDOUT, NO_MESSAGE, split_arm
from uplift.design.assignment import hash_uniform
from uplift.design.cellpeople import delivery_areas, planned_segments
from uplift.errors import DataError, SchemaError
from uplift.features.propensity import DESIGN_CELL
from uplift.specs.experiment import ExperimentSpec
from uplift.specs.planning import CostCatalogue
from uplift.specs.segments import SegmentSpec

__all__ = [
    "PLAN_COLUMNS",
    "PLAN_DESIGN_COLUMNS",
    "PlanDesign",
    "checked_plan",
    "design_from_plan",
    "cell_counts",
    "registered_people",
]

PLAN_COLUMNS = ("segment", "arm", "contacts", "holdout_people", "spend", "expected_conversions", "lo", "hi",
                "exploration")
"""The columns of a plan's cells a design reads (those ``uplift plan`` writes)."""

PLAN_DESIGN_COLUMNS = ("person_id", "wave", "arm", "message", "channel", "assigned_at", "assignment_probability",
                       "cost_eur", DESIGN_CELL, "exploration", "area")
"""Columns of :attr:`PlanDesign.exposures`: the exposures contract, the design cell, whether the contact is
exploration, and the postcode a channel delivered per area reaches the person through (else ``""``)."""

_PRICE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PlanDesign:
    """A wave designed from a plan.

    Attributes
    ----------
    exposures : one row per person drawn into the wave, columns :data:`PLAN_DESIGN_COLUMNS` (exposures contract).
    check : one row per funded plan cell and one holdout row per segment: ``segment, arm, planned_contacts,
        contacts, rounding`` (designed minus planned), ``planned_spend, spend``, ``exploration_contacts`` and
        ``probability`` (the arm's design probability in the cell).
    excluded_registered : people left out because they had already registered.
    unplanned : eligible people in no planned segment (not part of the wave).
    """

    exposures: pd.DataFrame
    check: pd.DataFrame
    excluded_registered: int
    unplanned: int


def checked_plan(cells: pd.DataFrame, arms: tuple[str, ...], *, source: str = "plan") -> pd.DataFrame:
    """The plan's funded cells, checked: :data:`PLAN_COLUMNS` present and numeric, counts and spend not negative,
    one row per segment and arm, every arm one of ``arms`` (the experiment's). Returns a new frame of the cells
    with contacts > 0 or holdout people > 0, in plan order.

    Raises
    ------
    SchemaError
        A column is missing or not numeric, or a value is negative.
    DataError
        An arm is not among ``arms`` (a plan for another model's arms), a cell repeats, or nothing is funded.
    """
    missing = [c for c in PLAN_COLUMNS if c not in cells.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing}; expected the cells written by `uplift plan` "
                          f"(columns {list(PLAN_COLUMNS)})")
    out = cells.loc[:, list(PLAN_COLUMNS)].copy()
    out["segment"], out["arm"] = out["segment"].fillna("").astype(str), out["arm"].astype(str)
    for col in PLAN_COLUMNS[2:]:
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() & out[col].notna()
        if bad.any():
            raise SchemaError(f"{source}: column {col!r}: expected numbers; row {int(np.flatnonzero(bad)[0]) + 1} "
                              f"has {out[col][bad].iloc[0]!r}")
        out[col] = values.fillna(0.0)
    for col in ("contacts", "holdout_people", "spend", "exploration"):
        if (out[col] < 0).any():
            raise SchemaError(f"{source}: column {col!r}: expected values >= 0; "
                              f"{int((out[col] < 0).sum())} row(s) are negative")
    unknown = sorted(set(out["arm"]) - set(arms))
    if unknown:
        raise DataError(f"{source}: column 'arm' has {unknown}, which the experiment does not have (a plan for "
                        f"another model's arms?); expected arms among {list(arms)}")
    dup = out.duplicated(["segment", "arm"])
    if dup.any():
        first = out[dup].iloc[0]
        raise DataError(f"{source}: segment {first['segment']!r} and arm {first['arm']!r} appear more than once; "
                        "expected one row per segment and arm")
    out["contacts"] = np.floor(out["contacts"] + 1e-9).astype(np.int64)
    out["holdout_people"] = np.floor(out["holdout_people"] + 1e-9).astype(np.int64)
    funded = out[(out["contacts"] > 0) | (out["holdout_people"] > 0)].reset_index(drop=True)
    if funded.empty:
        raise DataError(f"{source}: no cell has contacts or holdout people; nothing to design")
    if (funded["segment"] == "").any():
        raise DataError(f"{source}: {int((funded['segment'] == '').sum())} funded cell(s) have no segment label")
    return funded


def registered_people(enrolments: pd.DataFrame, before: dt.date, event: str = "registration") -> set[str]:
    """Ids of people with an ``event`` (default ``registration``) before midnight UTC of ``before``."""
    when = pd.Timestamp(before, tz="UTC")
    hit = (enrolments["event"].astype(str) == event) & (pd.to_datetime(enrolments["occurred_at"], utc=True) < when)
    return set(enrolments.loc[hit, "person_id"].astype(str))


def cell_counts(plan: pd.DataFrame, eligible: pd.Series, control: str = HOLDOUT) -> pd.DataFrame:
    """People to draw per segment and arm (the holdout one row per segment): the plan's counts, scaled down in
    proportion where a segment has fewer ``eligible`` people (indexed by segment) than the plan asks for.

    Returns
    -------
    DataFrame with ``segment, arm, planned, n`` (planned and designed people), one row per funded cell and one
    ``control`` row per segment with holdout people, in plan order (the holdout first within its segment).
    """
    rows = []
    for segment, part in plan.groupby("segment", sort=False):
        holdout = int(part["holdout_people"].sum())
        arms = [(control, holdout)] if holdout > 0 else []
        arms += [(a, int(c)) for a, c in zip(part["arm"], part["contacts"], strict=True) if c > 0]
        planned = np.array([c for _, c in arms], dtype=np.int64)
        available = int(eligible.get(segment, 0))
        n = planned if planned.sum() <= available else _scaled(planned, available)
        rows += [(segment, a, int(p), int(k)) for (a, _), p, k in zip(arms, planned, n, strict=True)]
    return pd.DataFrame(rows, columns=["segment", "arm", "planned", "n"])


def _scaled(planned: np.ndarray, total: int) -> np.ndarray:
    """Whole counts in proportion to ``planned`` that add up to ``total`` (largest remainders)."""
    exact = planned * (total / planned.sum())
    n = np.floor(exact).astype(np.int64)
    short = total - int(n.sum())
    n[np.argsort(-(exact - n), kind="stable")[:short]] += 1
    return n


def _prices(plan: pd.DataFrame, costs: CostCatalogue, source: str) -> pd.Series:
    """EUR per contact of each funded cell: the plan's spend over its contacts, checked against the catalogue
    (between the channel's unit cost times its cheapest and its dearest reach tier)."""
    funded = plan[plan["contacts"] > 0]
    price = funded["spend"] / funded["contacts"]
    for arm, p, seg in zip(funded["arm"], price, funded["segment"], strict=True):
        channel = costs.channel(split_arm(arm)[1])
        low = channel.unit_cost * channel.tiers[0].multiplier
        high = channel.unit_cost * channel.tiers[-1].multiplier
        if not low * (1 - _PRICE_TOLERANCE) - 1e-9 <= p <= high * (1 + _PRICE_TOLERANCE) + 1e-9:
            raise DataError(f"{source}: segment {seg!r}, arm {arm!r}: spend / contacts = EUR {p:.4f} per contact; "
                            f"the cost catalogue prices {split_arm(arm)[1]!r} at EUR {low:.4f} to {high:.4f} "
                            "(was the plan made with another catalogue?)")
    return pd.Series(price.to_numpy(), index=pd.MultiIndex.from_arrays([funded["segment"], funded["arm"]]))


def design_from_plan(
    cells: pd.DataFrame,
    audience: pd.DataFrame,
    spec: ExperimentSpec,
    *,
    segment_spec: SegmentSpec,
    costs: CostCatalogue,
    registered: set[str] | None = None,
    source: str = "plan",
) -> PlanDesign:
    """The wave's assignment from a plan's cells (see the module's docstring).

    Parameters
    ----------
    cells : the plan's cells (:data:`PLAN_COLUMNS`). Not modified.
    audience : validated audience rows (``person_id``, the segment dimensions, ``neighbourhood`` for channels
        delivered per area). Not modified.
    spec : the experiment: its ``wave``, ``salt``, ``start`` (``assigned_at`` is its midnight UTC), ``control``
        and ``arms`` (a plan arm outside them is refused); its shares are the plan's to decide.
    segment_spec : the segment spec the plan's segments were built with.
    costs : the cost catalogue (the plan's price per contact is checked against it).
    registered : ids to leave out (people who already registered); None keeps everyone.
    source : the plan's name in messages.
    """
    arms, control, wave, start = tuple(spec.arms), spec.control, spec.wave, spec.start
    plan = checked_plan(cells, arms, source=source)
    prices = _prices(plan, costs, source)
    people = audience
    excluded = 0
    if registered:
        keep = ~audience["person_id"].astype(str).isin(registered).to_numpy()
        excluded, people = int((~keep).sum()), audience.loc[keep]
    segment = planned_segments(people, plan["segment"], segment_spec)
    in_plan = np.isin(segment, plan["segment"].unique())
    people, segment = people.loc[in_plan], segment[in_plan]
    unplanned = int((~in_plan).sum())
    counts = cell_counts(plan, pd.Series(segment).value_counts(), control)
    u = hash_uniform(people["person_id"], spec.salt)
    order = np.lexsort((people["person_id"].astype(str).to_numpy(), u, segment))
    ranked = pd.DataFrame({"row": order, "segment": segment[order]})
    ranked["rank"] = ranked.groupby("segment", sort=False).cumcount().to_numpy()
    arm_of, prob_of, explore_of = _deal(ranked, counts, plan)
    drawn = arm_of != ""
    picked = people.iloc[ranked.loc[drawn, "row"].to_numpy()]
    arm = arm_of[drawn]
    parts = [(NO_MESSAGE, NO_MESSAGE) if a == control else split_arm(a) for a in arm]
    channel = np.array([c for _, c in parts], dtype=object)
    seg = ranked.loc[drawn, "segment"].to_numpy(dtype=object)
    cost = np.array([0.0 if a == control else prices[(s, a)] for s, a in zip(seg, arm, strict=True)], dtype=float)
    exposures = pd.DataFrame({
        "person_id": picked["person_id"].astype(str).to_numpy(), "wave": np.full(len(arm), wave, dtype=np.int64),
        "arm": arm, "message": [m for m, _ in parts], "channel": channel,
        "assigned_at": pd.Timestamp(start, tz="UTC"), "assignment_probability": prob_of[drawn], "cost_eur": cost,
        DESIGN_CELL: seg, "exploration": explore_of[drawn], "area": delivery_areas(picked, channel, costs),
    })
    exposures = validate(exposures, EXPOSURES, source=f"design of wave {wave} from {source}")[list(PLAN_DESIGN_COLUMNS)]
    return PlanDesign(exposures=exposures, check=_check(plan, counts, exposures, control), excluded_registered=excluded,
                      unplanned=unplanned)


def _deal(ranked: pd.DataFrame, counts: pd.DataFrame, plan: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Per ranked person: the arm (``""``: not drawn), its probability in the cell, and whether it is exploration.

    Within a segment, ranks ``[0, holdout)`` are the holdout, then each arm's ``n`` ranks in turn; an arm's
    first ``round(n x exploration / spend)`` people are its exploration."""
    n = len(ranked)
    arm_of = np.full(n, "", dtype=object)
    prob_of = np.zeros(n)
    explore_of = np.zeros(n, dtype=bool)
    share = (plan["exploration"] / plan["spend"].where(plan["spend"] > 0)).fillna(0.0).clip(0, 1)
    explore_share = dict(zip(zip(plan["segment"], plan["arm"], strict=True), share, strict=True))
    starts = ranked.groupby("segment", sort=False)["rank"].idxmin()  # the first position of each segment
    for segment, part in counts.groupby("segment", sort=False):
        drawn = int(part["n"].sum())
        if drawn == 0:
            continue
        first = int(starts[segment])
        edge = first
        for arm, k in zip(part["arm"], part["n"], strict=True):
            arm_of[edge:edge + k] = arm
            prob_of[edge:edge + k] = k / drawn
            explore_of[edge:edge + int(round(k * explore_share.get((segment, arm), 0.0)))] = True
            edge += k
    return arm_of, prob_of, explore_of


def _check(plan: pd.DataFrame, counts: pd.DataFrame, exposures: pd.DataFrame, control: str) -> pd.DataFrame:
    """Planned against designed, per funded cell and per segment's holdout."""
    got = exposures.groupby([DESIGN_CELL, "arm"]).agg(contacts=("person_id", "size"), spend=("cost_eur", "sum"),
                                                       exploration_contacts=("exploration", "sum"),
                                                       probability=("assignment_probability", "first"))
    key = pd.MultiIndex.from_arrays([counts["segment"], counts["arm"]])
    got = got.reindex(key)
    planned_spend = plan.set_index(["segment", "arm"])["spend"].reindex(key).fillna(0.0)
    table = pd.DataFrame({
        "segment": counts["segment"].to_numpy(), "arm": counts["arm"].to_numpy(),
        "planned_contacts": counts["planned"].to_numpy(),
        "contacts": got["contacts"].fillna(0).astype(np.int64).to_numpy(),
    })
    table["rounding"] = table["contacts"] - table["planned_contacts"]
    table["planned_spend"] = np.where(table["arm"] == control, 0.0, planned_spend.to_numpy())
    table["spend"] = got["spend"].fillna(0.0).to_numpy()
    table["exploration_contacts"] = got["exploration_contacts"].fillna(0).astype(np.int64).to_numpy()
    table["probability"] = got["probability"].fillna(0.0).to_numpy()
    return table
