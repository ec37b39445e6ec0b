"""The training job for a plan on value along the funnel (the planning policy's ``value`` block).

One model per event of the value, each trained on the feature set with the event and its own window as
the outcome, without the rows whose window the data do not cover yet (:mod:`uplift.funnel.censoring`),
logged and registered side by side (``uplift-<event>``, tagged with the event, its weight and window).
Then the funnel segment table (:func:`uplift.funnel.funnel_segment_table`: the value and every event on
the same rows) is logged in a run of its own that names the events' runs and versions, and written where
``uplift plan --segments`` reads it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pandas as pd

from uplift.config import Settings, tracking_uri
from uplift.data.inputs import locate_inputs
from uplift.data.tableio import read_table, write_table
from uplift.funnel import CensoredRows, EventEstimates, funnel_segment_table, last_recorded, without_censored
from uplift.funnel.value import describe_value
from uplift.pipeline import (
    Progress,
    TrainedModel,
    load_priority_groups,
    load_segment_spec,
    table_from_folder,
    train_and_log,
)
from uplift.segments.composition import PriorityGroups
from uplift.segments.release import planner_table
from uplift.specs.disclosure import DisclosurePolicy
from uplift.specs.features import FeatureSetSpec
from uplift.specs.planning import PlanningPolicy, ValueEvent
from uplift.specs.segments import SegmentSpec
from uplift.tracking.uses import campaign_use

__all__ = ["ValueTraining", "FUNNEL_ARTIFACT", "FUNNEL_EVENTS_TAG", "event_tags", "recorded_until", "event_rows",
           "find_funnel_run", "funnel_values", "latest_funnel_table", "read_funnel_run", "train_value_and_log"]

FUNNEL_ARTIFACT = "segments/funnel_segments.parquet"
"""Where a value run keeps its funnel segment table (the planner's: model estimates only)."""

FUNNEL_EVENTS_TAG = "funnel_events"
"""The tag of a value run that holds its events as JSON (event, weight, attribution_days), in funnel order."""


@dataclass(frozen=True)
class ValueTraining:
    """What training for a value policy made: one model per event, the rows each left out, the table."""

    events: tuple[ValueEvent, ...]
    models: dict[str, TrainedModel]
    censored: dict[str, int]
    observed_until: pd.Timestamp
    segments: pd.DataFrame
    """The funnel segment table (internal: with the cells' raw figures)."""
    run_id: str


def event_tags(event: ValueEvent, events: tuple[ValueEvent, ...], rows: CensoredRows) -> dict[str, str]:
    """The tags of an event's run and registered version."""
    return {"funnel_event": event.event, "funnel_weight": f"{event.weight:g}",
            "funnel_attribution_days": str(event.attribution_days), "funnel_value": describe_value(events),
            "funnel_censored_rows": str(rows.censored), "funnel_observed_until": rows.observed_until.isoformat()}


def recorded_until(folder: str | Path) -> pd.Timestamp:
    """The last recorded time of the inputs in ``folder``: the last enrolment event or assignment."""
    paths = locate_inputs(folder)
    enrolments = read_table(paths["enrolments"], columns=["occurred_at"])
    exposures = read_table(paths["exposures"], columns=["assigned_at"])
    return last_recorded(enrolments["occurred_at"], exposures["assigned_at"])


def event_rows(folder: str | Path, feature_set: FeatureSetSpec, event: ValueEvent,
               observed_until: pd.Timestamp, *, value_per_unit: float | None = None) -> CensoredRows:
    """The event's training table (the feature set with the event as its outcome), censored rows left out.

    With ``value_per_unit`` (the value policy's ``value_per_conversion``: EUR per unit of value) a conversion
    to the event is worth ``value_per_unit x weight`` against the contact costs of ``serve/costs.yaml``
    (the event model's net-value targeting rule)."""
    spec = feature_set.model_copy(update={"outcome": event.outcome})
    rows = without_censored(table_from_folder(folder, spec), event.attribution_days, observed_until)
    if value_per_unit is None:
        return rows
    from uplift.economics import campaign_economics
    from uplift.specs import load_spec, project_root
    from uplift.specs.planning import CostCatalogue

    costs = load_spec(project_root() / "serve" / "costs.yaml", CostCatalogue)
    table = rows.table
    economics = campaign_economics(costs, value_per_unit * event.weight, table.arms, table.control)
    return replace(rows, table=replace(table, economics=economics))


def train_value_and_log(
    spec_path: Path,
    folder: str | Path,
    feature_set: FeatureSetSpec,
    policy: PlanningPolicy,
    *,
    settings: Settings,
    segments_out: Path | None = None,
    observed_until: pd.Timestamp | None = None,
    segment_spec: SegmentSpec | None = None,
    disclosure: DisclosurePolicy | None = None,
    groups: PriorityGroups | None = None,
    progress: Progress | None = None,
) -> ValueTraining:
    """Train, log and register one model per event of ``policy.value``; log the funnel segment table.

    ``observed_until`` is where the data end (default: :func:`recorded_until` of ``folder``);
    ``segments_out``, if given, receives the planner's funnel segment table (written atomically).

    Raises
    ------
    SpecError
        ``policy`` has no ``value`` block.
    DataError
        An event's every row is censored, or no row has every event observed.
    """
    from uplift.errors import SpecError

    events = policy.value_events
    if events is None:
        raise SpecError("the planning policy has no 'value' block; expected the funnel events a plan's value adds up")
    until = observed_until if observed_until is not None else recorded_until(folder)
    segment_spec = segment_spec or load_segment_spec()
    models, censored, estimates = {}, {}, []
    for event in events:
        if progress:
            progress(f"{event.event}: training table")
        rows = event_rows(folder, feature_set, event, until, value_per_unit=policy.value_per_conversion)
        model = train_and_log(spec_path, rows.table, settings=settings, data_source=str(folder),
                              outcome_event=event.event, use=campaign_use(event.event), segment_spec=segment_spec,
                              disclosure=disclosure, groups=groups, tags=event_tags(event, events, rows),
                              progress=(lambda m, e=event.event: progress(f"{e}: {m}")) if progress else None)
        models[event.event], censored[event.event] = model, rows.censored
        estimates.append(EventEstimates.from_report(event, model.report))
    if progress:
        progress("value segment table")
    groups = groups if groups is not None else load_priority_groups()
    table = funnel_segment_table(estimates, segment_spec, groups)
    run_id = _log_value_run(table, events, models, censored, until, settings)
    if segments_out is not None:
        write_table(planner_table(table), segments_out)
    return ValueTraining(events=events, models=models, censored=censored, observed_until=until, segments=table,
                         run_id=run_id)


def _log_value_run(table: pd.DataFrame, events: tuple[ValueEvent, ...], models: dict[str, TrainedModel],
                   censored: dict[str, int], until: pd.Timestamp, settings: Settings) -> str:
    """A run holding the planner's funnel segment table, naming the events' runs and registered versions."""
    from uplift.tracking.runs import configure

    uri = tracking_uri(settings)
    artifacts = settings.workdir / "mlartifacts" if uri.startswith("sqlite:") else None
    experiment_id = configure(uri, settings.experiment_name, artifacts)
    with mlflow.start_run(experiment_id=experiment_id, run_name="funnel-value") as run:
        mlflow.log_params({f"weight.{e.event}": f"{e.weight:g}" for e in events}
                          | {f"attribution_days.{e.event}": e.attribution_days for e in events})
        mlflow.log_metrics({f"censored_rows.{e}": float(n) for e, n in censored.items()})
        mlflow.set_tags({
            "funnel_value": describe_value(events), "funnel_observed_until": until.isoformat(),
            FUNNEL_EVENTS_TAG: json.dumps([e.model_dump(mode="json") for e in events]),
            "funnel_event_runs": json.dumps({e: m.run_id for e, m in models.items()}),
            "funnel_event_models": json.dumps({e: f"{m.registered_model} v{m.version}" for e, m in models.items()}),
        })
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(FUNNEL_ARTIFACT).name
            planner_table(table).to_parquet(path, index=False)
            mlflow.log_artifact(str(path), str(Path(FUNNEL_ARTIFACT).parent))
    return run.info.run_id


def latest_funnel_table(settings: Settings, events: tuple[ValueEvent, ...]) -> tuple[pd.DataFrame, str, list[str]]:
    """The funnel segment table of the latest ``funnel-value`` run made for ``events`` (same events, weights and
    windows), a label, and notes naming its event models that are not their use's ``settings.alias`` now.

    Raises
    ------
    ModelNotFoundError
        No such run in the settings' experiment.
    """
    from mlflow import MlflowClient

    uri = tracking_uri(settings)
    client = MlflowClient(uri, registry_uri=uri)
    from uplift.errors import ModelNotFoundError

    try:
        found = find_funnel_run(client, settings.experiment_name, events)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"{exc} (or pass --segments)") from None
    table, notes = read_funnel_run(client, found, settings.alias)
    return table, f"funnel-value run {found.info.run_id[:8]}", notes


def find_funnel_run(client, experiment_name: str, events: tuple[ValueEvent, ...]):
    """The latest ``funnel-value`` run of ``experiment_name`` made for ``events`` (an MLflow ``Run``).

    Raises
    ------
    ModelNotFoundError
        No such run: the message names the value and how to make its table.
    """
    from uplift.errors import ModelNotFoundError

    value = describe_value(events)
    runs = [r for r in _funnel_runs(client, experiment_name) if r.data.tags.get("funnel_value") == value]
    if not runs:
        raise ModelNotFoundError(f"no funnel segment table for {value} in experiment {experiment_name!r}; "
                                 "make one with `uplift train --value-policy POLICY`")
    return runs[0]


def _funnel_runs(client, experiment_name: str) -> list:
    """The ``funnel-value`` runs of ``experiment_name``, newest first (at most 200)."""
    experiment = client.get_experiment_by_name(experiment_name)
    return [] if experiment is None else client.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name = 'funnel-value'",
        order_by=["attributes.start_time DESC"], max_results=200)


def _run_events(run) -> tuple[ValueEvent, ...] | None:
    """The events a value run was made for: its ``funnel_events`` tag, else its ``weight.<event>`` and
    ``attribution_days.<event>`` parameters; None when the run names neither."""
    tagged = run.data.tags.get(FUNNEL_EVENTS_TAG)
    try:
        if tagged:
            return PlanningPolicy(value=json.loads(tagged)).value_events
        params = run.data.params
        names = [k.removeprefix("weight.") for k in params if k.startswith("weight.")]
        if not names:
            return None
        return PlanningPolicy(value=[{"event": n, "weight": float(params[f"weight.{n}"]),
                                      "attribution_days": int(params[f"attribution_days.{n}"])}
                                     for n in names]).value_events
    except (ValueError, KeyError):  # a run whose record is not a value's: not offered
        return None


def funnel_values(client, experiment_name: str) -> list[tuple[ValueEvent, ...]]:
    """Every value (events, weights and windows) that ``experiment_name`` has a funnel segment table for,
    the one made most recently first: what a planner can plan on besides the model's own outcome."""
    seen: dict[str, tuple[ValueEvent, ...]] = {}
    for run in _funnel_runs(client, experiment_name):
        events = _run_events(run)
        if events is not None and run.data.tags.get("funnel_value") == describe_value(events):
            seen.setdefault(describe_value(events), events)
    return list(seen.values())


def read_funnel_run(client, run, alias: str) -> tuple[pd.DataFrame, list[str]]:
    """The funnel segment table of ``run`` and notes naming its event models that are not ``alias`` now."""
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.read_parquet(client.download_artifacts(run.info.run_id, FUNNEL_ARTIFACT, tmp))
    notes = []
    for event, name_version in json.loads(run.data.tags.get("funnel_event_models", "{}")).items():
        name, _, version = name_version.rpartition(" v")
        try:
            current = client.get_model_version_by_alias(name, alias).version
        except Exception:  # noqa: BLE001 - no alias set: the note says so
            current = None
        if str(current) != version:
            notes.append(f"{event}: the table's model is {name} v{version}, the {alias} is "
                         f"{'none' if current is None else 'v' + str(current)}")
    return table, notes
