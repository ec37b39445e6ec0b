"""Logging the pyfunc so that it loads anywhere: its code, pinned requirements, signature and input example.

The model directory carries the ``uplift`` package (MLflow ``code_paths``) and lists, in its
``requirements.txt``, every distribution the model needs at the version training ran with
(:func:`uplift.tracking.environment.runtime_requirements` of ``MODEL_RUNTIME``, plus causalml for
causalml's learners). A fresh virtual environment built from those lines alone loads and predicts
(``tests/test_model_env.py`` builds one).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

import uplift
from uplift.data.contracts import AUDIENCE
from uplift.data.trainingtable import PROPENSITY_PREFIX
from uplift.data.vocabulary import split_arm
from uplift.errors import SchemaError, SpecError
from uplift.modeling.learnerkinds import LEARNER_KINDS, learner_kind
from uplift.modeling.validation import ValidationReport
from uplift.scoring.history import ENROLMENTS_COLUMN, EXPOSURES_COLUMN, empty_history, nest_history
from uplift.scoring.labels import SegmentLabeler
from uplift.scoring.score import model_feature_set, score_columns
from uplift.specs.segments import SegmentSpec
from uplift.tracking.environment import MODEL_RUNTIME, runtime_requirements
from uplift.tracking.pyfunc import AS_OF_PARAM, UpliftPyfunc

__all__ = ["CAUSALML_LEARNERS", "bundle_pyfunc", "model_requirements", "model_signature",
           "input_example", "log_pyfunc"]

CAUSALML_LEARNERS = tuple(name for name, kind in LEARNER_KINDS.items() if kind.causalml)
"""Learners whose fitted state holds causalml objects (the model then needs causalml to unpickle)."""

_AUDIENCE_TYPES = {"person_id": "string", "age": "long", "migration_background": "boolean", "has_children": "boolean"}
_EXAMPLE_PEOPLE = 5


def bundle_pyfunc(
    report: ValidationReport, *, segments: pd.DataFrame | None, segment_spec: SegmentSpec | None
) -> UpliftPyfunc:
    """The pyfunc with what scoring needs: the model's feature set (when it makes the model's columns) and labels."""
    from uplift.pipeline import load_feature_set, load_segment_spec

    rule = {"economics": report.train.economics, "price": report.rule.price if report.rule else 1.0}
    pyfunc = UpliftPyfunc(report.model, report.shrinkage.lam, **rule)
    if segments is None:  # an experiment model (a table read from an experiment CSV: its columns are the features)
        return pyfunc
    try:
        feature_set = model_feature_set(load_feature_set(report.spec.feature_set), pyfunc)
    except (SchemaError, SpecError):
        return pyfunc
    labeler = SegmentLabeler(segments, segment_spec or load_segment_spec())
    return UpliftPyfunc(report.model, report.shrinkage.lam, feature_set=feature_set, labeler=labeler, **rule)


def model_requirements(pyfunc: UpliftPyfunc) -> list[str]:
    """Pinned pip requirements of the logged model (the installed versions of everything it needs)."""
    extra = ("causalml",) if learner_kind(pyfunc.model.spec).causalml else ()
    return runtime_requirements(MODEL_RUNTIME + extra)


def model_signature(pyfunc: UpliftPyfunc) -> ModelSignature:
    """What the model takes and returns; ``as_of`` as a parameter."""
    out = [ColSpec("string" if c == "best_arm" else "double", c) for c in score_columns(pyfunc)]
    params = None
    if pyfunc.scorer is None:
        inputs = [ColSpec("double" if f.kind == "numeric" else "string", f.name) for f in pyfunc.model.features]
        inputs += [ColSpec("double", c) for c in pyfunc.cost_columns]
    else:
        inputs = [ColSpec(_AUDIENCE_TYPES.get(name, "string"), name, required=column.required)
                  for name, column in AUDIENCE.columns.items()]  # optional attributes may be absent
        inputs += [ColSpec("string", EXPOSURES_COLUMN, required=False),
                   ColSpec("string", ENROLMENTS_COLUMN, required=False)]
        out = [ColSpec("string", "person_id"), *out, ColSpec("string", "segment"), ColSpec("string", "persona")]
        params = ParamSchema([ParamSpec(AS_OF_PARAM, "string", "")])
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(out), params=params)


def input_example(
    report: ValidationReport, pyfunc: UpliftPyfunc
) -> tuple[pd.DataFrame, dict[str, str]] | pd.DataFrame | None:
    """A few held-out people as the model takes them: audience columns and their exposures of earlier waves.

    The audience attributes are the table's attribute features and a person's exposures are the
    table's rows of their earlier waves; the as-of time is the person's last wave. None when the
    table does not hold every audience column.
    """
    frame = report.test.frame
    if pyfunc.scorer is None:
        numeric = {f.name: "float64" for f in pyfunc.model.features if f.kind == "numeric"}
        numeric.update({c: "float64" for c in pyfunc.cost_columns})
        return frame[pyfunc.feature_names + pyfunc.cost_columns].head(_EXAMPLE_PEOPLE).astype(numeric)
    required = [name for name, column in AUDIENCE.columns.items() if column.required]
    if not all(c in frame.columns for c in required):
        return None
    given = [c for c in AUDIENCE.columns if c in frame.columns]
    last = frame.sort_values(["person_id", "wave"]).groupby("person_id", sort=False).tail(1)
    repeat = last[last["wave"] > frame["wave"].min()].head(_EXAMPLE_PEOPLE)
    people = (repeat if len(repeat) else last.head(_EXAMPLE_PEOPLE)).reset_index(drop=True)
    types = {"age": "int64", "migration_background": bool, "has_children": bool}
    audience = people[given].astype({c: t for c, t in types.items() if c in given})
    earlier = frame[frame["person_id"].isin(people["person_id"]) & (frame["wave"] < people["wave"].max())]
    parts = [split_arm(a) for a in earlier["arm"]]
    exposures = pd.DataFrame({
        "person_id": earlier["person_id"].to_numpy(), "wave": earlier["wave"].to_numpy(),
        "arm": earlier["arm"].to_numpy(),
        "message": [m for m, _ in parts], "channel": [c for _, c in parts],
        "assigned_at": earlier["assigned_at"].to_numpy(),
        "assignment_probability": [earlier.at[i, PROPENSITY_PREFIX + a]
                                   for i, a in zip(earlier.index, earlier["arm"], strict=True)],
        "cost_eur": earlier["cost_eur"].to_numpy(),
    })
    example = nest_history(audience, exposures, empty_history()[1])
    as_of = pd.Timestamp(people["assigned_at"].max()).isoformat()
    return example, {AS_OF_PARAM: as_of}


def _code_copy(folder: Path) -> Path:
    """The installed ``uplift`` package without byte code, for ``code_paths``."""
    target = folder / "uplift"
    shutil.copytree(Path(uplift.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def log_pyfunc(report: ValidationReport, pyfunc: UpliftPyfunc):
    """Log ``pyfunc`` (:func:`bundle_pyfunc` of ``report``) to the active run as ``model``; returns MLflow's
    ``ModelInfo``."""
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc,
            signature=model_signature(pyfunc),
            input_example=input_example(report, pyfunc),
            pip_requirements=model_requirements(pyfunc),
            code_paths=[str(_code_copy(Path(tmp)))],
        )
