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
from mlflow.models import infer_signature

import uplift
from uplift.modeling.validation import ValidationReport
from uplift.tracking.plots import decile_figure, qini_figure
from uplift.tracking.pyfunc import UpliftPyfunc
from uplift.tracking.registry import Promotion, promote_if_better

__all__ = ["configure", "metric_key", "TrainingRecord", "log_training", "SEGMENTS_FILE", "SEGMENTS_ARTIFACT"]

SEGMENTS_FILE = "segments.parquet"
SEGMENTS_ARTIFACT = f"segments/{SEGMENTS_FILE}"
"""Where a run keeps its segment table (the service and ``uplift plan`` read it from the champion's run)."""

_PIP = ["causalml", "lightgbm", "scikit-learn", "pandas", "numpy", "mlflow", "pydantic", "pandera", "pyyaml"]


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


def _log_stage_choice(segments: pd.DataFrame, tmp: Path) -> None:
    """Per segment kind whose estimator chose its stages: the stages kept and how (params), each stage's
    held-out gain and the held-out slope of the deviations (metrics), and the evidence table
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
        if metrics:
            mlflow.log_metrics(metrics)
        path = tmp / f"stages_{kind}.csv"
        table.to_csv(path, index=False)
        mlflow.log_artifact(str(path), "segments")


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
                segments.to_parquet(path, index=False)  # the stage choice travels in its attrs
                mlflow.log_artifact(str(path), "segments")
                _log_stage_choice(segments, Path(tmp))
        for name, fig in (
            ("qini_cv.png", qini_figure(report.train, report.oof, f"{spec.name}: Qini curves (out-of-fold)")),
            ("qini_test.png", qini_figure(report.test, report.test_predictions, f"{spec.name}: Qini curves (test)")),
            ("uplift_by_decile_test.png", decile_figure(report.test, report.test_predictions, f"{spec.name}: uplift by decile (test)")),
        ):
            mlflow.log_figure(fig, f"plots/{name}")
            plt.close(fig)

        sample = report.test.frame[report.train.feature_names].head(50)
        pyfunc = UpliftPyfunc(report.model, report.shrinkage.lam)
        signature = infer_signature(sample, pyfunc.effects(sample), params={"shrink": False})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc,
            signature=signature,
            pip_requirements=_PIP,
        )
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
