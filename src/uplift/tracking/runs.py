"""Logging a validated training to MLflow: parameters, metrics, plots, the pyfunc model, the registry."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow import MlflowClient

import uplift
from uplift.modeling.validation import ValidationReport
from uplift.tracking.plots import decile_figure, qini_figure
from uplift.specs.segments import SegmentSpec
from uplift.tracking.modellog import log_pyfunc
from uplift.tracking.registry import Promotion, promote_if_better

__all__ = ["configure", "metric_key", "TrainingRecord", "log_training", "SEGMENTS_FILE", "SEGMENTS_ARTIFACT"]

SEGMENTS_FILE = "segments.parquet"
SEGMENTS_ARTIFACT = f"segments/{SEGMENTS_FILE}"
"""Where a run keeps its segment table (the service and ``uplift plan`` read it from the champion's run)."""

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
    promotion: Promotion
    metrics: dict[str, float]


def _per_arm(prefix: str, frame: pd.DataFrame) -> dict[str, float]:
    out = {}
    for arm, row in frame.iterrows():
        for col in ("qini", "auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30"):
            if col in row and pd.notna(row[col]):
                out[metric_key(prefix, col) + "." + metric_key(str(arm))] = float(row[col])
    return out


def log_training(
    report: ValidationReport,
    *,
    experiment_id: str,
    spec_text: str,
    table_digest: str,
    data_source: str,
    registered_model: str,
    alias: str,
    extra_metrics: dict[str, float] | None = None,
    extra_tables: dict[str, pd.DataFrame] | None = None,
    segments: pd.DataFrame | None = None,
    segment_spec: SegmentSpec | None = None,
) -> TrainingRecord:
    """One MLflow run for one validated model; registers it and applies the promotion gate."""
    spec = report.spec
    metrics = {**report.summary_metrics(), **(extra_metrics or {})}
    client = MlflowClient()
    with mlflow.start_run(experiment_id=experiment_id, run_name=spec.name) as run:
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
                "n_features": len(report.train.features),
                "cv_folds": spec.cv.folds,
                "test_share": spec.cv.test_share,
                "seed": spec.seed,
                "lightgbm": json.dumps(spec.lightgbm, sort_keys=True)[:500],
                "data_source": data_source[:500],
            }
        )
        mlflow.set_tags({"training_table_digest": table_digest, "uplift_version": uplift.__version__})
        mlflow.log_metrics(metrics)
        mlflow.log_metrics(_per_arm("cv", report.cv_metrics))
        mlflow.log_metrics(_per_arm("test", report.test_metrics))
        mlflow.log_text(spec_text, "spec/model.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            tables = {
                "cv_metrics": report.cv_metrics,
                "test_metrics": report.test_metrics,
                "policies": report.policies,
                "shrinkage": report.shrinkage.table,
                "mean_effects": report.model.mean_effects_.to_frame(),
                **(extra_tables or {}),
            }
            for name, frame in tables.items():
                path = Path(tmp) / f"{name}.csv"
                frame.to_csv(path)
                mlflow.log_artifact(str(path), "tables")
            if segments is not None:
                path = Path(tmp) / SEGMENTS_FILE
                segments.to_parquet(path, index=False)
                mlflow.log_artifact(str(path), "segments")
        for name, fig in (
            ("qini_cv.png", qini_figure(report.train, report.oof, f"{spec.name}: Qini curves (out-of-fold)")),
            ("qini_test.png", qini_figure(report.test, report.test_predictions, f"{spec.name}: Qini curves (test)")),
            ("uplift_by_decile_test.png", decile_figure(report.test, report.test_predictions, f"{spec.name}: uplift by decile (test)")),
        ):
            mlflow.log_figure(fig, f"plots/{name}")
            plt.close(fig)

        info = log_pyfunc(report, segments=segments, segment_spec=segment_spec)
        version = mlflow.register_model(info.model_uri, registered_model)
        promotion = promote_if_better(
            client,
            name=registered_model,
            version=int(version.version),
            alias=alias,
            metrics=metrics,
            gate=spec.promotion,
        )
        mlflow.set_tags(
            {
                "registered_model": registered_model,
                "model_version": str(version.version),
                "promoted": str(promotion.promoted).lower(),
                "promotion_reason": promotion.reason,
            }
        )
        client.set_model_version_tag(registered_model, str(version.version), "promotion", promotion.reason)
    return TrainingRecord(run.info.run_id, f"models:/{registered_model}/{version.version}", promotion, metrics)
