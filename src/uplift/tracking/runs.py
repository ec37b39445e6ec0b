"""Logging a validated training to MLflow: parameters, metrics, plots, the pyfunc model, the registry."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

import uplift
from uplift.disclosure import Figure, Release, disclose
from uplift.modeling.validation import ValidationReport
from uplift.quiet import registry_notes_dropped
from uplift.specs.disclosure import DisclosurePolicy
from uplift.specs.segments import SegmentSpec
from uplift.tracking.evidence import Decision, PlanningInputs, Split
from uplift.tracking.modellog import bundle_pyfunc, log_pyfunc
from uplift.tracking.plots import cost_curve_figure, decile_figure, qini_figure
from uplift.tracking.pyfunc import UpliftPyfunc
from uplift.tracking.registry import (
    GATE_SEGMENTS_ARTIFACT,
    PLACES_ARTIFACT,
    SEGMENTS_ARTIFACT,
    Challenger,
    ensure_registered_model,
    judge,
    record_decision,
    record_version,
)
from uplift.tracking.uses import ModelUse

__all__ = [
    "DATA_UNTIL_TAG",
    "DISCLOSURE_PARAMS",
    "RELEASED_ARTIFACT",
    "RELEASED_FILE",
    "SEGMENTS_ARTIFACT",
    "SEGMENTS_FILE",
    "TrainingRecord",
    "configure",
    "data_until_tag",
    "log_training",
    "metric_key",
    "released_metrics",
]

SEGMENTS_FILE = SEGMENTS_ARTIFACT.rsplit("/", 1)[-1]
"""The planner's segment table (the service and ``uplift plan`` plan from the champion's) has no raw
figures of the cells' own people (:func:`uplift.segments.release.planner_table`)."""

RELEASED_FILE = "released.parquet"
RELEASED_ARTIFACT = f"segments/{RELEASED_FILE}"
"""Where a run keeps its released segment table (:func:`uplift.segments.release.released_segments`),
made under the disclosure policy recorded in the run's :data:`DISCLOSURE_PARAMS`."""

DISCLOSURE_PARAMS = ("disclosure_threshold", "disclosure_rounding_base")
"""Run parameters: the disclosure policy the run's released tables were made under."""

def configure(tracking_uri: str, experiment: str, artifact_root: Path | None = None) -> str:
    """Point MLflow at ``tracking_uri`` and make sure ``experiment`` exists; returns its id."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # register where we track (never in a registry left over from elsewhere)
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    location = artifact_root.resolve().as_uri() if artifact_root is not None else None
    return client.create_experiment(experiment, artifact_location=location)


def metric_key(*parts: str) -> str:
    """An MLflow-safe metric name ("@" and other characters MLflow refuses become ".")."""
    return re.sub(r"[^0-9A-Za-z_\-. /]", ".", "_".join(parts))


@dataclass(frozen=True)
class TrainingRecord:
    run_id: str
    model_uri: str
    registered_model: str
    version: int
    decision: Decision
    metrics: dict[str, float]


def _per_arm(prefix: str, frame: pd.DataFrame) -> dict[str, float]:
    out = {}
    for arm, row in frame.iterrows():
        for col in ("qini", "auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30"):
            if col in row and pd.notna(row[col]):
                out[metric_key(prefix, col) + "." + metric_key(str(arm))] = float(row[col])
    return out


def released_metrics(frame: pd.DataFrame, policy: DisclosurePolicy) -> pd.DataFrame:
    """A table of metrics (one row per arm or policy, the index its label) as it may be logged: its ``n_*``
    row counts rounded (suppressed below the threshold) and every other number of a row withheld where a
    count it rests on is suppressed. A table without ``n_*`` columns is returned as it is."""
    counts = tuple(c for c in frame.columns if str(c).startswith("n_"))
    if not counts:
        return frame
    rows = frame.rename_axis(frame.index.name or "arm").reset_index()
    label = str(rows.columns[0])
    numeric = tuple(c for c in rows.columns
                    if c not in counts and c != label and pd.api.types.is_numeric_dtype(rows[c]))
    release = Release(people=counts, figures=(Figure(columns=numeric, rests_on=counts),) if numeric else (),
                      keep=tuple(c for c in rows.columns if c not in counts and c not in numeric))
    return disclose(rows, release, policy, source="metrics table").set_index(label)


DATA_UNTIL_TAG = "data_until"
"""Run tag: the last assignment time in the training data (ISO 8601), when the rows carry one."""


def data_until_tag(*frames: pd.DataFrame) -> dict[str, str]:
    """``{DATA_UNTIL_TAG: last assigned_at}`` over ``frames`` (training and held-out rows), or nothing when
    the rows have no assignment time (e.g. an experiment CSV without dates)."""
    times = [pd.to_datetime(f["assigned_at"], utc=True).max() for f in frames if "assigned_at" in f.columns and len(f)]
    times = [t for t in times if not pd.isna(t)]
    return {DATA_UNTIL_TAG: max(times).isoformat()} if times else {}


def _log_params(report: ValidationReport, data_source: str, disclosure: DisclosurePolicy) -> None:
    spec = report.spec
    mlflow.log_params(
        {
            "model_name": spec.name,
            "learner": spec.learner,
            "feature_set": spec.feature_set,
            "outcome": report.train.outcome,
            "arms": ",".join(report.train.treatment_arms),
            "control": report.train.control,
            "n_train_rows": len(report.train.frame),
            "n_test_rows": len(report.test.frame),
            "n_features": len(report.model.features),
            "cv_folds": spec.cv.folds,
            "test_share": spec.cv.test_share,
            "split_seed": spec.cv.seed,
            "seed": spec.seed,
            "lightgbm": json.dumps(spec.lightgbm, sort_keys=True)[:500],
            "data_source": data_source[:500],
            "disclosure_threshold": disclosure.threshold,
            "disclosure_rounding_base": disclosure.rounding_base,
            **_economics_params(report),
        }
    )


def _economics_params(report: ValidationReport) -> dict[str, str | float]:
    """The value of a conversion, the contact costs and the budget the rule was chosen with (none: no params)."""
    econ = report.train.economics
    if econ is None:
        return {}
    return {"economics.value": econ.value, "economics.costs": json.dumps(dict(econ.costs), sort_keys=True)[:500],
            "economics.budget_per_person": "none" if econ.budget_per_person is None else econ.budget_per_person}


def _log_tables(report: ValidationReport, extra: dict[str, pd.DataFrame], disclosure: DisclosurePolicy,
                segment_tables: dict[str, pd.DataFrame | None]) -> None:
    """The metrics tables as they may be released, and the segment tables by artifact path."""
    with tempfile.TemporaryDirectory() as tmp:
        tables = {
            "cv_metrics": report.cv_metrics,
            "test_metrics": report.test_metrics,
            "policies": report.policies,
            "shrinkage": report.shrinkage.table,
            "mean_effects": report.model.mean_effects_.to_frame(),
            **_net_tables(report),
            **extra,
        }
        for name, frame in tables.items():
            path = Path(tmp) / f"{name}.csv"
            released_metrics(frame, disclosure).to_csv(path)
            mlflow.log_artifact(str(path), "tables")
        for artifact, frame in segment_tables.items():
            if frame is not None:
                folder, file = artifact.rsplit("/", 1)
                path = Path(tmp) / folder / file
                path.parent.mkdir(exist_ok=True, parents=True)
                frame.to_parquet(path, index=False)
                mlflow.log_artifact(str(path), folder)


def _net_tables(report: ValidationReport) -> dict[str, pd.DataFrame]:
    """With economics: the held-out net value of every policy, the out-of-fold net value per shrinkage factor and
    the held-out cost curve."""
    out = {}
    if report.net_policies is not None:
        out["net_policies"] = report.net_policies
    if report.rule is not None:
        out["net_rule"] = report.rule.table
    if report.cost_curve is not None:
        out["cost_curve"] = report.cost_curve.table.set_index("budget")
    return out


def _log_plots(report: ValidationReport) -> None:
    name = report.spec.name
    figures = [
        ("qini_cv.png", qini_figure(report.train, report.oof, f"{name}: Qini curves (out-of-fold)")),
        ("qini_test.png", qini_figure(report.test, report.test_predictions, f"{name}: Qini curves (test)")),
        ("uplift_by_decile_test.png",
         decile_figure(report.test, report.test_predictions, f"{name}: uplift by decile (test)")),
    ]
    if report.cost_curve is not None:
        figures.append(("cost_curve_test.png", cost_curve_figure(report.cost_curve, f"{name}: net value as the "
                                                                                    f"budget grows (test)")))
    for file, fig in figures:
        mlflow.log_figure(fig, f"plots/{file}")
        plt.close(fig)


def _log_model(report: ValidationReport, segments: pd.DataFrame | None,
               segment_spec: SegmentSpec | None) -> tuple[UpliftPyfunc, str]:
    """The pyfunc (with the feature set and segment labels scoring needs) logged as ``model``, and its URI."""
    pyfunc = bundle_pyfunc(report, segments=segments, segment_spec=segment_spec)
    return pyfunc, log_pyfunc(report, pyfunc).model_uri


def _log_stage_choice(segments: pd.DataFrame) -> None:
    """Per segment kind whose estimator chose its stages: the stages kept and how (params), each stage's
    held-out gain, the held-out slope of the deviations and the ratio plans' promises are calibrated by
    (metrics), and the evidence table
    (``segments/stages_<kind>.csv``)."""
    from uplift.segments import stage_table

    for kind, record in (segments.attrs.get("stages") or {}).items():
        mlflow.log_params({f"segments.{kind}.stages_kept": ",".join(record["kept"]) or "none",
                           f"segments.{kind}.stages_by": record["by"]})
        table = stage_table(segments, kind=kind)
        metrics = {f"segments.{kind}.stage_gain.{r.stage}": float(r.gain) for r in table.itertuples()
                   if pd.notna(r.gain)}
        if record.get("slope") is not None and np.isfinite(record["slope"]):
            metrics[f"segments.{kind}.heldout_slope"] = float(record["slope"])
        promise = record.get("promise") or {}
        for key in ("ratio", "ratio_se"):
            if promise.get(key) is not None and np.isfinite(promise[key]):
                metrics[f"segments.{kind}.promise_{key}"] = float(promise[key])
        if metrics:
            mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"stages_{kind}.csv"
            table.to_csv(path, index=False)
            mlflow.log_artifact(str(path), "segments")


def log_training(
    report: ValidationReport,
    *,
    experiment_id: str,
    spec_text: str,
    table_digest: str,
    data_source: str,
    use: ModelUse,
    alias: str,
    planning: PlanningInputs | None = None,
    extra_metrics: dict[str, float] | None = None,
    extra_tables: dict[str, pd.DataFrame] | None = None,
    segments: pd.DataFrame | None = None,
    gate_segments: pd.DataFrame | None = None,
    released_segments: pd.DataFrame | None = None,
    disclosure: DisclosurePolicy | None = None,
    segment_spec: SegmentSpec | None = None,
    tags: dict[str, str] | None = None,
    places: pd.DataFrame | None = None,
) -> TrainingRecord:
    """One MLflow run for one validated model; registers it under its use's name and applies the gate.

    ``tags`` go on the run and on the registered version (e.g. a value model's event, weight and window).

    ``segments`` is the planner's segment table (its segment labels go into the model, with
    ``segment_spec``) and ``released_segments`` the released one
    (:mod:`uplift.segments.release`), made under ``disclosure`` (default: the default policy), which
    the run records (:data:`DISCLOSURE_PARAMS`) and applies to its tables of metrics too
    (:func:`released_metrics`). ``gate_segments``: the planner's segment table of the training rows only
    (campaign models), logged for this and later gates; ``planning``: what the gate plans with
    (campaign models). ``places``: the targetable segments' people per print unit
    (:func:`uplift.places.places_table`), logged as :data:`~uplift.tracking.registry.PLACES_ARTIFACT` for the
    service to plan flyers per print unit; internal, never released.
    """
    disclosure = disclosure or DisclosurePolicy()
    spec = report.spec
    metrics = {**report.summary_metrics(), **(extra_metrics or {})}
    client = MlflowClient()
    with mlflow.start_run(experiment_id=experiment_id, run_name=spec.name) as run:
        _log_params(report, data_source, disclosure)
        mlflow.set_tags({"training_table_digest": table_digest, "uplift_version": uplift.__version__,
                         **data_until_tag(report.train.frame, report.test.frame), **(tags or {})})
        mlflow.log_metrics(metrics)
        mlflow.log_metrics(_per_arm("cv", report.cv_metrics))
        mlflow.log_metrics(_per_arm("test", report.test_metrics))
        mlflow.log_text(spec_text, "spec/model.yaml")
        _log_tables(report, extra_tables or {}, disclosure, {
            SEGMENTS_ARTIFACT: segments, RELEASED_ARTIFACT: released_segments, GATE_SEGMENTS_ARTIFACT: gate_segments,
            PLACES_ARTIFACT: places,
        })
        if segments is not None:
            _log_stage_choice(segments)
        _log_plots(report)
        pyfunc, model_uri = _log_model(report, segments, segment_spec)

        name = ensure_registered_model(client, use)
        with registry_notes_dropped():  # the product reports the version and the alias decision itself
            version = int(mlflow.register_model(model_uri, name).version)
        split = Split(spec.cv.seed, spec.cv.test_share)
        record_version(client, name, version, digest=table_digest, split=split, spec_name=spec.name)
        for key, value in (tags or {}).items():
            client.set_model_version_tag(name, str(version), key, value)
        challenger = Challenger(version=version, use=use, split=split, digest=table_digest, heldout=report.test,
                                model=pyfunc, gate_segments=gate_segments)
        decision, against = judge(client, name=name, alias=alias, challenger=challenger, promotion=spec.promotion,
                                  planning=planning)
        if decision.promoted:
            client.set_registered_model_alias(name, alias, str(version))
        record_decision(client, name, version, decision, against=against)
        mlflow.set_tags(
            {
                "registered_model": name,
                "model_version": str(version),
                "promoted": str(decision.promoted).lower(),
                "promotion_reason": decision.reason[:4900],
            }
        )
    return TrainingRecord(run.info.run_id, f"models:/{name}/{version}", name, version, decision, metrics)
