"""MLflow records of the jobs around a wave: batch scoring, experiment design, experiment analysis."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pandas as pd
from mlflow import MlflowClient

from uplift.config import Settings, tracking_uri
from uplift.tracking.registry import campaign_version, load_segments
from uplift.tracking.runs import configure, metric_key
from uplift.tracking.storedmodel import load_pyfunc

if TYPE_CHECKING:
    from uplift.design.analysis import Analysis
    from uplift.scoring.job import ScoreSummary

__all__ = [
    "SCORING_EXPERIMENT",
    "EXPERIMENTS_EXPERIMENT",
    "LoadedModel",
    "load_model",
    "log_scoring",
    "DesignInputs",
    "log_design",
    "AnalysisInputs",
    "analysis_params",
    "analysis_metrics",
    "log_analysis",
    "log_plan_design",
    "log_plan_outcome",
]

SCORING_EXPERIMENT = "uplift-scoring"
EXPERIMENTS_EXPERIMENT = "uplift-experiments"


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version ready to score: the pyfunc's Python model and its segment table."""

    name: str
    version: str
    run_id: str
    model: "UpliftPyfunc"  # noqa: F821 - uplift.tracking.pyfunc.UpliftPyfunc
    segments: pd.DataFrame


def _experiment(settings: Settings, name: str) -> str:
    uri = tracking_uri(settings)
    artifacts = settings.workdir / "mlartifacts" if uri.startswith("sqlite:") else None
    return configure(uri, name, artifacts)


def load_model(settings: Settings, ref: str = "champion") -> LoadedModel:
    """The campaign model behind ``<registered_model>@ref`` (or version ``ref``) with its segment table.

    Raises
    ------
    ModelNotFoundError
        No such model (the message says what the store has), alias or version, an experiment model,
        or its run has no segment table.
    """
    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    version = campaign_version(client, settings.registered_model, ref)
    segments = load_segments(client, version)
    pyfunc = load_pyfunc(f"models:/{settings.registered_model}/{version.version}").unwrap_python_model()
    return LoadedModel(settings.registered_model, str(version.version), version.run_id, pyfunc, segments)


def _log_frames(frames: dict[str, pd.DataFrame], folder: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in frames.items():
            path = Path(tmp) / name
            frame.to_csv(path, index=False)
            mlflow.log_artifact(str(path), folder)


def log_scoring(
    settings: Settings,
    *,
    model: LoadedModel,
    summary: ScoreSummary,
    digest: str,
    as_of: pd.Timestamp,
    chunk_rows: int,
) -> str:
    """One run in experiment ``uplift-scoring`` for a scoring job (``summary``: what it read, wrote and
    rejected, and how long it took; ``digest``: the audience file's sha256); returns its id."""
    experiment_id = _experiment(settings, SCORING_EXPERIMENT)
    rows, seconds = summary.rows_scored + summary.rows_rejected, summary.seconds
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"score {summary.audience.name}") as run:
        mlflow.log_params(
            {
                "model_name": model.name,
                "model_version": model.version,
                "model_run_id": model.run_id,
                "input_path": str(summary.audience)[:500],
                "input_sha256": digest,
                "as_of": as_of.isoformat(),
                "chunk_rows": chunk_rows,
            }
        )
        mlflow.log_metrics(
            {
                "rows_scored": summary.rows_scored,
                "rows_rejected": summary.rows_rejected,
                "seconds": seconds,
                "rows_per_second": rows / seconds if seconds > 0 else 0.0,
            }
        )
        tags = {"output_path": str(summary.out)[:5000]}
        if summary.rejects is not None:
            tags["rejects_path"] = str(summary.rejects)[:5000]
        mlflow.set_tags(tags)
    return run.info.run_id


@dataclass(frozen=True)
class DesignInputs:
    """What a run for a designed wave records whichever way the wave was designed: the experiment spec (file and
    name), the wave and its salt, the audience (path and sha256 digest) and where the design was written."""

    spec_path: Path
    spec_name: str
    wave: int
    salt: str
    audience: Path
    digest: str
    out: Path

    def log(self, settings: Settings, *, run_name: str, params: dict[str, object], metrics: dict[str, float],
            frames: dict[str, pd.DataFrame]) -> str:
        """One run in experiment ``uplift-experiments`` with these params, metrics and tables besides the shared
        ones; returns its id."""
        experiment_id = _experiment(settings, EXPERIMENTS_EXPERIMENT)
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            mlflow.log_params({"job": "design", "experiment": self.spec_name, "wave": self.wave, "salt": self.salt,
                               "audience_path": str(self.audience)[:500], "audience_sha256": self.digest, **params})
            mlflow.log_metrics(metrics)
            mlflow.set_tags({"job": "design", "output_path": str(self.out)[:5000]})
            mlflow.log_text(Path(self.spec_path).read_text(), "spec/experiment.yaml")
            _log_frames(frames, "tables")
        return run.info.run_id


def log_design(
    settings: Settings,
    *,
    inputs: DesignInputs,
    base_rate: float,
    shares: pd.Series,
    power: pd.DataFrame,
    balance: pd.DataFrame,
    plan: Path | None,
    people: int | None = None,
) -> str:
    """One run in experiment ``uplift-experiments`` for a design; returns its id.

    ``power`` and ``balance`` are logged as given: pass them as released
    (:mod:`uplift.design.release`); ``people`` is the audience's released count (None: suppressed).
    """
    metrics = {"n_total_needed_max": float(power["n_total_needed"].max()),
               "power_available_min": float(power["power_available"].min()),
               "mde_available_max": float(power["mde_available"].max())}
    metrics = {k: v for k, v in metrics.items() if v == v}  # a withheld figure is not logged
    if people is not None:
        metrics["people"] = float(people)
    metrics.update({metric_key("share", str(a)): float(s) for a, s in shares.items()})
    return inputs.log(
        settings, run_name=f"design {inputs.spec_name}",
        params={"base_rate": base_rate, "plan": str(plan)[:500] if plan is not None else ""},
        metrics=metrics,
        frames={"power.csv": power, "stratum_balance.csv": balance, "shares.csv": shares.rename("share").reset_index()},
    )


def log_plan_design(
    settings: Settings,
    *,
    inputs: DesignInputs,
    plan: Path,
    check: pd.DataFrame,
    figures: dict[str, float],
) -> str:
    """One run in experiment ``uplift-experiments`` for a wave designed from a plan; returns its id.

    ``check`` (planned against designed contacts and spend per cell) is logged as a table; ``figures`` are
    released totals (people, spend, rounding), logged as metrics.
    """
    return inputs.log(
        settings, run_name=f"design {inputs.spec_name} from plan",
        params={"plan": str(plan)[:500], "design": "from_plan"},
        metrics={k: float(v) for k, v in figures.items() if v == v},
        frames={"plan_check.csv": check},
    )


@dataclass(frozen=True)
class AnalysisInputs:
    """What an analysed wave was read from: the experiment spec (file and name), the wave, its exposures and
    funnel events, and the plan whose expected effects it was judged against (None: the spec's)."""

    spec_path: Path
    spec_name: str
    wave: int
    exposures: Path
    enrolments: Path
    plan: Path | None = None

    def params(self) -> dict[str, object]:
        """The run's params naming these inputs (paths cut to MLflow's 500 characters)."""
        return {
            "job": "analyze",
            "experiment": self.spec_name,
            "wave": self.wave,
            "exposures_path": str(self.exposures)[:500],
            "enrolments_path": str(self.enrolments)[:500],
            "plan": str(self.plan)[:500] if self.plan is not None else "",
        }


_ARM_METRICS = ("effect", "ci_low", "ci_high", "estimate", "estimate_ci_low", "estimate_ci_high", "adjusted_p_value",
                "detectable_effect")


def log_analysis(
    settings: Settings,
    *,
    inputs: AnalysisInputs,
    analysis: Analysis,
    out: Path,
    summary: str,
    people: int | None = None,
) -> str:
    """One run in experiment ``uplift-experiments`` for an analysis; returns its id.

    Params: the inputs, covariates, the multiplicity adjustment and each family's size
    (:func:`analysis_params`). Metrics (:func:`analysis_metrics`): people, the SRM check, per family
    the number of arms better / worse / too small to detect their target, and per arm the exact
    ``effect, ci_low, ci_high``, the verdict's ``estimate``, ``estimate_ci_low, estimate_ci_high``,
    ``adjusted_p_value`` and ``detectable_effect``.

    ``analysis`` and ``summary`` are logged as given: pass them as released
    (:func:`uplift.design.release.released_analysis`); ``people`` is the wave's released count of
    people (None: suppressed). Withheld figures are not logged as metrics.
    """
    experiment_id = _experiment(settings, EXPERIMENTS_EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"analyze {inputs.spec_name}") as run:
        mlflow.log_params(analysis_params(inputs, analysis))
        mlflow.log_metrics(analysis_metrics(analysis, people))
        mlflow.set_tags({"job": "analyze", "output_path": str(out)[:5000]})
        mlflow.log_text(Path(inputs.spec_path).read_text(), "spec/experiment.yaml")
        mlflow.log_text(summary, "summary.txt")
        frames = {"arms.csv": analysis.arms}
        if analysis.segments is not None:
            frames["segments.csv"] = analysis.segments
        _log_frames(frames, "tables")
    return run.info.run_id


def analysis_params(inputs: AnalysisInputs, analysis: Analysis) -> dict[str, object]:
    """An analysis run's params: its inputs, the covariates, the adjustment, the level and each family's size."""
    return {
        **inputs.params(),
        "covariates": ",".join(analysis.covariates),
        "multiplicity": analysis.inference.multiplicity,
        "alpha": analysis.inference.alpha,
        **{f"family_size_{name}": family.size for name, family in analysis.families.items()},
    }


def analysis_metrics(analysis: Analysis, people: int | None = None) -> dict[str, float]:
    """An analysis run's metrics: people (if released), the SRM check, each family's verdict counts, and per arm
    the figures of :data:`_ARM_METRICS` that are not withheld (keys from :func:`~uplift.tracking.runs.metric_key`)."""
    metrics: dict[str, float] = {} if people is None else {"people": float(people)}
    if analysis.srm is not None:
        metrics["srm_p_value"] = float(analysis.srm.p_value)
        metrics["srm_flagged"] = float(bool(analysis.srm.flagged))
    for name, table in (("arms", analysis.arms), ("segments", analysis.segments)):
        if table is None:
            continue
        metrics[f"{name}_better"] = float((table["verdict"] == "better").sum())
        metrics[f"{name}_worse"] = float((table["verdict"] == "worse").sum())
        metrics[f"{name}_too_small"] = float((table["too_small"] == True).sum())  # noqa: E712 (withheld: null)
    for row in analysis.arms.itertuples():
        for col in _ARM_METRICS:
            value = getattr(row, col)
            if pd.notna(value):
                metrics[metric_key(col, str(row.arm))] = float(value)
    return metrics


def log_plan_outcome(run_id: str, *, outcome, model: str, plan: Path) -> None:
    """Add the plan's promises against the wave (released: :func:`uplift.design.release.released_outcome`) to the
    analysis run ``run_id``: the model version that made the plan, the totals and the calibration as metrics,
    every table, and the calibration plot."""
    from uplift.tracking.plots import calibration_figure

    cal = outcome.calibration
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({"plan_model": model or "unknown", "plan_cells": len(outcome.cells)})
        total = outcome.total.iloc[0]
        metrics = {f"plan_{k}": float(total[k]) for k in ("promised", "promised_lo", "promised_hi", "realised",
                                                          "realised_lo", "realised_hi")}
        metrics.update({f"calibration_{k}": float(v) for k, v in cal.as_dict().items() if k not in ("level",)})
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        _log_frames({"plan_cells.csv": outcome.cells, "plan_messages.csv": outcome.messages,
                     "plan_groups.csv": outcome.groups, "plan_total.csv": outcome.total}, "plan")
        fig = calibration_figure(outcome.cells, cal, f"calibration over the planned cells ({model or 'model unknown'})")
        mlflow.log_figure(fig, "plan/calibration.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
