"""The champion gate's evidence: a challenger and the champion judged on the same held-out people, paired.

Pure functions of frames and loaded models (the MLflow side is :mod:`uplift.tracking.registry`).

**Which rows.** Every model holds out the people whose seeded hash of ``person_id`` falls in its test
share (:func:`uplift.modeling.validation.heldout_mask`), so the split is a function of the person,
not of the file. The gate judges both models on the rows of the challenger's table that *both*
splits hold out: neither model was fitted on them, nor was any segment table the gate plans from.
With the same split and the same data (digest) these are all of the challenger's held-out rows; on
other data of the same use they are the champion's held-out people as this table has them.

**Which figure.** For a campaign model, what planners get from it: the plan for
``promotion.plan_budget`` (the planning policy and costs of ``serve/``) made from the segment table
built on the model's training rows only, valued on the held-out rows as a randomising policy (each
segment's people contacted with each arm in the plan's proportions), in incremental conversions.
For an experiment model, the value of its targeting policy (shrunk estimates, the arm with the
largest positive effect) per 1,000 people; when the challenger was trained with economics (a value
per conversion and contact costs), the net value of each model's rule per 1,000 people at the
challenger's value and costs. With a ``cluster`` column the split is by cluster and the intervals
cluster-robust. Either way the gain is the paired difference of the two
figures on the same rows (:func:`uplift.modeling.policyvalue.ipw_contrast`), and the challenger is
promoted only when the gain's one-sided lower bound at ``promotion.confidence`` is above the margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.data.trainingtable import TrainingTable
from uplift.errors import DataError
from uplift.modeling.netvalue import net_difference, net_value
from uplift.modeling.policyvalue import PolicyTerm, PolicyValue, ipw_contrast
from uplift.modeling.validation import heldout_mask, split_keys
from uplift.specs.planning import CostCatalogue, PlanningPolicy
from uplift.specs.segments import SegmentSpec

__all__ = ["Split", "Evidence", "Decision", "PlanningInputs", "PlanTerms", "shared_heldout", "plan_terms",
           "policy_evidence", "plan_evidence", "decide", "figure"]


@dataclass(frozen=True)
class Split:
    """A model's held-out split: people whose hash with ``seed`` falls under ``share``."""

    seed: int
    share: float

    def heldout(self, person_id: pd.Series) -> np.ndarray:
        return heldout_mask(person_id, self.share, self.seed)

    def describe(self) -> str:
        return f"person hash seed {self.seed}, {self.share:g} held out"

    def tags(self) -> dict[str, str]:
        return {"data.split_seed": str(self.seed), "data.split_share": repr(float(self.share))}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Split | None:
        """The split recorded on a model version; None if it has none."""
        try:
            return cls(int(tags["data.split_seed"]), float(tags["data.split_share"]))
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class PlanningInputs:
    """What a campaign model's gate plans with: the segment spec, the costs and the planning policy."""

    segments: SegmentSpec
    costs: CostCatalogue
    policy: PlanningPolicy


@dataclass(frozen=True)
class Evidence:
    """The two figures on the same rows and the challenger's paired gain.

    ``challenger``, ``champion`` and ``gain`` are in the metric's unit (``unit``); their ``lo`` / ``hi``
    are the two-sided interval whose lower end is the one-sided bound at ``confidence``.
    """

    metric: str
    unit: str
    challenger: PolicyValue
    champion: PolicyValue | None
    gain: PolicyValue | None
    rows: int
    people: int
    same_data: bool
    confidence: float
    rows_note: str = ""
    """Which rows, e.g. ``on the same data, the 2,485 held-out rows (person hash seed 0, 0.3 held out)``."""
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Decision:
    """What the gate decided, why, and on what evidence (None when the models could not be compared)."""

    promoted: bool
    reason: str
    evidence: Evidence | None


def figure(value: PolicyValue, digits: int = 2) -> str:
    """``"12.34 [10.10, 14.58]"`` (a rounding error around 0 shows as 0.00, not -0.00)."""
    a, lo, hi = (round(x, digits) + 0.0 for x in (value.value, value.lo, value.hi))
    return f"{a:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _alpha(confidence: float) -> float:
    return 2.0 * (1.0 - confidence)


def shared_heldout(table: TrainingTable, challenger: Split, champion: Split | None) -> tuple[np.ndarray, str]:
    """Rows of ``table`` held out by the challenger's split and (if given) the champion's, and which they are.

    Raises
    ------
    DataError
        No row is held out by both splits.
    """
    ids = split_keys(table.frame)
    mask = challenger.heldout(ids)
    if champion is None or champion == challenger:
        note = f"the {int(mask.sum()):,} held-out rows ({challenger.describe()})"
    else:
        mask = mask & champion.heldout(ids)
        note = (f"the {int(mask.sum()):,} rows both splits hold out (challenger: {challenger.describe()}; "
                f"champion: {champion.describe()})")
    if not mask.any():
        raise DataError(f"no row of the table is held out by both splits ({note})")
    return mask, note


def _check_arms(label: str, arms, table: TrainingTable) -> None:
    missing = sorted(set(arms) - set(table.arms))
    if missing:
        raise DataError(f"{label} gives arm(s) {missing} that these rows were never randomised to; "
                        f"their arms: {list(table.arms)}")


def _one_hot(recommended: np.ndarray, arms: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({a: (recommended == a).astype(float) for a in arms})


def _recommendations(label: str, model, rows: TrainingTable) -> np.ndarray:
    """The targeting policy of ``model`` (an :class:`~uplift.tracking.pyfunc.UpliftPyfunc`) on ``rows``."""
    missing = [c for c in model.feature_names if c not in rows.frame.columns]
    if missing:
        raise DataError(f"{label} needs feature column(s) {missing} that this table does not have")
    if model.control != rows.control:
        raise DataError(f"{label} has control arm {model.control!r}, these rows {rows.control!r}")
    _check_arms(label, model.arms, rows)
    inputs = model.feature_names + list(getattr(model, "cost_columns", []))
    missing = [c for c in inputs if c not in rows.frame.columns]
    if missing:
        raise DataError(f"{label} needs cost column(s) {missing} that this table does not have")
    return np.asarray(model.recommend(rows.frame[inputs]), dtype=object)


def policy_evidence(
    rows: TrainingTable,
    challenger,
    champion=None,
    *,
    confidence: float,
    same_data: bool,
    rows_note: str = "",
) -> Evidence:
    """Targeting-policy value per 1,000 people of each model on ``rows``, and the paired gain.

    ``challenger`` / ``champion``: objects with ``feature_names``, ``arms``, ``control`` and
    ``recommend(frame)`` (:class:`~uplift.tracking.pyfunc.UpliftPyfunc`).
    """
    f = rows.frame
    y, arm, propensity, alpha = f["outcome"].to_numpy(), f["arm"].to_numpy(), rows.propensity(), _alpha(confidence)
    economics = getattr(challenger, "rule_economics", None)
    if economics is not None:
        return _net_evidence(rows, challenger, champion, economics=economics, confidence=confidence,
                             same_data=same_data, rows_note=rows_note)
    cluster = rows.clusters
    terms = {"challenger": _one_hot(_recommendations("the challenger", challenger, rows), rows.arms)}
    if champion is not None:
        terms["champion"] = _one_hot(_recommendations("the champion", champion, rows), rows.arms)
    values = {k: ipw_contrast(y, arm, propensity, [PolicyTerm(s, 1000.0)], alpha=alpha, cluster=cluster)
              for k, s in terms.items()}
    gain = None
    if champion is not None:
        gain = ipw_contrast(y, arm, propensity, [PolicyTerm(terms["challenger"], 1000.0),
                                                 PolicyTerm(terms["champion"], -1000.0)], alpha=alpha, cluster=cluster)
    return Evidence(
        metric="value of the targeting policy", unit=f"'{rows.outcome}' per 1,000 people",
        challenger=values["challenger"], champion=values.get("champion"), gain=gain,
        rows=len(f), people=int(f["person_id"].nunique()), same_data=same_data, confidence=confidence,
        rows_note=rows_note or f"on {len(f):,} rows",
    )


def _per_1000(v: PolicyValue) -> PolicyValue:
    return PolicyValue(value=1000 * v.value, se=1000 * v.se, lo=1000 * v.lo, hi=1000 * v.hi, n_matched=v.n_matched)


def _net_evidence(rows: TrainingTable, challenger, champion, *, economics, confidence: float, same_data: bool,
                  rows_note: str) -> Evidence:
    """Net value per 1,000 people of each model's rule on ``rows`` at ``economics`` (the challenger's), and the
    paired gain."""
    f = rows.frame
    y, arm, propensity, alpha = f["outcome"].to_numpy(), f["arm"].to_numpy(), rows.propensity(), _alpha(confidence)
    costs = economics.cost_matrix(f, rows.arms, source=rows.source or "the gate's rows")
    common = dict(costs=costs, value=economics.value, alpha=alpha, cluster=rows.clusters)
    mine = _recommendations("the challenger", challenger, rows)
    values = {"challenger": _per_1000(net_value(y, arm, propensity, mine, **common))}
    gain = None
    if champion is not None:
        theirs = _recommendations("the champion", champion, rows)
        values["champion"] = _per_1000(net_value(y, arm, propensity, theirs, **common))
        gain = _per_1000(net_difference(y, arm, propensity, mine, theirs, **common))
    return Evidence(
        metric="net value of the targeting rule", unit=f"value per 1,000 people (a '{rows.outcome}' worth "
        f"{economics.value:g}, the challenger's contact costs)",
        challenger=values["challenger"], champion=values.get("champion"), gain=gain,
        rows=len(f), people=int(f["person_id"].nunique()), same_data=same_data, confidence=confidence,
        rows_note=rows_note or f"on {len(f):,} rows",
    )


@dataclass(frozen=True)
class PlanTerms:
    """A plan as terms of :func:`~uplift.modeling.policyvalue.ipw_contrast` over some rows (its conversions added
    over contacting nobody, times ``sign``), with its spend, what it expected itself, and the share of its
    contacts in segments these rows have."""

    terms: tuple[PolicyTerm, ...]
    planned: float
    spend: float
    covered: float

    def describe(self, who: str) -> str:
        return (f"{who}'s plan spends EUR {self.spend:,.0f} and expected {self.planned:.1f} conversions; "
                f"{self.covered:.0%} of its contacts valued here")


def plan_terms(label: str, segments: pd.DataFrame, rows: TrainingTable, *, planning: PlanningInputs, budget: float,
               sign: float) -> PlanTerms:
    """The plan of ``segments`` at ``budget`` as a randomising policy over ``rows``: each row of a segment the table
    knows gets each arm with the plan's contacts / the segment's size, the rest nothing (the control); rows are
    weighted by segment size / segment rows here, so the value is over the plan's people. Rows of segments
    the table does not know (suppressed) weigh 0."""
    from uplift.allocation import plan
    from uplift.scoring.labels import SegmentLabeler

    targetable = segments[segments["kind"] == "targetable"] if "kind" in segments.columns else segments
    if targetable.empty:
        raise DataError(f"{label}'s segment table has no targetable segments to plan over")
    made = plan(targetable, budget=budget, costs=planning.costs, policy=planning.policy, references=False,
                source=f"{label}'s segments")
    _check_arms(f"{label}'s plan", made.cells.loc[made.cells["contacts"] > 0, "arm"].unique(), rows)
    size = targetable.groupby("segment", sort=False)["size"].first().astype(float)
    labels = pd.Series(SegmentLabeler(targetable, planning.segments).segments(rows.frame), dtype=object)
    rows_in = labels.map(labels.value_counts())
    known = labels.isin(size.index).to_numpy()
    weight = np.where(known, labels.map(size).to_numpy(dtype=float) / rows_in.to_numpy(dtype=float), 0.0)
    people = float(size[size.index.isin(labels[known].unique())].sum())
    contacts = made.cells.pivot_table(index="segment", columns="arm", values="contacts", aggfunc="sum", fill_value=0)
    share = contacts.div(size.reindex(contacts.index), axis=0).reindex(
        columns=list(rows.treatment_arms), fill_value=0.0)
    per_row = share.reindex(labels.where(known, None).to_numpy()).fillna(0.0).reset_index(drop=True)
    per_row[rows.control] = 1.0 - per_row.sum(axis=1)
    nobody = pd.DataFrame({rows.control: np.ones(len(labels))})
    funded = made.cells.loc[made.cells["contacts"] > 0]
    valued = funded["segment"].isin(labels[known].unique())
    covered = float(funded.loc[valued, "contacts"].sum() / funded["contacts"].sum()) if len(funded) else 1.0
    return PlanTerms(
        terms=(PolicyTerm(per_row, sign * people, weight), PolicyTerm(nobody, -sign * people, weight)),
        planned=float(made.totals.expected_conversions), spend=float(made.totals.spend), covered=covered,
    )


def plan_evidence(
    rows: TrainingTable,
    challenger: pd.DataFrame,
    champion: pd.DataFrame | None = None,
    *,
    planning: PlanningInputs,
    budget: float,
    confidence: float,
    same_data: bool,
    rows_note: str = "",
) -> Evidence:
    """Incremental conversions of each model's plan at ``budget``, valued on ``rows``, and the paired gain.

    ``challenger`` / ``champion``: segment tables built without ``rows`` (each model's training rows only).
    A plan's conversions are valued over the segments it knows that have rows here; the notes give the
    share of its contacts that were valued, and what the plan itself expected.
    """
    f = rows.frame
    y, arm, propensity, alpha = f["outcome"].to_numpy(), f["arm"].to_numpy(), rows.propensity(), _alpha(confidence)
    mine = plan_terms("the challenger", challenger, rows, planning=planning, budget=budget, sign=1.0)
    values = {"challenger": ipw_contrast(y, arm, propensity, mine.terms, alpha=alpha)}
    notes = [mine.describe("the challenger")]
    gain = None
    if champion is not None:
        theirs = plan_terms("the champion", champion, rows, planning=planning, budget=budget, sign=-1.0)
        flipped = tuple(PolicyTerm(t.shares, -t.coefficient, t.row_weight) for t in theirs.terms)
        values["champion"] = ipw_contrast(y, arm, propensity, flipped, alpha=alpha)
        gain = ipw_contrast(y, arm, propensity, mine.terms + theirs.terms, alpha=alpha)
        notes.append(theirs.describe("the champion"))
    return Evidence(
        metric=f"incremental conversions of the EUR {budget:,.0f} plan", unit="conversions",
        challenger=values["challenger"], champion=values.get("champion"), gain=gain,
        rows=len(f), people=int(f["person_id"].nunique()), same_data=same_data, confidence=confidence,
        rows_note=rows_note or f"on {len(f):,} rows", notes=tuple(notes),
    )


def decide(evidence: Evidence, *, margin: float, alias: str, champion: str | None) -> Decision:
    """Promote when there is no champion, or when the gain's one-sided lower bound exceeds ``margin``.

    ``champion``: how to name the current holder in the reason (``"v5"``); None if there is none.
    """
    e = evidence
    level = f"{e.confidence:.0%}"
    if champion is None or e.gain is None or e.champion is None:
        return Decision(True, f"no {alias} yet; {e.metric} {e.rows_note}: {figure(e.challenger)} {e.unit}", e)
    bound = e.gain.lo  # value - z * se with z the one-sided quantile at this confidence
    told = (f"{e.metric} {e.rows_note}: challenger {figure(e.challenger)}, {alias} {champion} {figure(e.champion)} "
            f"{e.unit}; gain {figure(e.gain)}, {level} lower bound {round(bound, 2) + 0.0:.2f}")
    if bound > margin:
        return Decision(True, f"{told} > margin {margin:g}: promoted", e)
    return Decision(False, f"{told} is not above margin {margin:g}: {alias} stays at {champion}", e)
