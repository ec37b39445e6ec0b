"""The training job, step by step: inputs -> training table -> validated models -> MLflow.

The CLI and the benchmarks call these functions; they take paths and specs, never read the
environment (settings are passed in).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from uplift.config import Settings, tracking_uri
from uplift.data.inputs import load_inputs, locate_inputs
from uplift.data.trainingtable import TrainingTable
from uplift.economics import campaign_economics
from uplift.errors import SpecError
from uplift.features import build_training_table
from uplift.features.library import resolve
from uplift.features.outofcore import write_training_table
from uplift.modeling.truthcheck import effect_recovery, policy_truth, true_outcome_probabilities
from uplift.modeling.validation import ValidationReport, policy_recommendations
from uplift.savedtraining import Validated, validate_on
from uplift.segments import build_segment_table, planner_table, released_segments, truth_segment_effects
from uplift.segments.composition import PriorityGroups, with_composition
from uplift.specs import load_spec, project_root
from uplift.specs.disclosure import DisclosurePolicy, load_disclosure_policy
from uplift.specs.features import FeatureSetSpec
from uplift.specs.model import ModelSpec
from uplift.specs.region import RegionSpec
from uplift.specs.segments import SegmentSpec
from uplift.tracking.uses import ModelUse, campaign_use

__all__ = ["load_feature_set", "load_priority_groups", "table_from_folder", "TrainedModel", "train_and_log",
           "truth_report", "default_planning"]

Progress = Callable[[str], None]


def _declaration(name_or_path: str) -> Path:
    """``features/<name>.yaml`` for a bare name, the path itself for a ``.yaml`` / ``.yml`` path."""
    path = Path(name_or_path)
    return path if path.suffix in (".yaml", ".yml") else project_root() / "features" / f"{name_or_path}.yaml"


def load_feature_set(name_or_path: str) -> FeatureSetSpec:
    """A feature set by name (``features/<name>.yaml``) or by path."""
    return load_spec(_declaration(name_or_path), FeatureSetSpec)


def table_from_folder(folder: str | Path, feature_set: FeatureSetSpec) -> TrainingTable:
    """Validate the three inputs in ``folder`` and build the point-in-time training table.

    Built out of core (:func:`uplift.features.outofcore.write_training_table`, into a temporary file) when every
    feature has an SQL definition, else in memory (:func:`uplift.features.build_training_table`); the two give
    the same table.
    """
    paths = locate_inputs(folder)
    if all(resolve(name, feature_set).sql is not None for name in feature_set.features):
        with tempfile.TemporaryDirectory(prefix=".uplift-table-") as tmp:
            write_training_table(paths, feature_set, Path(tmp) / "training.parquet")
            table = TrainingTable.load(Path(tmp) / "training.parquet")
        return replace(table, source=str(Path(folder)))
    inputs = load_inputs(paths["audience"], paths["exposures"], paths["enrolments"], control=feature_set.control_arm,
                         attributes=feature_set.attributes)
    return build_training_table(
        inputs.audience, inputs.exposures, inputs.enrolments, feature_set, source=str(Path(folder))
    )


def load_segment_spec(name_or_path: str = "segments") -> SegmentSpec:
    """The segment spec by name (``features/<name>.yaml``) or by path."""
    return load_spec(_declaration(name_or_path), SegmentSpec)


def load_priority_groups(path: str | Path | None = None, *, region: RegionSpec | None = None) -> PriorityGroups | None:
    """The priority groups of ``serve/groups.yaml`` (or ``path``), with the neighbourhoods' deprivation
    scores their rules need: ``region``'s (the region the data come from, e.g. a simulated one) or else
    the groups file's ``deprivation_from`` (a region declaration relative to the project root); None when
    no path is given and the project has no ``serve/groups.yaml``."""
    from uplift.specs.groups import GroupSpec

    default = project_root() / "serve" / "groups.yaml"
    if path is None and not default.exists():
        return None
    path = Path(path) if path is not None else default
    spec = load_spec(path, GroupSpec)
    deprivation = None
    if region is not None:
        deprivation = _deprivation_of(region)
    elif spec.deprivation_from is not None:
        region_path = Path(spec.deprivation_from)
        region_path = region_path if region_path.is_absolute() else project_root() / region_path
        try:
            region = load_spec(region_path, RegionSpec)
        except SpecError as exc:
            raise SpecError(f"{path}: deprivation_from: expected a region declaration with its neighbourhoods' "
                            f"deprivation; {exc}") from None
        deprivation = _deprivation_of(region)
    return PriorityGroups(spec=spec, deprivation=deprivation, source=str(path))


def _deprivation_of(region: RegionSpec) -> dict[str, float]:
    """Each neighbourhood (postcode) of ``region`` -> its deprivation score."""
    return {n.postcode: n.deprivation for m in region.municipalities for n in m.neighbourhoods}


def segment_truth(report: ValidationReport, segments: pd.DataFrame, truth: pd.DataFrame, event: str,
                  spec: SegmentSpec) -> pd.DataFrame:
    """Segment table joined with the true segment effects (simulator only), for calibration checks; pass the
    planner's table (:func:`~uplift.segments.release.planner_table`) for a table that may be logged."""
    table, _ = report.out_of_sample()
    true_p = true_outcome_probabilities(table.frame[["person_id", "wave"]], truth, table.arms, event)
    return segments.merge(truth_segment_effects(table, true_p, spec), on=["segment", "arm"], how="left")


def truth_report(report: ValidationReport, truth: pd.DataFrame, event: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-arm effect recovery and per-policy true value / regret on the test rows."""
    test = report.test
    true_p = true_outcome_probabilities(test.frame[["person_id", "wave"]], truth, test.arms, event)
    recovery = effect_recovery(report.test_predictions, true_p, test.control)
    policies = policy_recommendations(report.test_predictions, report.model, report.shrinkage.lam, test.arms)
    return recovery, policy_truth(policies, true_p)


def _columns(table: TrainingTable) -> set[str]:
    cols = set(table.frame.columns)
    return cols | ({"age_band"} if "age" in cols else set())


@dataclass(frozen=True)
class TrainedModel:
    spec: ModelSpec
    report: ValidationReport
    run_id: str
    registered_model: str
    version: int
    promoted: bool
    reason: str
    segments: pd.DataFrame
    truth_recovery: pd.DataFrame | None
    truth_policies: pd.DataFrame | None


def default_planning(segment_spec: SegmentSpec | None = None):
    """What a campaign model's gate plans with: the segment spec and ``serve/costs.yaml`` + ``serve/policy.yaml``."""
    from uplift.specs.planning import CostCatalogue, PlanningPolicy
    from uplift.tracking.evidence import PlanningInputs

    root = project_root()
    return PlanningInputs(
        segments=segment_spec or load_segment_spec(),
        costs=load_spec(root / "serve" / "costs.yaml", CostCatalogue),
        policy=load_spec(root / "serve" / "policy.yaml", PlanningPolicy),
    )


def _segment_tables(report: ValidationReport, table: TrainingTable, spec: SegmentSpec,
                    groups: PriorityGroups | None = None):
    """The served segment table (every row out of sample) and the gate's (training rows only), each with
    its segments' composition of the priority groups (``groups``, default ``serve/groups.yaml``); None
    without the dimensions."""
    if not set(spec.dimensions) <= _columns(table):
        return None, None
    folds, heldout = report.out_of_sample_folds()
    rows, predictions = report.out_of_sample()
    served = build_segment_table(rows, predictions, spec, folds=folds, heldout_fold=heldout)
    gate = build_segment_table(report.train, report.oof, spec, folds=report.folds, heldout_fold=None)
    groups = groups if groups is not None else load_priority_groups()
    if groups is not None:
        served = with_composition(served, rows.frame, spec, groups)
        gate = with_composition(gate, report.train.frame, spec, groups)
    return served, gate


def training_places(report: ValidationReport, segments: pd.DataFrame | None, spec: SegmentSpec,
                    disclosure: DisclosurePolicy, groups: PriorityGroups | None = None) -> pd.DataFrame | None:
    """The places of the served table's targetable segments in the rows it was built from
    (:func:`uplift.places.places_table`: people per segment and print unit, with each priority group's share),
    print units of at least the segment spec's ``min_size`` and the disclosure threshold, as ``uplift plan
    --audience`` counts them. None without segments, targetable ones, or the rows' neighbourhoods."""
    from uplift.places import places_table

    if segments is None:
        return None
    rows = report.out_of_sample()[0].frame
    targetable = segments.loc[segments["kind"] == "targetable", "segment"].astype(str)
    if targetable.empty or not {"person_id", "municipality", "neighbourhood"} <= set(rows.columns):
        return None
    groups = groups if groups is not None else load_priority_groups()
    return places_table(rows, targetable.unique(), spec, min_size=max(spec.min_size, disclosure.threshold),
                        groups=groups, source="training rows")


def with_campaign_economics(table: TrainingTable, use: ModelUse) -> TrainingTable:
    """A campaign table with the economics of ``serve/`` when ``serve/policy.yaml`` declares a value per
    conversion (the contact costs of ``serve/costs.yaml``); other tables as they are."""
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    if use.kind != "campaign" or table.economics is not None:
        return table
    serve = project_root() / "serve"
    value = load_spec(serve / "policy.yaml", PlanningPolicy).value_per_conversion
    if value is None:
        return table
    costs = load_spec(serve / "costs.yaml", CostCatalogue)
    return replace(table, economics=campaign_economics(costs, value, table.arms, table.control))


def train_and_log(
    spec_path: Path,
    table: TrainingTable | str | Path,
    *,
    settings: Settings,
    data_source: str,
    truth: pd.DataFrame | None = None,
    outcome_event: str = "registration",
    use: ModelUse | None = None,
    segment_spec: SegmentSpec | None = None,
    disclosure: DisclosurePolicy | None = None,
    groups: PriorityGroups | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
) -> TrainedModel:
    """Validate one model spec on ``table``, log it to MLflow, register it under its use's name, apply the gate.

    ``table``: a training table, or the path of one saved as Parquet (``uplift features`` writes them), which is
    read for the spec with memory bounded by its feature matrix (:func:`uplift.savedtraining.validate_on`; the
    same run as from the table in memory). ``use`` says what the model is for and so its registered name
    (default: the campaign model of ``outcome_event``, ``uplift-<event>``); ``settings`` gives the store, the
    experiment and the alias. The run keeps the planner's segment table and the released one, made under
    ``disclosure`` (default: the policy file named by ``settings.disclosure``, else ``serve/disclosure.yaml``); the
    returned :attr:`TrainedModel.segments` is the full, internal table. The segment tables get each segment's
    share of every priority group (``groups``, default ``serve/groups.yaml`` when the project has one;
    :func:`uplift.segments.composition.with_composition`), and the run keeps the targetable segments' places
    (:func:`training_places`, internal) for the service to plan flyers per print unit. ``tags`` go on the run and the
    registered version.
    """
    spec = load_spec(spec_path, ModelSpec)
    use = use or campaign_use(outcome_event)
    segment_spec = segment_spec or load_segment_spec()
    disclosure = disclosure or load_disclosure_policy(settings.disclosure)
    done = validate_on(spec, table, segment_spec=segment_spec, prepare=lambda t: with_campaign_economics(t, use),
                       progress=progress)
    if progress:
        progress("segment effects")
    segments, gate_segments = (_segment_tables(done.report, done.table, segment_spec, groups)
                               if use.kind == "campaign" else (None, None))
    places = training_places(done.report, segments, segment_spec, disclosure, groups)
    checks = _truth_checks(done.report, truth, outcome_event, segments, segment_spec)
    if progress:
        progress("register and judge against the champion")
    run = _RunContext(settings, data_source, use, segment_spec, disclosure, tags)
    record = _log_run(done, spec_path, run, checks, segments, gate_segments, places)
    return TrainedModel(
        spec=spec,
        report=done.logged,
        run_id=record.run_id,
        registered_model=record.registered_model,
        version=record.version,
        promoted=record.decision.promoted,
        reason=record.decision.reason,
        segments=segments,
        truth_recovery=checks.recovery,
        truth_policies=checks.policies,
    )


@dataclass(frozen=True)
class _TruthChecks:
    """The simulator's truth against the model (evaluation only): metrics and tables the run logs."""

    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame]
    recovery: pd.DataFrame | None = None
    policies: pd.DataFrame | None = None


def _truth_checks(report: ValidationReport, truth: pd.DataFrame | None, outcome_event: str,
                  segments: pd.DataFrame | None, segment_spec: SegmentSpec) -> _TruthChecks:
    """Effect recovery, policy regret and (with segments) the segment intervals' coverage against ``truth``."""
    if truth is None:
        return _TruthChecks({}, {})
    recovery, policies = truth_report(report, truth, outcome_event)
    metrics = {"true_mean_corr": float(recovery["true_corr"].mean())}
    for name in ("targeted", "argmax", "best_single_arm"):
        metrics[f"true_regret_{name}"] = float(policies.loc[name, "regret"])
    tables = {"truth_recovery": recovery, "truth_policies": policies}
    if segments is not None:
        st = segment_truth(report, planner_table(segments), truth, outcome_event, segment_spec)
        covered = (st["true_effect"] >= st["lo"]) & (st["true_effect"] <= st["hi"])
        metrics["true_segment_interval_coverage"] = float(covered.mean())
        metrics["true_segment_corr"] = float(st[["effect", "true_effect"]].corr().iloc[0, 1])
        tables["truth_segments"] = st
    return _TruthChecks(metrics, tables, recovery, policies)


@dataclass(frozen=True)
class _RunContext:
    """Where and how a training run is logged."""

    settings: Settings
    data_source: str
    use: ModelUse
    segment_spec: SegmentSpec
    disclosure: DisclosurePolicy
    tags: dict[str, str] | None


def _log_run(done: Validated, spec_path: Path, run: _RunContext, checks: _TruthChecks,
             segments: pd.DataFrame | None, gate_segments: pd.DataFrame | None, places: pd.DataFrame | None = None):
    """Log the run to MLflow, register the model and judge it against the champion."""
    from uplift.tracking.runs import configure, log_training

    uri = tracking_uri(run.settings)
    artifacts = run.settings.workdir / "mlartifacts" if uri.startswith("sqlite:") else None
    experiment_id = configure(uri, run.settings.experiment_name, artifacts)
    return log_training(
        done.logged,
        experiment_id=experiment_id,
        spec_text=Path(spec_path).read_text(),
        table_digest=done.digest,
        data_source=run.data_source,
        use=run.use,
        alias=run.settings.alias,
        planning=default_planning(run.segment_spec) if gate_segments is not None else None,
        extra_metrics=checks.metrics,
        extra_tables=checks.tables,
        segments=planner_table(segments) if segments is not None else None,
        released_segments=released_segments(segments, run.disclosure) if segments is not None else None,
        disclosure=run.disclosure,
        gate_segments=planner_table(gate_segments) if gate_segments is not None else None,
        segment_spec=run.segment_spec,
        tags=run.tags,
        places=places,
    )
