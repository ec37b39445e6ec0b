"""The model in service: one immutable bundle, loaded at start-up and swapped when the registry alias moves.

A background thread polls ``name@alias`` every ``poll_seconds``; a new version is loaded on that
thread (never on the request path) and replaces the bundle with one reference assignment, so a
request sees either the old bundle or the new one, never a mix. A broken new version or an
unreachable registry leaves the last good bundle in service and the store ``degraded``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from uplift.api.redact import short_reason
from uplift.errors import ModelNotFoundError, SpecError
from uplift.specs.disclosure import DisclosurePolicy
from uplift.tracking.registry import SERVED_COLUMNS

__all__ = ["ModelBundle", "ModelStore", "Provenance", "StoreStatus", "check_served_model", "interval_level",
           "provenance", "registry_loader", "registry_resolver", "safe_segments"]

log = logging.getLogger("uplift.api")

SEGMENT_REQUIRED = SERVED_COLUMNS


def safe_segments(segments: pd.DataFrame, min_size: int) -> pd.DataFrame:
    """Rows of a segment table whose segment has at least ``min_size`` people (a new frame)."""
    return segments[segments["size"].to_numpy() >= min_size].reset_index(drop=True)


def interval_level(segments: pd.DataFrame) -> float:
    """Coverage of the table's ``lo``/``hi`` (normal intervals), read back from ``(hi - effect) / effect_sd``."""
    import numpy as np
    from scipy.stats import norm

    sd = segments["effect_sd"].to_numpy(float)
    ok = sd > 1e-12
    if not ok.any():
        return 0.8
    z = float(np.median((segments["hi"].to_numpy(float)[ok] - segments["effect"].to_numpy(float)[ok]) / sd[ok]))
    return round(float(2 * norm.cdf(z) - 1), 3)


@dataclass(frozen=True)
class Provenance:
    """Where a model version comes from, for the people who use it: what it learned from, up to when, and
    when and why it was promoted (None where the registry does not say)."""

    registered_at: datetime | None = None
    promoted_at: datetime | None = None
    promoted_by: str | None = None  # "gate" (the evidence gate at registration) or "hand" (uplift promote)
    promotion_reason: str | None = None
    learner: str | None = None
    spec: str | None = None
    outcome: str | None = None
    data_source: str | None = None
    data_until: datetime | None = None
    training_rows: int | None = None
    heldout_rows: int | None = None
    data_digest: str | None = None


def _millis(value) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


def _iso_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _count(value: str | None) -> int | None:
    return int(value) if value is not None and str(value).isdigit() else None


def provenance(version, run) -> Provenance:
    """The :class:`Provenance` of an MLflow ``ModelVersion`` and its training ``Run`` (None: no run).

    The promotion is read from the version's tags: ``gate.reason`` / ``gate.at`` / ``gate.by`` where the
    registry records them, else ``promotion`` (the reason recorded when the version was registered and
    judged, so its time is the registration's).
    """
    tags = dict(getattr(version, "tags", None) or {})
    params = dict(run.data.params) if run is not None else {}
    run_tags = dict(run.data.tags) if run is not None else {}
    registered = _millis(getattr(version, "creation_timestamp", None))
    reason = tags.get("gate.reason") or tags.get("promotion") or (getattr(version, "description", None) or None)
    return Provenance(
        registered_at=registered,
        promoted_at=_iso_time(tags.get("gate.at")) or (registered if reason else None),
        promoted_by=tags.get("gate.by") or ("gate" if reason else None),
        promotion_reason=reason,
        learner=params.get("learner"),
        spec=params.get("model_name"),
        outcome=params.get("outcome"),
        data_source=params.get("data_source"),
        data_until=_iso_time(run_tags.get("data_until")),
        training_rows=_count(params.get("n_train_rows")),
        heldout_rows=_count(params.get("n_test_rows")),
        data_digest=run_tags.get("training_table_digest") or tags.get("data.digest"),
    )


@dataclass(frozen=True)
class ModelBundle:
    """Everything a request needs about one model version; never changed after it is built."""

    name: str
    version: int
    alias: str
    run_id: str
    model: object  # uplift.tracking.pyfunc.UpliftPyfunc
    arms: tuple[str, ...]
    control: str
    features: tuple[tuple[str, str], ...]  # (name, "numeric" | "categorical")
    metrics: dict[str, float]
    segments: pd.DataFrame  # the planner's table, already restricted to segments of at least the minimum size
    interval: float
    loaded_at: datetime
    by_kind: dict[str, pd.DataFrame] = field(default_factory=dict)
    # uplift.api.compute.ComputePool serving this version, or None: requests compute in their thread
    compute: Any = None
    released: pd.DataFrame | None = None  # the released segment table (uplift.segments.release), same segments
    provenance: Provenance = field(default_factory=Provenance)
    # the targetable segments' people per print unit (uplift.places.places_table), logged with the training run;
    # internal (never released): flyers are planned per print unit with it. None: the run logged none (flyer lines
    # per municipality)
    places: pd.DataFrame | None = None

    def segments_of(self, kind: str) -> pd.DataFrame:
        """The segment rows of ``kind`` (empty frame if none)."""
        found = self.by_kind.get(kind)
        return found if found is not None else self.segments.iloc[0:0]


@dataclass(frozen=True)
class StoreStatus:
    """What ``/health`` reports."""

    status: str  # "ok" | "degraded" | "no model"
    reason: str | None
    checked_at: datetime | None


def registry_resolver(client, name: str, alias: str) -> Callable[[], str]:
    """A function returning the version number behind ``name@alias`` (raises if it cannot)."""
    from uplift.tracking.registry import champion_version

    def resolve() -> str:
        return str(champion_version(client, name, alias).version)

    return resolve


def registry_loader(client, name: str, alias: str, *, min_segment_size: int,
                    disclosure: DisclosurePolicy | None = None) -> Callable[[str], ModelBundle]:
    """A function loading version ``v`` of ``name`` into a :class:`ModelBundle` (raises if it is broken);
    its released segment table is the one ``disclosure`` (default: the default policy) allows; its places table
    (:func:`~uplift.tracking.registry.load_places`) when the run logged one."""
    from uplift.tracking.pyfunc import UpliftPyfunc
    from uplift.tracking.registry import load_places, load_released_segments, load_segments, resolve_version
    from uplift.tracking.storedmodel import load_pyfunc

    disclosure = disclosure or DisclosurePolicy()

    def load(version: str) -> ModelBundle:
        mv = resolve_version(client, name, version)
        loaded = load_pyfunc(f"models:/{name}/{mv.version}")
        model = loaded.unwrap_python_model()
        if not isinstance(model, UpliftPyfunc):
            raise ModelNotFoundError(f"{name} v{mv.version} is a {type(model).__name__}, not an uplift model")
        segments = load_segments(client, mv)
        missing = [c for c in SEGMENT_REQUIRED if c not in segments.columns]
        if missing:
            raise ModelNotFoundError(f"{name} v{mv.version}: segment table lacks column(s) {missing}")
        run = client.get_run(mv.run_id) if mv.run_id else None
        metrics = dict(run.data.metrics) if run is not None else {}
        safe = safe_segments(segments, min_segment_size)
        released = load_released_segments(client, mv, disclosure, planner=segments)
        interval = interval_level(segments)
        return ModelBundle(
            name=name,
            version=int(mv.version),
            alias=alias,
            run_id=str(mv.run_id or ""),
            model=model,
            arms=tuple(model.arms),
            control=str(model.control),
            features=tuple((f.name, f.kind) for f in model.model.features),
            metrics={k: float(v) for k, v in metrics.items()},
            segments=safe,
            interval=interval,
            loaded_at=datetime.now(UTC),
            by_kind={str(k): g.reset_index(drop=True) for k, g in safe.groupby("kind", sort=False)},
            released=released[released["segment"].isin(safe["segment"])].reset_index(drop=True),
            provenance=provenance(mv, run),
            places=load_places(client, mv),
        )

    return load


def check_served_model(settings) -> None:
    """Refuse to start over a model the service cannot serve: :class:`SpecError` naming model, version and what
    is missing (an experiment model, no segment table, arms the cost catalogue cannot price). A model or alias
    that is not there yet, or a registry that cannot be read, is no refusal: the store waits for it (503).
    """
    from mlflow import MlflowClient

    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue
    from uplift.tracking.registry import unservable_reason

    costs = load_spec(settings.costs_path(), CostCatalogue)
    uri = settings.resolved_tracking_uri()
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        reason = unservable_reason(client, settings.registered_model, settings.alias, costs)
    except Exception as exc:  # noqa: BLE001 - a registry that cannot be read (corrupt database, driver error)
        log.error("cannot check %s@%s at start (%s); the service starts and waits for it",
                  settings.registered_model, settings.alias, short_reason(exc))
        return
    if reason is not None:
        raise SpecError(f"registered_model {settings.registered_model!r}: {reason}")


class ModelStore:
    """Holds the bundle in service and keeps it in step with the registry alias.

    Parameters
    ----------
    resolve : returns the version number the alias points to now (raises when the registry is unreachable).
    load : builds the bundle of a version (raises when the version is broken).
    poll_seconds : pause between two checks of the alias.
    retire : called with the bundle a swap replaced (e.g. to close its compute pool once its
        requests are done); never raises into the store.
    """

    def __init__(self, *, resolve: Callable[[], str], load: Callable[[str], ModelBundle], poll_seconds: float,
                 retire: Callable[[ModelBundle], None] | None = None) -> None:
        self._resolve = resolve
        self._load = load
        self._retire = retire
        self.poll_seconds = float(poll_seconds)
        self._bundle: ModelBundle | None = None
        self._status = StoreStatus("no model", "not loaded yet", None)
        self._failed: tuple[str, str] | None = None  # (version, reason) of the last broken version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one refresh at a time

    @property
    def bundle(self) -> ModelBundle | None:
        """The bundle in service (None when no model could ever be loaded)."""
        return self._bundle

    @property
    def status(self) -> StoreStatus:
        return self._status

    def refresh(self) -> StoreStatus:
        """Check the alias once and load a new version if it moved; never raises.

        The status' reason is short and safe to show (:func:`~uplift.api.redact.short_reason`: no SQL,
        paths or ids); the log has the full error. A version that failed to load is not tried again
        while the alias stays on it; once the alias points anywhere else (the version in service
        included) the failure is forgotten, so moving the alias back to a repaired version retries it.
        """
        with self._lock:
            now = datetime.now(UTC)
            current = self._bundle
            try:
                target = self._resolve()
            except Exception as exc:  # registry unreachable or alias gone: keep what we have
                log.warning("cannot resolve the model alias: %s", exc)
                reason = f"cannot resolve the model alias ({short_reason(exc)})"
                self._status = StoreStatus("degraded" if current else "no model", reason, now)
                return self._status
            if self._failed is not None and self._failed[0] != target:
                self._failed = None  # the alias moved away from the broken version
            if current is not None and str(current.version) == target:
                self._status = StoreStatus("ok", None, now)
                return self._status
            if self._failed is not None:
                self._status = StoreStatus("degraded" if current else "no model", self._failed[1], now)
                return self._status
            try:
                bundle = self._load(target)
            except Exception as exc:
                served = f"; still serving v{current.version}" if current else ""
                log.error("version %s behind the alias could not be loaded%s: %s", target, served, exc)
                reason = f"version {target} behind the alias could not be loaded ({short_reason(exc)}){served}"
                self._failed = (target, reason)
                self._status = StoreStatus("degraded" if current else "no model", reason, now)
                return self._status
            self._bundle = bundle  # the atomic swap: one reference assignment
            self._status = StoreStatus("ok", None, now)
            log.info("serving %s v%s (run %s)", bundle.name, bundle.version, bundle.run_id)
            if current is not None and self._retire is not None:
                try:
                    self._retire(current)
                except Exception:
                    log.exception("retiring %s v%s failed", current.name, current.version)
            return self._status

    def start(self) -> None:
        """Load the current version now, then keep polling on a daemon thread."""
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="uplift-model-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (waits for a load in progress to finish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()
