"""The service side of ``POST /plans``: per-request overrides, the planner call, the size floor, a result cache."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pydantic_core

from uplift.allocation.breakdown import plan_breakdown
from uplift.allocation.curve import CURVE_POINTS, budget_curve, curve_budgets
from uplift.allocation.planner import PreparedPlan
from uplift.allocation.unitrows import by_unit
from uplift.api.footprint import array_bytes
from uplift.api.handlers import RequestFieldError
from uplift.api.modelstore import ModelBundle, safe_segments
from uplift.api.planschema import PackedBody, pack_body
from uplift.api.redact import echo
from uplift.api.schemas import PlanCell, PlanRequest, PlanResponse
from uplift.errors import DataError, SpecError, UpliftError
from uplift.specs.planning import CostCatalogue, PlanningPolicy, apply_overrides

if TYPE_CHECKING:
    from uplift.api.valuetables import FunnelTable, FunnelTables

__all__ = ["CONVERSION_DECIMALS", "PREPARED_BYTES", "ComputedPlan", "PlanService", "finite_or_none", "request_key",
           "rounded_figures"]

log = logging.getLogger("uplift.api")

_PREPARED_KEPT = 32
"""Prepared plans (checked table + LPs) kept per service at most, most recently used first; fewer when they
hold more than the service's ``prepared_bytes`` (a prepared plan over 3,876 cells holds 29 MB of arrays)."""
PREPARED_BYTES = 256 * 2**20
"""Default memory for prepared plans per process that computes plans (``prepared_plans_mb`` setting)."""

_CELL_LABELS = ("segment", "arm", "message", "channel")
_CELL_FLOATS = ("spend", "expected_conversions", "lo", "hi", "cost_per_conversion", "marginal_cost", "exploration")
_EUR_FIELDS = frozenset({"budget", "spend", "cost_per_conversion", "cost_per_conversion_lo", "cost_per_conversion_hi",
                         "marginal_cost", "exploration", "exploration_spend"})
"""Amounts in EUR: sent to the cent."""
_CONVERSION_FIELDS = frozenset({"expected_conversions", "lo", "hi", "estimated_conversions"})
"""Incremental conversions and their interval: sent to ``CONVERSION_DECIMALS`` places."""
CONVERSION_DECIMALS = 4
"""A ten-thousandth of a conversion: far below the estimates' own uncertainty, and a sum over a plan's cells
stays within a ten-thousandth per cell of its total. 17-digit floats made a plan's answer a fifth bigger (and
slower to write and read) for nothing."""


def rounded_figures(values: np.ndarray | float, field: str) -> np.ndarray:
    """``values`` of the plan figure ``field`` as the service sends them.

    EUR amounts to the cent, conversion figures to :data:`CONVERSION_DECIMALS` places, other fields
    (counts, shares) unchanged; NaN and inf stay as they are. Each result is the double nearest its
    decimal, so JSON writes it short (``51.87``, not ``51.870000000000005``).
    """
    x = np.asarray(values, dtype=float)
    if field in _EUR_FIELDS:
        return np.round(x, 2)
    if field in _CONVERSION_FIELDS:
        return np.round(x, CONVERSION_DECIMALS)
    return x


def finite_or_none(x: float) -> float | None:
    """``x`` as a float, or None when it is NaN or infinite (JSON has no such numbers)."""
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class ComputedPlan:
    """A plan's body as computed once per (model version, request), and its JSON, checked against the schema.

    ``fragment`` is the JSON object of the body without its braces, so a response is the small
    per-request head (id, time, model, request) plus this text: no re-validation or re-encoding
    of thousands of cells per request. ``packed`` is the fragment as the plan store keeps it (hash and
    compressed text), made once where the plan is computed (a compute process), not per request.
    """

    model_name: str
    model_version: int
    status: str
    spend: float
    expected_conversions: float
    fragment: str
    packed: PackedBody



def request_key(bundle: ModelBundle, request: PlanRequest) -> str:
    """Cache key: model name and version plus a hash of the canonical request body."""
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return f"{bundle.name}:{bundle.version}:{hashlib.sha256(body.encode()).hexdigest()}"


def _check_finite(value: Any, loc: tuple[str | int, ...]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestFieldError(f"{'.'.join(map(str, loc[1:]))}: expected a finite number, got {value}", loc)
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, (*loc, i))


@dataclass(frozen=True)
class _Ready:
    """A prepared plan and what every response made from it shares: the cells' text columns (arrays
    of str) and which cells belong to segments big enough to show."""

    plan: PreparedPlan
    labels: dict[str, np.ndarray]
    shown: np.ndarray
    nbytes: int = 0  # what its arrays hold (uplift.api.footprint.array_bytes)
    value: _ValueTables | None = None  # a plan on value: each event's table, scored after the plan
    notes: tuple[str, ...] = ()  # what every plan made from it says (flyer lines per municipality, and why)


@dataclass(frozen=True)
class _ValueTables:
    """What a plan on value scores its cells on: each event's rows of the funnel table it was made on."""

    events: dict[str, pd.DataFrame]
    source: str
    notes: tuple[str, ...]


class PlanService:
    """Plans budgets over a bundle's segments under the base cost catalogue and policy.

    Parameters
    ----------
    costs, policy : the defaults (``serve/costs.yaml``, ``serve/policy.yaml``) requests override.
    min_segment_size : segments below it are never planned over nor returned.
    cache_size : plans kept per (model version, request); 0 = no cache.
    prepared_bytes : memory the prepared plans kept here may hold (their arrays; the most recently used
        one is always kept).
    funnel_tables : where a plan on value (a policy with a ``value`` block) finds its funnel segment table;
        None: such a plan is refused (422 naming ``policy.value``).
    flyers_by_neighbourhood : plan targetable plans' flyers per print unit from the model's places (else per
        municipality).
    """

    def __init__(self, *, costs: CostCatalogue, policy: PlanningPolicy, min_segment_size: int, cache_size: int,
                 prepared_bytes: int = PREPARED_BYTES, funnel_tables: FunnelTables | None = None,
                 flyers_by_neighbourhood: bool = False) -> None:
        self.costs = costs
        self.flyers_by_neighbourhood = bool(flyers_by_neighbourhood)
        self.policy = policy
        self.min_segment_size = int(min_segment_size)
        self.cache_size = int(cache_size)
        self.prepared_bytes = int(prepared_bytes)
        self.funnel_tables = funnel_tables
        self._cache: OrderedDict[str, ComputedPlan] = OrderedDict()
        self._prepared: OrderedDict[str, _Ready] = OrderedDict()
        self._lock = threading.Lock()

    def plan(self, bundle: ModelBundle, request: PlanRequest) -> ComputedPlan:
        """The plan's body (status, conflicts, notes, totals, references, funded cells), cached."""
        key = request_key(bundle, request)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if bundle.compute is None or self._on_value(request):  # the workers have no funnel tables
            body = self.compute(bundle, request)
        else:  # in a worker process; in this thread if the pool cannot take it
            body = bundle.compute.run("plan", request, local=lambda: self.compute(bundle, request))
        if self.cache_size > 0:
            with self._lock:
                self._cache[key] = body
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return body

    def compute(self, bundle: ModelBundle, request: PlanRequest) -> ComputedPlan:
        """The plan's body computed here (no result cache; prepared plans are kept)."""
        return _computed(bundle, request, self._compute(bundle, request))

    def rules_for(self, request: PlanRequest) -> tuple[CostCatalogue, PlanningPolicy]:
        """The cost catalogue and policy ``request`` plans under (the service's with its overrides)."""
        return self._overrides(request)

    def _overrides(self, request: PlanRequest) -> tuple[CostCatalogue, PlanningPolicy]:
        _check_finite(request.policy, ("body", "policy"))
        _check_finite(request.costs, ("body", "costs"))
        try:
            policy = apply_overrides(self.policy, request.policy, source="policy")
        except SpecError as exc:
            raise RequestFieldError(str(exc), ("body", "policy")) from None
        try:
            costs = apply_overrides(self.costs, request.costs, source="costs")
        except SpecError as exc:
            raise RequestFieldError(str(exc), ("body", "costs")) from None
        return costs, policy

    def _on_value(self, request: PlanRequest) -> bool:
        """Whether ``request`` plans on value along the funnel (its policy, the service's with its overrides)."""
        return self._overrides(request)[1].value is not None

    def _funnel_table(self, bundle: ModelBundle, policy: PlanningPolicy) -> FunnelTable:
        """The latest funnel table made for the policy's value; a 422 naming ``policy.value`` when there is none."""
        from uplift.errors import ModelNotFoundError

        if self.funnel_tables is None:
            raise RequestFieldError("policy: value: this service has no funnel segment tables to plan on value "
                                    "with; plan on registrations (no value block)", ("body", "policy", "value"))
        try:
            return self.funnel_tables.latest(policy.value_events, bundle.run_id)
        except ModelNotFoundError as exc:
            raise RequestFieldError(f"policy: value: {exc}", ("body", "policy", "value")) from None

    def _planned_table(self, bundle: ModelBundle, request: PlanRequest, policy: PlanningPolicy,
                       found: FunnelTable | None) -> tuple[pd.DataFrame, str, _ValueTables | None]:
        """The rows a plan is made on (segments of at least the minimum size, the requested channels and
        messages), their source, and under a value block each event's rows of the funnel table."""
        from uplift.funnel import value_plan_tables

        floor = self.min_segment_size
        if found is None:
            table = _restrict(safe_segments(bundle.segments_of(request.kind), floor), request)
            if table.empty:
                raise DataError(f"model v{bundle.version} has no {request.kind} segments of at least {floor} people")
            return table, f"{bundle.name} v{bundle.version} {request.kind} segments", None
        table = found.table
        table = table[table["kind"] == request.kind] if "kind" in table.columns else table
        table = _restrict(safe_segments(table.reset_index(drop=True), floor), request)
        if table.empty:
            raise DataError(f"{found.label} has no {request.kind} segments of at least {floor} people")
        source = f"{found.label} {request.kind} segments"
        with _planner_errors():
            table, events = value_plan_tables(table, policy, source=source)
        return table, source, _ValueTables(events=events, source=found.label, notes=found.notes)

    def _prepare(self, bundle: ModelBundle, request: PlanRequest, costs: CostCatalogue,
                 policy: PlanningPolicy) -> _Ready:
        """The budget-independent half of the plan (checked table, LPs, the cells' labels), kept per
        (model version, segments, channels, messages, policy, costs, and for a plan on value the funnel
        table's run): a planner trying budgets only pays for the solves."""
        from uplift.allocation import prepare_plan

        found = self._funnel_table(bundle, policy) if policy.value is not None else None
        places, notes = (_places_for(bundle, request, found is not None) if self.flyers_by_neighbourhood
                         else (None, ()))
        key = json.dumps(
            [bundle.name, bundle.version, request.kind, request.channels, request.messages,
             policy.model_dump(mode="json"), costs.model_dump(mode="json"), places is not None]
            + ([found.run_id] if found else []),
            sort_keys=True, separators=(",", ":"),
        )
        with self._lock:
            hit = self._prepared.get(key)
            if hit is not None:
                self._prepared.move_to_end(key)
                return hit
        table, source, value = self._planned_table(bundle, request, policy, found)
        with _planner_errors():
            prepared = prepare_plan(table, costs=costs, policy=policy, source=source, places=places,
                                    places_source=f"{bundle.name} v{bundle.version} places")
        if not any(by_unit(costs.channel(str(c))) for c in table["channel"].unique()):
            notes = ()  # no flyer channel in the plan: nothing to say about flyer lines
        cells = _cell_rows(prepared)  # a plan's cells are these rows, in this order
        labels = _label_arrays(cells)
        ready = _Ready(plan=prepared, labels=labels, shown=cells["size"].to_numpy() >= self.min_segment_size,
                       nbytes=array_bytes((prepared, labels, value)), value=value, notes=notes)
        with self._lock:
            self._prepared[key] = ready
            held = sum(r.nbytes for r in self._prepared.values())
            while len(self._prepared) > 1 and (len(self._prepared) > _PREPARED_KEPT or held > self.prepared_bytes):
                _, dropped = self._prepared.popitem(last=False)
                held -= dropped.nbytes
        return ready

    def _compute(self, bundle: ModelBundle, request: PlanRequest) -> dict:
        costs, policy = self._overrides(request)
        ready = self._prepare(bundle, request, costs, policy)
        prepared = ready.plan
        with _planner_errors():
            result = prepared.plan(budget=request.budget, strict=request.strict,
                                   references=request.include_references, prices=request.include_prices)
        cells = result.cells  # one row per row of the problem's table, in its order
        funded = np.flatnonzero((cells["contacts"].to_numpy() > 0) & ready.shown)
        funded = funded[np.argsort(-cells["spend"].to_numpy()[funded], kind="stable")]  # largest spend first
        value = None if ready.value is None else _value(result, ready.value, policy)
        return {
            "status": result.status,
            "conflicts": list(result.conflicts),
            "notes": list(result.notes) + (list(ready.value.notes) if ready.value is not None else [])
                     + list(ready.notes),
            "value": value,
            "totals": _totals(result.totals.as_dict(), policy.interval),
            "references": {name: _totals(t.as_dict(), policy.interval) for name, t in result.references.items()},
            "gains": {name: _gain(g.as_dict(), policy.interval) for name, g in result.gains.items()},
            "floors": [{**f.as_dict(), "share": finite_or_none(f.share)} for f in result.floors],
            "rules": [_rule({**r.as_dict(), "text": r.describe("expected value")} if value else r.as_dict())
                      for r in result.rules],
            "breakdown": [_part(p.as_dict()) for p in plan_breakdown(
                prepared.problem, cells if result.split_cells is None else result.split_cells)],
            "unit_lines": None if result.unit_lines is None else _unit_lines(result.unit_lines, cells.iloc[funded]),
            "cells_json": _cells_json(cells, funded, ready.labels),
        }

    def curve(self, bundle: ModelBundle, request: PlanRequest, *, points: int = CURVE_POINTS) -> dict:
        """What the next euro buys under ``request``'s rules (:func:`~uplift.allocation.curve.budget_curve`):
        ``points`` budgets from 0 to well past the useful spend, ``request.budget`` among them; in a compute
        worker when the bundle has a pool. Not cached: the prepared plan is."""
        if bundle.compute is None or self._on_value(request):
            return self.compute_curve(bundle, request, points)
        return bundle.compute.run("curve", request, points, local=lambda: self.compute_curve(bundle, request, points))

    def compute_curve(self, bundle: ModelBundle, request: PlanRequest, points: int = CURVE_POINTS) -> dict:
        """:meth:`curve` computed here: ``points`` (budget, spend, expected conversions, lo, hi, marginal cost,
        feasible), ``saturation``, ``budget`` and ``interval``; figures rounded as a plan's."""
        costs, policy = self._overrides(request)
        prepared = self._prepare(bundle, request, costs, policy).plan
        with _planner_errors():
            budgets = curve_budgets(useful_spend=prepared.useful_spend, budget=request.budget, points=points)
            found = budget_curve(prepared, budgets)
        return {
            "budget": float(request.budget),
            "saturation": float(rounded_figures(found.saturation, "spend")),
            "interval": found.interval,
            "points": [{k: (v if isinstance(v, bool) else finite_or_none(rounded_figures(v, k)))
                        for k, v in p.as_dict().items()} for p in found.points],
        }


@contextmanager
def _planner_errors() -> Iterator[None]:
    """An override the specs accept but the planner cannot use (e.g. an overflowing price) is a 422."""
    try:
        yield
    except UpliftError:
        raise
    except (ValueError, OverflowError) as exc:
        log.warning("planner rejected a request: %s", exc)
        raise RequestFieldError(f"the planner cannot use these inputs: {exc}", ("body",)) from None


def _computed(bundle: ModelBundle, request: PlanRequest, body: dict) -> ComputedPlan:
    """Check ``body`` against :class:`PlanResponse` once and keep its JSON.

    The funded cells (hundreds to thousands) arrive as JSON text written from their typed frame
    (:func:`_cells_json`); the rest of the body is validated by the schema and the cells are put
    in its place (``cells`` is the response's last field).
    """
    cells_json = body.pop("cells_json")
    fields = {"status", "conflicts", "notes", "totals", "references", "gains", "floors", "rules", "breakdown", "cells"}
    for optional in ("value", "unit_lines"):  # absent when the plan has none (not null)
        if body.get(optional) is None:
            body.pop(optional, None)
        else:
            fields.add(optional)
    checked = PlanResponse.model_validate(
        {"id": uuid.uuid4().hex, "created_at": datetime.now().astimezone(), "model_name": bundle.name,
         "model_version": bundle.version, "request": request, **body, "cells": []}
    )
    dumped = checked.model_dump_json(include=fields)
    empty = '"cells":[]}'
    if not dumped.endswith(empty):  # pragma: no cover - guards the field order the splice relies on
        raise RuntimeError("PlanResponse must serialise 'cells' last")
    fragment = dumped[1 : -len(empty)] + '"cells":' + cells_json
    return ComputedPlan(
        model_name=bundle.name,
        model_version=bundle.version,
        status=checked.status,
        spend=checked.totals.spend,
        expected_conversions=checked.totals.expected_conversions,
        fragment=fragment,
        packed=pack_body(fragment),
    )


def _value(result, value: _ValueTables, policy: PlanningPolicy) -> dict:
    """A plan on value as sent: the value (the plan's totals) with its interval, and each event's expected
    incremental conversions with theirs (:func:`uplift.funnel.event_conversions`), rounded as conversions."""
    from uplift.funnel import event_conversions
    from uplift.funnel.value import describe_value

    _, per_event = event_conversions(result.cells, value.events, policy)
    totals = result.totals
    return {
        "description": describe_value(policy.value_events).removeprefix("value = "), "source": value.source,
        **{k: float(rounded_figures(v, "expected_conversions")) for k, v in
           (("expected_value", totals.expected_conversions), ("lo", totals.lo), ("hi", totals.hi))},
        "interval": float(policy.interval),
        "events": [{"event": e.event, "weight": e.weight, "attribution_days": e.attribution_days,
                    **{k: float(rounded_figures(v, "expected_conversions")) for k, v in
                       (("expected_conversions", e.expected), ("lo", e.lo), ("hi", e.hi))},
                    "interval": float(policy.interval)} for e in per_event],
    }


NO_PLACES_NOTE = ("flyer lines are per municipality: model v{version}'s training logged no places table (where its "
                  "segments' people live); retrain it to plan flyers per print unit (neighbourhood)")
"""A targetable plan's note when its model cannot plan flyers per print unit."""


def _places_for(bundle: ModelBundle, request: PlanRequest, on_value: bool) -> tuple[pd.DataFrame | None,
                                                                                     tuple[str, ...]]:
    """The places table a plan splits its flyer rows by (targetable plans on registrations of a model whose run
    logged one) and, without it, the note saying why flyer lines are per municipality."""
    if request.kind != "targetable":
        return None, ()
    if bundle.places is None:
        return None, (NO_PLACES_NOTE.format(version=bundle.version),)
    if on_value:
        return None, ("flyer lines are per municipality in a plan on value: the places table counts the model's "
                      "segments, not the funnel table's",)
    return bundle.places, ()


def _cell_rows(prepared: PreparedPlan) -> pd.DataFrame:
    """The rows a plan's cells are, in order: the problem's, or with flyer rows split per print unit, each split
    row's parent (:func:`uplift.allocation.unitrows.parent_cells`)."""
    frame = prepared.problem.frame
    if prepared.problem.parent is None:
        return frame
    parent = frame["parent"].to_numpy()
    return frame[np.r_[True, parent[1:] != parent[:-1]]].reset_index(drop=True)


def _unit_lines(lines: pd.DataFrame, funded: pd.DataFrame) -> list[dict]:
    """A plan's print runs as sent (:class:`~uplift.api.schemas.UnitLineOut`): each channel's spend in whole cents
    split over its runs by largest remainder (:func:`uplift.handoff.lines.apportion`, as the hand-off splits it),
    so that the runs add up to the channel's ``funded`` cells as sent, to the cent."""
    from uplift.handoff.lines import apportion

    cents = np.zeros(len(lines), dtype=np.int64)
    for channel, idx in lines.groupby("channel", sort=True).indices.items():
        sent = rounded_figures(funded.loc[funded["channel"].astype(str) == channel, "spend"].to_numpy(float), "spend")
        cents[idx] = apportion(int(round(float(sent.sum()) * 100)), lines["spend"].to_numpy(dtype=float)[idx])
    return [{"channel": str(r.channel), "message": str(r.message), "unit": str(r.unit),
             "municipality": str(r.municipality), "postcodes": str(r.postcodes).split("+"),
             "contacts": int(r.contacts), "copies": int(r.copies), "holdout_people": int(r.holdout_people),
             "spend": int(c) / 100, "segments": [str(x) for x in r.segments]}
            for r, c in zip(lines.itertuples(index=False), cents, strict=True)]


def _restrict(table: pd.DataFrame, request: PlanRequest) -> pd.DataFrame:
    """Rows of ``table`` on the requested channels and messages; unknown names are a 422 listing the valid ones."""
    keep = np.ones(len(table), dtype=bool)
    for field, wanted in (("channel", request.channels), ("message", request.messages)):
        if wanted is None:
            continue
        valid = sorted(table[field].astype(str).unique())
        if not wanted:
            raise RequestFieldError(
                f"{field}s: the list is empty; name at least one of {', '.join(valid)}, or leave {field}s out to plan "
                f"over every {field}", ("body", f"{field}s"),
            )
        unknown = sorted(set(wanted) - set(valid))
        if unknown:
            shown = ", ".join(echo(u) for u in unknown[:3]) + (
                f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
            raise RequestFieldError(
                f"{field}s: {shown} not among the model's {field}s; valid: {', '.join(valid)}",
                ("body", f"{field}s"),
            )
        keep &= table[field].astype(str).isin(wanted).to_numpy()
    return table[keep].reset_index(drop=True) if not keep.all() else table


def _totals(figures: dict[str, float], interval: float) -> dict:
    """A plan's totals as sent: counts as integers, figures rounded (:func:`rounded_figures`), non-finite as null."""
    out = {k: (int(v) if k in ("contacts", "holdout_people") else finite_or_none(rounded_figures(v, k)))
           for k, v in figures.items()}
    out["interval"] = float(interval)
    for k in ("budget", "spend", "expected_conversions", "lo", "hi", "exploration_spend"):
        out[k] = out[k] if out[k] is not None else 0.0
    return out


def _gain(figures: dict[str, float], interval: float) -> dict:
    """What a plan adds over a reference, as sent: conversions and EUR rounded like the totals."""
    conversions = {k: float(rounded_figures(figures[k], "expected_conversions"))
                   for k in ("extra_conversions", "lo", "hi")}
    return {**conversions, "interval": float(interval),
            "probability_better": round(float(figures["probability_better"]), 4),
            "extra_spend": float(rounded_figures(figures["extra_spend"], "spend"))}


def _rule(figures: dict) -> dict:
    """A rule's price as sent: conversion figures rounded like the totals, non-finite as null."""
    out = dict(figures)
    for k in ("dual", "cost", "lo", "hi"):
        out[k] = finite_or_none(rounded_figures(figures[k], "expected_conversions"))
    out["dual"] = out["dual"] if out["dual"] is not None else 0.0
    out["cost_share"] = finite_or_none(round(float(figures["cost_share"]), 4))
    return out
def _part(figures: dict) -> dict:
    """A part of a plan as sent: EUR to the cent, contacts whole, conversions like the totals."""
    return {"dimension": figures["dimension"], "name": figures["name"],
            "spend": float(rounded_figures(figures["spend"], "spend")), "contacts": int(round(figures["contacts"])),
            **{k: float(rounded_figures(figures[k], "expected_conversions"))
               for k in ("expected_conversions", "lo", "hi")}}


def _label_arrays(cells: pd.DataFrame) -> dict[str, np.ndarray]:
    """The text columns of ``cells`` as arrays of Python str (picking rows of them is one indexing)."""
    return {c: np.array([str(v) for v in cells[c].tolist()], dtype=object) for c in _CELL_LABELS}


def _cells_json(cells: pd.DataFrame, rows: np.ndarray, labels: dict[str, np.ndarray]) -> str:
    """Rows ``rows`` (positions) of ``cells`` as a JSON array of :class:`PlanCell` objects (figures
    rounded by :func:`rounded_figures`, NaN and inf become null); ``labels`` holds the text columns
    (:func:`_label_arrays`, kept with the prepared plan).

    Column by column into Python lists, then one call of pydantic's Rust encoder: several times
    faster than converting the frame's (Arrow-backed) text columns and ``DataFrame.to_json``.
    """
    columns: list[list] = []
    for col in PlanCell.model_fields:
        if col in _CELL_LABELS:
            columns.append(labels[col][rows].tolist())
        elif col in _CELL_FLOATS:
            columns.append(rounded_figures(cells[col].to_numpy(dtype=float)[rows], col).tolist())
        else:
            columns.append(cells[col].to_numpy(dtype=np.int64)[rows].tolist())
    names = list(PlanCell.model_fields)
    return pydantic_core.to_json([dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)],
                                 inf_nan_mode="null").decode()
