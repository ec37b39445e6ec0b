"""The feature library: one small, named, pure function per feature, registered by name.

Each function takes an :class:`~uplift.features.context.AsOfContext` and returns a DataFrame
aligned with ``ctx.keys`` (one column, or one per channel / message for the ``*_by_*``
families). Only history strictly before the key's as-of time is visible to it. A feature names
the audience attributes it reads (``needs``), so a feature set can leave out what an audience
lacks; an attribute a programme declared itself (``FeatureSetSpec.attributes``) is a feature of
its own name.

Beside each function stands the same definition in SQL (:class:`SqlDef`), which the out-of-core
engine (:mod:`uplift.features.outofcore`, DuckDB) computes; the two give the same table row for row,
dtypes included (tested on a simulated world), so a change to one must be made to the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from uplift.data.trainingtable import FeatureColumn
from uplift.data.vocabulary import FUNNEL_EVENTS, HOLDOUT, funnel_rank
from uplift.errors import SpecError
from uplift.features.context import AsOfContext
from uplift.specs.features import AttributeSpec, FeatureSetSpec

__all__ = [
    "FEATURES",
    "Feature",
    "SqlDef",
    "feature",
    "compute",
    "columns_of",
    "resolve",
    "AGE_BANDS",
    "age_band_of",
]

Kind = Literal["numeric", "categorical"]
Source = Literal["person", "prior_exposures", "prior_events"]


@dataclass(frozen=True)
class SqlDef:
    """The feature in SQL, for the out-of-core engine (:mod:`uplift.features.outofcore`).

    ``columns(spec)`` maps each output column to an expression over one source:

    ``person``
        a row expression over the audience row ``a`` (its attributes).
    ``prior_exposures``
        an aggregate over ``e``, the same person's exposures with ``e.t < k.as_of``: columns ``arm``,
        ``message``, ``channel``, ``cost_eur``, ``t`` (assignment time, ns since the epoch) and ``src``
        (position in the exposures file, the order the pandas definition sums in).
    ``prior_events``
        an aggregate over ``v``, the same person's funnel events with ``v.t < k.as_of``: ``event`` and
        ``t`` (ns).

    ``k.as_of`` is the key's as-of time in ns. ``fill`` is the value of a key row without any earlier
    row in the source (SQL text), or None for missing.
    """

    source: Source
    columns: Callable[[FeatureSetSpec], dict[str, str]]
    fill: str | None = None


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    fn: Callable[[AsOfContext], pd.DataFrame]
    doc: str
    family: Literal["channels", "messages"] | None = None
    needs: tuple[str, ...] = ()
    """The audience attributes the feature reads (none for history features)."""
    sql: SqlDef | None = None
    """The same definition in SQL (None: the feature is computed in memory only)."""


FEATURES: dict[str, Feature] = {}


def _framed(name: str, fn: Callable[[AsOfContext], pd.DataFrame | pd.Series | np.ndarray]):
    def wrapped(ctx: AsOfContext) -> pd.DataFrame:
        out = fn(ctx)
        if isinstance(out, pd.DataFrame):
            return out.set_axis(ctx.keys.index, axis=0)
        return pd.DataFrame({name: np.asarray(out)}, index=ctx.keys.index)

    return wrapped


def feature(
    kind: Kind,
    *,
    family: Literal["channels", "messages"] | None = None,
    needs: tuple[str, ...] = (),
    sql: SqlDef | None = None,
):
    """Register a feature function under its own name; ``needs`` names the audience attributes it reads,
    ``sql`` is the same definition for the out-of-core engine."""

    def register(fn: Callable[[AsOfContext], pd.DataFrame | pd.Series | np.ndarray]) -> Callable:
        name = fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()[0]
        FEATURES[name] = Feature(name, kind, _framed(name, fn), doc, family, needs, sql)
        return fn

    return register


def quoted(name: str) -> str:
    """``name`` as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _row_sql(name: str, sql_type: str) -> SqlDef:
    """A person attribute as SQL: the audience column cast as the in-memory definition returns it."""
    if sql_type == "BOOLEAN_AS_DOUBLE":
        expr = f"CAST(CAST(a.{quoted(name)} AS BOOLEAN) AS DOUBLE)"
    else:
        expr = f"CAST(a.{quoted(name)} AS {sql_type})"
    return SqlDef("person", lambda _spec: {name: expr})


def _declared(name: str, spec: AttributeSpec) -> Feature:
    """The feature of an attribute the programme declared: the value itself (booleans as 0/1)."""

    def fn(ctx: AsOfContext) -> np.ndarray:
        values = ctx.people[name]
        if spec.kind == "categorical":
            return values.astype(str).to_numpy()
        return values.to_numpy(float)

    kind: Kind = "categorical" if spec.kind == "categorical" else "numeric"
    doc = spec.description or f"The programme's own {spec.kind} attribute {name!r}."
    sql_type = {"categorical": "VARCHAR", "boolean": "BOOLEAN_AS_DOUBLE", "numeric": "DOUBLE"}[spec.kind]
    return Feature(name, kind, _framed(name, fn), doc, None, (name,), _row_sql(name, sql_type))


def resolve(name: str, spec: FeatureSetSpec) -> Feature:
    """Feature ``name`` of the feature set ``spec``: a library feature, or an attribute ``spec`` declares.

    Raises
    ------
    SpecError
        ``name`` is neither, or is both.
    """
    if name in spec.attributes:
        if name in FEATURES:
            raise SpecError(f"feature set {spec.name!r}: attribute {name!r} has the name of a "
                            "library feature; rename it")
        return _declared(name, spec.attributes[name])
    try:
        return FEATURES[name]
    except KeyError:
        valid = sorted(FEATURES) + sorted(spec.attributes)
        raise SpecError(f"unknown feature {name!r}; valid: {', '.join(valid)}") from None


def columns_of(name: str, spec: FeatureSetSpec) -> list[FeatureColumn]:
    """The output columns (and their kinds) of feature ``name`` for the universes of ``spec``."""
    f = resolve(name, spec)
    if f.family is None:
        return [FeatureColumn(f.name, f.kind)]
    universe = spec.channels if f.family == "channels" else spec.messages
    return [FeatureColumn(f"{f.name.removesuffix('_by_channel').removesuffix('_by_message')}__{u}", f.kind)
            for u in universe]


def compute(ctx: AsOfContext, names: tuple[str, ...]) -> pd.DataFrame:
    """Compute the named features for every key row of ``ctx``."""
    parts = [resolve(n, ctx.spec).fn(ctx) for n in names]
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=ctx.keys.index)


# -- attributes ----------------------------------------------------------------------------
AGE_BANDS = ((18, 24), (25, 34), (35, 44), (45, 54), (55, 67))


def age_band_of(age: pd.Series | np.ndarray) -> np.ndarray:
    """Age band labels ("18-24", ..., "55-67") for ages 18-67."""
    age = np.asarray(age, dtype=float)
    edges = np.array([lo for lo, _ in AGE_BANDS[1:]], dtype=float)
    labels = np.array([f"{lo}-{hi}" for lo, hi in AGE_BANDS], dtype=object)
    return labels[np.searchsorted(edges, age, side="right")]


def _attribute(
    column: str, kind: Kind, doc: str, sql_type: str, transform: Callable[[pd.Series], np.ndarray] | None = None
):
    def fn(ctx: AsOfContext) -> np.ndarray:
        values = ctx.people[column]
        return transform(values) if transform else values.to_numpy()

    fn.__name__ = column
    fn.__doc__ = doc
    feature(kind, needs=(column,), sql=_row_sql(column, sql_type))(fn)


def _as_float(values: pd.Series) -> np.ndarray:
    return values.to_numpy(float)


_attribute("age", "numeric", "Age in years at the audience snapshot.", "BIGINT")
_attribute("gender", "categorical", "Gender: female, male or other.", "VARCHAR")
_attribute("municipality", "categorical", "Municipality of residence.", "VARCHAR")
_attribute("neighbourhood", "categorical", "Neighbourhood (4-digit postcode).", "VARCHAR")
_attribute("employment", "categorical", "Employment situation.", "VARCHAR")
_attribute("sector", "categorical", "Sector of current or last work.", "VARCHAR")
_attribute("education", "categorical", "Highest education level.", "VARCHAR")
_attribute("income_band", "categorical", "Income band.", "VARCHAR")
_attribute("migration_background", "numeric", "1 if the person has a migration background.", "BOOLEAN_AS_DOUBLE",
           _as_float)
_attribute("has_children", "numeric", "1 if the person has children at home.", "BOOLEAN_AS_DOUBLE", _as_float)


def _age_band_sql(_spec: FeatureSetSpec) -> dict[str, str]:
    # searchsorted(lower edges, age, side="right"): the last band whose lower edge is <= age
    cases = " ".join(f"WHEN a.age < {hi + 1} THEN '{lo}-{hi}'" for lo, hi in AGE_BANDS[:-1])
    lo, hi = AGE_BANDS[-1]
    return {"age_band": f"CASE {cases} ELSE '{lo}-{hi}' END"}


@feature("categorical", needs=("age",), sql=SqlDef("person", _age_band_sql))
def age_band(ctx: AsOfContext) -> np.ndarray:
    """Age band (18-24, 25-34, 35-44, 45-54, 55-67), as ad platforms target."""
    return age_band_of(ctx.people["age"])


# -- campaign history ----------------------------------------------------------------------
def _contacts(ctx: AsOfContext) -> pd.DataFrame:
    ex = ctx.prior_exposures
    return ex[ex["arm"] != HOLDOUT] if len(ex) else ex


_CONTACT = f"e.arm <> {literal(HOLDOUT)}"
_NS_PER_DAY = "86400000000000.0"


@feature("numeric", sql=SqlDef("prior_exposures", lambda _s: {"prior_waves": "CAST(count(*) AS DOUBLE)"}, "0.0"))
def prior_waves(ctx: AsOfContext) -> np.ndarray:
    """Number of earlier waves the person was randomised in (holdout included)."""
    return ctx.count_by_row(ctx.prior_exposures).astype(float)


@feature("numeric", sql=SqlDef(
    "prior_exposures", lambda _s: {"prior_contacts": f"CAST(count(*) FILTER (WHERE {_CONTACT}) AS DOUBLE)"}, "0.0"))
def prior_contacts(ctx: AsOfContext) -> np.ndarray:
    """Number of earlier contacts (randomised to a message, not the holdout)."""
    return ctx.count_by_row(_contacts(ctx)).astype(float)


def _contacts_by(column: str, universe: tuple[str, ...]) -> dict[str, str]:
    return {
        f"prior_contacts__{u}": f"CAST(count(*) FILTER (WHERE {_CONTACT} AND e.{column} = {literal(u)}) AS DOUBLE)"
        for u in universe
    }


@feature("numeric", family="channels",
         sql=SqlDef("prior_exposures", lambda s: _contacts_by("channel", s.channels), "0.0"))
def prior_contacts_by_channel(ctx: AsOfContext) -> pd.DataFrame:
    """Number of earlier contacts per channel (one column per declared channel)."""
    ex = _contacts(ctx)
    return pd.DataFrame(
        {f"prior_contacts__{c}": ctx.count_by_row(ex[ex["channel"] == c]).astype(float) for c in ctx.spec.channels}
    )


@feature("numeric", family="messages",
         sql=SqlDef("prior_exposures", lambda s: _contacts_by("message", s.messages), "0.0"))
def prior_contacts_by_message(ctx: AsOfContext) -> pd.DataFrame:
    """Number of earlier contacts per message (one column per declared message)."""
    ex = _contacts(ctx)
    return pd.DataFrame(
        {f"prior_contacts__{m}": ctx.count_by_row(ex[ex["message"] == m]).astype(float) for m in ctx.spec.messages}
    )


def _days_since(ctx: AsOfContext, frame: pd.DataFrame, time_col: str) -> np.ndarray:
    if not len(frame):
        return np.full(ctx.n, np.nan)
    as_of = ctx.keys["as_of"].array.take(frame["row"].to_numpy())  # tz-aware arrays: no boxed Timestamps
    days = np.asarray((as_of - frame[time_col].array) / pd.Timedelta(days=1), dtype=float)
    # the most recent earlier contact is the smallest gap: max of the negated gap
    return -ctx.max_by_row(frame, -days.astype(float))


def _days_since_sql(alias: str, where: str | None = None) -> str:
    gap = f"CAST(k.as_of - {alias}.t AS DOUBLE) / {_NS_PER_DAY}"
    return f"min({gap})" + (f" FILTER (WHERE {where})" if where else "")


@feature("numeric", sql=SqlDef(
    "prior_exposures", lambda _s: {"days_since_last_contact": _days_since_sql("e", _CONTACT)}))
def days_since_last_contact(ctx: AsOfContext) -> np.ndarray:
    """Days between the last earlier contact and the as-of time (missing if never contacted)."""
    return _days_since(ctx, _contacts(ctx), "assigned_at")


# summed in the order of the exposures file, as np.bincount sums: floating-point sums depend on the order
@feature("numeric", sql=SqlDef(
    "prior_exposures", lambda _s: {"prior_spend_eur": "list_sum(list(e.cost_eur ORDER BY e.src))"}, "0.0"))
def prior_spend_eur(ctx: AsOfContext) -> np.ndarray:
    """EUR spent on contacting the person in earlier waves."""
    return ctx.sum_by_row(ctx.prior_exposures, "cost_eur")


# -- funnel history ------------------------------------------------------------------------
def _funnel_stage_sql(_spec: FeatureSetSpec) -> dict[str, str]:
    ranks = " ".join(f"WHEN {literal(e)} THEN {funnel_rank(e)}" for e in FUNNEL_EVENTS)
    return {"funnel_stage": f"CAST(max(CASE v.event {ranks} END) AS DOUBLE)"}


@feature("numeric", sql=SqlDef("prior_events", _funnel_stage_sql, "0.0"))
def funnel_stage(ctx: AsOfContext) -> np.ndarray:
    """Furthest funnel stage reached before the as-of time (0 = none, 1 = registration, ... 6 = completed)."""
    ev = ctx.prior_events
    if not len(ev):
        return np.zeros(ctx.n)
    ranks = ev["event"].map(funnel_rank).to_numpy(float)
    return ctx.max_by_row(ev, ranks, fill=0.0)


@feature("numeric", sql=SqlDef("prior_events", lambda _s: {"days_since_last_event": _days_since_sql("v")}))
def days_since_last_event(ctx: AsOfContext) -> np.ndarray:
    """Days since the last funnel event before the as-of time (missing if none)."""
    return _days_since(ctx, ctx.prior_events, "occurred_at")
