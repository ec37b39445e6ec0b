"""The registry: one registered model per use, the evidence gate on its alias, moves by hand, what serves.

Names come from what a model is for (:mod:`uplift.tracking.uses`): a campaign model never competes
with an experiment model. A new version takes the alias only past the gate of
:mod:`uplift.tracking.evidence`; the decision, its reason, both figures with their intervals, the data
digest and the split are recorded as tags on the version (its description holds the reason).
``uplift promote`` moves an alias by hand and records that it was manual, and why.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from uplift.data.trainingtable import TrainingTable
from uplift.errors import DataError, InfeasiblePlanError, ModelNotFoundError, SchemaError, SpecError
from uplift.specs.disclosure import DisclosurePolicy
from uplift.specs.model import PromotionSpec
from uplift.specs.planning import CostCatalogue
from uplift.tracking.evidence import (
    Decision,
    PlanningInputs,
    Split,
    decide,
    figure,
    plan_evidence,
    policy_evidence,
    shared_heldout,
)
from uplift.tracking.uses import ModelUse

__all__ = [
    "SEGMENTS_ARTIFACT",
    "GATE_SEGMENTS_ARTIFACT",
    "PLACES_ARTIFACT",
    "SERVED_COLUMNS",
    "DIGEST_TAG",
    "Challenger",
    "champion_version",
    "resolve_version",
    "load_segments",
    "load_released_segments",
    "load_places",
    "release_policy",
    "registered_use",
    "ensure_registered_model",
    "judge",
    "record_version",
    "record_decision",
    "promote_by_hand",
    "model_versions",
    "campaign_version",
    "unservable_reason",
]

SEGMENTS_ARTIFACT = "segments/segments.parquet"
"""Where a run keeps its segment table (the service and ``uplift plan`` read it from the champion's run)."""
GATE_SEGMENTS_ARTIFACT = "gate/segments.parquet"
"""The segment table built from the run's training rows only: what the gate plans from (campaign models)."""
PLACES_ARTIFACT = "segments/places.parquet"
"""The run's places table (:func:`uplift.places.places_table`): people per (targetable segment, print unit) of its
rows, print units of at least the disclosure threshold. Internal, like the planner's segment table: the service
plans flyers per print unit from it and never releases it."""
DIGEST_TAG = "data.digest"


# -- finding models -----------------------------------------------------------------------------
def _store_models(client: MlflowClient) -> list:
    try:
        return list(client.search_registered_models(max_results=1000))
    except MlflowException:
        return []


def _missing_model(client: MlflowClient, name: str) -> str:
    """Why ``name`` cannot be found, with what the store has instead."""
    models = _store_models(client)
    if not models:
        return (f"no model {name!r}: nothing is registered in this store yet "
                "(train one with `uplift run` or `uplift train`)")
    parts = []
    for m in models:
        use = ModelUse.from_tags(m.tags)
        parts.append(f"{m.name!r} ({use.describe() if use else 'registered before models were named by use'})")
    legacy = [m.name for m in models if ModelUse.from_tags(m.tags) is None]
    hint = (f". {legacy[0]!r} may mix campaign and experiment versions: serve it with "
            f"UPLIFT_REGISTERED_MODEL={legacy[0]} "
            f"(the service: registered_model), after `uplift promote {legacy[0]} VERSION --reason "
            "TEXT` if its alias is on "
            f"an experiment version; or train {name!r} with `uplift run` / `uplift train`") if legacy else ""
    return f"no model {name!r} in this store; it has {', '.join(parts)}{hint}"


def _registered(client: MlflowClient, name: str):
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFoundError(f"cannot read registered model {name!r}: {exc.message}") from None
        raise ModelNotFoundError(_missing_model(client, name)) from None


def champion_version(client: MlflowClient, name: str, alias: str):
    """The ModelVersion behind ``name@alias``; :class:`ModelNotFoundError` (saying what exists) if there is none."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        _registered(client, name)  # a missing model says so, with what the store has instead
        raise ModelNotFoundError(f"no model version behind {name}@{alias}: {exc.message}") from None


def resolve_version(client: MlflowClient, name: str, ref: str):
    """A ModelVersion from an alias (``champion``) or a version number (``"3"``)."""
    if str(ref).isdigit():
        try:
            return client.get_model_version(name, str(ref))
        except MlflowException as exc:
            _registered(client, name)
            raise ModelNotFoundError(f"no version {ref} of model {name!r}: {exc.message}") from None
    return champion_version(client, name, ref)


def _artifact(client: MlflowClient, version, path: str, what: str, why: str = "") -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(version.run_id, path, tmp)
        except (MlflowException, OSError, TypeError) as exc:
            raise ModelNotFoundError(
                f"model {version.name} v{version.version} (run {version.run_id}) has no {what} ({path}){why}: {exc}"
            ) from None
        return pd.read_parquet(local)


def load_segments(client: MlflowClient, version) -> pd.DataFrame:
    """The planner's segment table logged with a model version's training run (a table logged with raw
    figures of the cells' own people comes back without them: :func:`uplift.segments.release.planner_table`)."""
    from uplift.segments.release import planner_table

    return planner_table(_artifact(client, version, SEGMENTS_ARTIFACT, "segment table",
                                   "; plan, segments, score and the service need one: they serve campaign models"))


def load_places(client: MlflowClient, version) -> pd.DataFrame | None:
    """The places table logged with a model version's training run (:data:`PLACES_ARTIFACT`); None when the run
    logged none (a model trained before runs logged it, or on rows without neighbourhoods)."""
    folder = PLACES_ARTIFACT.rsplit("/", 1)[0]
    try:
        files = {a.path for a in client.list_artifacts(version.run_id, folder)} if version.run_id else set()
    except (MlflowException, OSError):
        return None
    if PLACES_ARTIFACT not in files:
        return None
    return _artifact(client, version, PLACES_ARTIFACT, "places table")


def release_policy(client: MlflowClient, version) -> DisclosurePolicy | None:
    """The disclosure policy a version's released tables were made under (None: the run recorded none)."""
    from uplift.tracking.runs import DISCLOSURE_PARAMS

    params = client.get_run(version.run_id).data.params if version.run_id else {}
    if not all(p in params for p in DISCLOSURE_PARAMS):
        return None
    threshold, base = (int(params[p]) for p in DISCLOSURE_PARAMS)
    return DisclosurePolicy(threshold=threshold, rounding_base=base)


def load_released_segments(client: MlflowClient, version, policy: DisclosurePolicy,
                           planner: pd.DataFrame | None = None) -> pd.DataFrame:
    """The segment table a version may release under ``policy``.

    The run's released table when it was made under a policy that satisfies ``policy`` (its counts
    re-rounded to ``policy``'s base where that is coarser); otherwise the model estimates of the
    planner's table (``planner``, else :func:`load_segments`) with every raw figure withheld, saying why.
    """
    from uplift.segments.release import rerounded, without_raw_figures
    from uplift.tracking.runs import RELEASED_ARTIFACT

    made = release_policy(client, version)
    if made is not None and made.satisfies(policy):
        released = _artifact(client, version, RELEASED_ARTIFACT, "released segment table")
        return rerounded(released, policy) if policy.rounding_base > made.rounding_base else released
    planner = planner if planner is not None else load_segments(client, version)
    if made is None:
        why = f"model version {version.version} was logged without a released segment table; retrain it to release them"
    else:
        why = (f"model version {version.version} released them for at least {made.threshold} people, "
               f"fewer than the {policy.threshold} required now; retrain it to release them")
    return without_raw_figures(planner, policy, why)


def registered_use(client: MlflowClient, name: str) -> ModelUse | None:
    """The use recorded on registered model ``name`` (None if it has none); raises if there is no such model."""
    return ModelUse.from_tags(_registered(client, name).tags)


def campaign_version(client: MlflowClient, name: str, ref: str):
    """Version ``ref`` (alias or number) of ``name``, refused unless ``name`` is (or may be) a campaign model.

    Raises
    ------
    ModelNotFoundError
        No such model (the message lists what the store has), version or alias, or ``name`` is an
        experiment model.
    """
    use = registered_use(client, name)
    if use is not None and use.kind != "campaign":
        campaign = [m.name for m in _store_models(client)
                    if (u := ModelUse.from_tags(m.tags)) is not None and u.kind == "campaign"]
        raise ModelNotFoundError(
            f"{name!r} is an {use.describe()}: it has no segment table, and plan, segments, score and the service "
            f"serve campaign models" + (f" ({', '.join(map(repr, campaign))} in this store)" if campaign else "")
        )
    return resolve_version(client, name, ref)


SERVED_COLUMNS = ("segment", "kind", "size", "arm", "message", "channel", "effect", "effect_sd", "lo", "hi")
"""The columns of a segment table the service and ``uplift plan`` need (the planner's table has them)."""


def unservable_reason(client: MlflowClient, name: str, alias: str, costs: CostCatalogue | None = None) -> str | None:
    """Why ``name@alias`` cannot serve plans, or None.

    It cannot when ``name`` is an experiment model, when the version behind the alias has no segment
    table (or one without the columns plans need), or when the cost catalogue cannot price its arms.
    None also when the registry cannot tell yet (no such model or alias, unreachable): a service then
    waits for the alias (503) instead of refusing to start.
    """
    try:
        registered = client.get_registered_model(name)
        mv = client.get_model_version_by_alias(name, alias)
        files = {a.path
                 for a in client.list_artifacts(mv.run_id, SEGMENTS_ARTIFACT.rsplit("/", 1)[0])} if mv.run_id else set()
    except (MlflowException, OSError):
        return None
    use = ModelUse.from_tags(registered.tags)
    if use is not None and use.kind != "campaign":
        return (f"{name!r} is an {use.describe()}: the service, plan and segments serve campaign "
                "models (with a segment table)")
    if SEGMENTS_ARTIFACT not in files:
        return (f"{name} v{mv.version} (behind @{alias}) has no segment table ({SEGMENTS_ARTIFACT}), so it is not a "
                f"campaign model; move the alias to one with `uplift promote {name} VERSION --reason TEXT`")
    try:
        segments = load_segments(client, mv)
    except ModelNotFoundError:
        return None
    missing = [c for c in SERVED_COLUMNS if c not in segments.columns]
    if missing:
        return f"{name} v{mv.version} (behind @{alias}): its segment table lacks column(s) {missing}"
    if costs is not None:
        from uplift.allocation import check_effects

        try:
            check_effects(segments[segments["kind"] == "targetable"], costs, source=f"{name} v{mv.version}'s segments")
        except (DataError, SchemaError) as exc:
            return f"{name} v{mv.version} (behind @{alias}) cannot be planned with the cost catalogue: {exc}"
    return None


def ensure_registered_model(client: MlflowClient, use: ModelUse) -> str:
    """The registered model of ``use`` (created with its use tags if new); refuses a name taken by another use."""
    name = use.registered_name
    try:
        found = client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, tags=use.tags(), description=f"uplift {use.describe()}")
        return name
    recorded = ModelUse.from_tags(found.tags)
    if recorded is None:
        for key, value in use.tags().items():
            client.set_registered_model_tag(name, key, value)
    elif recorded != use:
        raise SpecError(f"registered model {name!r} is for another use ({recorded.describe()}) than this "
                        f"{use.describe()}; rename the mapping or its outcome")
    return name


# -- the gate ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Challenger:
    """A newly registered version and what the gate needs of it."""

    version: int
    use: ModelUse
    split: Split
    digest: str
    heldout: TrainingTable
    model: object  # uplift.tracking.pyfunc.UpliftPyfunc
    gate_segments: pd.DataFrame | None = None


def _holder(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _champion_material(client: MlflowClient, name: str, current, use: ModelUse):
    if use.kind == "campaign":
        return _artifact(client, current, GATE_SEGMENTS_ARTIFACT, "segment table of its training rows for the gate")
    from uplift.tracking.storedmodel import load_pyfunc

    try:
        return load_pyfunc(f"models:/{name}/{current.version}").unwrap_python_model()
    except (MlflowException, OSError) as exc:
        raise ModelNotFoundError(f"its model could not be loaded: {exc}") from None


def _evidence(client, name, challenger: Challenger, current, promotion: PromotionSpec, planning: PlanningInputs | None):
    """The evidence against ``current`` (None: the challenger alone); raises when the two cannot be compared."""
    split = Split.from_tags(current.tags) if current is not None else None
    digest = current.tags.get(DIGEST_TAG) if current is not None else None
    if current is not None and (split is None or digest is None):
        raise ModelNotFoundError("it carries no recorded held-out split and data digest (registered before the "
                                 "evidence gate); compare the two by hand and move the alias with `uplift promote`")
    mask, note = shared_heldout(challenger.heldout, challenger.split, split)
    rows = challenger.heldout.subset(np.flatnonzero(mask))
    same = current is None or (digest == challenger.digest and split == challenger.split)
    if current is None:
        where = f"on {note}"
    elif digest == challenger.digest:
        where = f"on the same data, {note}"
    else:
        where = f"on other data than the champion's (digest {digest[:12]}, this {challenger.digest[:12]}), {note}"
    champion = _champion_material(client, name, current, challenger.use) if current is not None else None
    common = dict(confidence=promotion.confidence, same_data=same, rows_note=where)
    if challenger.use.kind == "campaign":
        if planning is None or challenger.gate_segments is None:
            raise DataError("a campaign model is judged by its plan, and this one has no segment table of its "
                            "training rows (the table lacks the segment dimensions)")
        return plan_evidence(rows, challenger.gate_segments, champion, planning=planning, budget=promotion.plan_budget,
                             **common)
    return policy_evidence(rows, challenger.model, champion, **common)


_NOT_COMPARABLE = (DataError, SchemaError, ModelNotFoundError, InfeasiblePlanError)


def judge(client: MlflowClient, *, name: str, alias: str, challenger: Challenger, promotion: PromotionSpec,
          planning: PlanningInputs | None = None) -> tuple[Decision, int | None]:
    """The gate's decision on ``challenger`` against ``name@alias`` and the holder's version (None if none).

    Nothing is moved or recorded here (see :func:`record_decision`).
    """
    current = _holder(client, name, alias)
    if current is None:
        try:
            return decide(_evidence(client, name, challenger, None, promotion, planning),
                          margin=0.0, alias=alias, champion=None), None
        except _NOT_COMPARABLE as exc:
            return Decision(True, f"no {alias} yet (its own figure could not be measured: {exc})", None), None
    held = int(current.version)
    margin = promotion.margin_conversions if challenger.use.kind == "campaign" else promotion.margin_per_1000
    try:
        evidence = _evidence(client, name, challenger, current, promotion, planning)
    except _NOT_COMPARABLE as exc:
        theirs = current.tags.get(DIGEST_TAG)
        data = (f" (trained on other data: digest {theirs[:12]}, this {challenger.digest[:12]})"
                if theirs and theirs != challenger.digest else "")
        reason = (f"not compared with {alias} v{held}{data} on the same people, so not promoted: {exc}; "
                  f"{alias} stays at v{held}")
        return Decision(False, reason, None), held
    return decide(evidence, margin=margin, alias=alias, champion=f"v{held}"), held


def record_version(client: MlflowClient, name: str, version: int, *, digest: str, split: Split, spec_name: str) -> None:
    """Tags every version carries: the training table's digest, the held-out split, the model spec."""
    for key, value in {DIGEST_TAG: digest, **split.tags(), "uplift.spec": spec_name}.items():
        client.set_model_version_tag(name, str(version), key, value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_decision(client: MlflowClient, name: str, version: int, decision: Decision, *, against: int | None) -> None:
    """The gate's decision on the version: tags ``gate.*`` and the reason as the description."""
    tags = {"gate.decision": "promoted" if decision.promoted else "not promoted", "gate.by": "gate",
            "gate.reason": decision.reason[:4900], "gate.at": _now(),
            "gate.against": f"v{against}" if against is not None else "none"}
    e = decision.evidence
    if e is not None:
        tags.update({"gate.metric": e.metric, "gate.unit": e.unit, "gate.challenger": figure(e.challenger),
                     "gate.rows": str(e.rows), "gate.confidence": f"{e.confidence:g}"})
        if e.notes:
            tags["gate.notes"] = "; ".join(e.notes)[:4900]
        if e.champion is not None and e.gain is not None:
            tags.update({"gate.champion": figure(e.champion), "gate.gain": figure(e.gain)})
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    client.update_model_version(name, str(version), description=decision.reason[:4900])


def promote_by_hand(client: MlflowClient, name: str, version: str, *, alias: str, reason: str) -> int | None:
    """Move ``name@alias`` to ``version`` and record it as manual with ``reason``; returns the version it replaced.

    A campaign model's (or an older unnamed model's) version must have a segment table, or plan and the
    service could not serve it.

    Raises
    ------
    SpecError
        ``reason`` is blank.
    ModelNotFoundError
        No such model or version, or a campaign version without a segment table.
    """
    if not reason.strip():
        raise SpecError("promote: --reason must say why the alias moves (it is recorded on the version)")
    use = registered_use(client, name)
    mv = resolve_version(client, name, str(version))
    if use is None or use.kind == "campaign":
        load_segments(client, mv)
    current = _holder(client, name, alias)
    client.set_registered_model_alias(name, alias, str(mv.version))
    replaced = int(current.version) if current is not None else None
    tags = {"gate.decision": "manual", "gate.by": "manual", "gate.reason": reason.strip()[:4900], "gate.at": _now(),
            "gate.against": f"v{replaced}" if replaced is not None else "none", "gate.alias": alias}
    for key, value in tags.items():
        client.set_model_version_tag(name, str(mv.version), key, value)
    client.update_model_version(name, str(mv.version), description=f"{alias} by hand: {reason.strip()}"[:4900])
    return replaced


def model_versions(client: MlflowClient, name: str | None = None, *, last: int = 10) -> pd.DataFrame:
    """One row per version (the newest ``last`` per model): model, use, version, aliases, created, decision, reason.

    Raises
    ------
    ModelNotFoundError
        ``name`` is given and not registered.
    """
    models = [_registered(client, name)] if name else _store_models(client)
    rows = []
    for m in sorted(models, key=lambda m: m.name):
        use = ModelUse.from_tags(m.tags)
        aliases: dict[str, list[str]] = {}
        for alias, v in (m.aliases or {}).items():
            aliases.setdefault(str(v), []).append(alias)
        versions = sorted(client.search_model_versions(f"name='{m.name}'"), key=lambda v: -int(v.version))[:last]
        for v in versions:
            tags = v.tags or {}
            rows.append({
                "model": m.name, "use": use.describe() if use else "registered before names by use",
                "version": int(v.version),
                "aliases": ",".join(sorted(aliases.get(str(v.version), []))),
                "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M"),
                "spec": tags.get("uplift.spec", ""), "decision": tags.get("gate.decision", ""),
                "reason": tags.get("gate.reason", tags.get("promotion", "")), "digest": tags.get(DIGEST_TAG, "")[:12],
            })
    return pd.DataFrame(rows, columns=["model", "use", "version", "aliases", "created", "spec", "decision", "reason",
                                       "digest"])
