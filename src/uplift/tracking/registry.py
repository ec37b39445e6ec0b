"""The registry gate: register a trained model and move the alias only when it beats the champion."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from uplift.errors import ModelNotFoundError
from uplift.specs.disclosure import DisclosurePolicy
from uplift.specs.model import PromotionSpec

__all__ = ["Promotion", "promote_if_better", "champion_version", "resolve_version", "load_segments",
           "load_released_segments", "release_policy"]


@dataclass(frozen=True)
class Promotion:
    """What the gate decided and why."""

    version: int
    promoted: bool
    reason: str
    champion_version: int | None


def champion_version(client: MlflowClient, name: str, alias: str):
    """The ModelVersion behind ``name@alias``; :class:`ModelNotFoundError` if there is none."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise ModelNotFoundError(f"no model version behind {name}@{alias}: {exc.message}") from None


def promote_if_better(
    client: MlflowClient,
    *,
    name: str,
    version: int,
    alias: str,
    metrics: dict[str, float],
    gate: PromotionSpec,
) -> Promotion:
    """Move ``alias`` to ``version`` if its ``gate.metric`` beats the current holder's by ``min_improvement``."""
    if gate.metric not in metrics:
        raise ModelNotFoundError(f"promotion metric {gate.metric!r} was not measured; measured: {sorted(metrics)}")
    new = metrics[gate.metric]
    try:
        current = champion_version(client, name, alias)
    except ModelNotFoundError:
        current = None
    if current is None:
        client.set_registered_model_alias(name, alias, str(version))
        return Promotion(version, True, f"no {alias} yet: version {version} ({gate.metric}={new:.6g}) becomes {alias}", None)
    old = client.get_run(current.run_id).data.metrics.get(gate.metric) if current.run_id else None
    cur_v = int(current.version)
    if old is None:
        client.set_registered_model_alias(name, alias, str(version))
        return Promotion(version, True, f"{alias} v{cur_v} has no {gate.metric}; version {version} replaces it", cur_v)
    gain = (new - old) if gate.greater_is_better else (old - new)
    if gain > gate.min_improvement:
        client.set_registered_model_alias(name, alias, str(version))
        return Promotion(
            version, True,
            f"{gate.metric}={new:.6g} beats {alias} v{cur_v} ({old:.6g}) by {gain:.3g} > {gate.min_improvement:g}",
            cur_v,
        )
    return Promotion(
        version, False,
        f"{gate.metric}={new:.6g} does not beat {alias} v{cur_v} ({old:.6g}) by more than {gate.min_improvement:g}; "
        f"{alias} stays at v{cur_v}",
        cur_v,
    )


def resolve_version(client: MlflowClient, name: str, ref: str):
    """A ModelVersion from an alias (``champion``) or a version number (``"3"``)."""
    if ref.isdigit():
        try:
            return client.get_model_version(name, ref)
        except MlflowException as exc:
            raise ModelNotFoundError(f"no version {ref} of model {name!r}: {exc.message}") from None
    return champion_version(client, name, ref)


def _artifact(client: MlflowClient, version, artifact: str) -> pd.DataFrame:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(version.run_id, artifact, tmp)
        except (MlflowException, OSError) as exc:
            raise ModelNotFoundError(
                f"model version {version.version} (run {version.run_id}) has no {artifact}: {exc}"
            ) from None
        return pd.read_parquet(path)


def load_segments(client: MlflowClient, version) -> pd.DataFrame:
    """The planner's segment table logged with a model version's training run (a table logged with raw
    figures of the cells' own people comes back without them: :func:`uplift.segments.release.planner_table`)."""
    from uplift.segments.release import planner_table
    from uplift.tracking.runs import SEGMENTS_ARTIFACT

    return planner_table(_artifact(client, version, SEGMENTS_ARTIFACT))


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
        released = _artifact(client, version, RELEASED_ARTIFACT)
        return rerounded(released, policy) if policy.rounding_base > made.rounding_base else released
    planner = planner if planner is not None else load_segments(client, version)
    if made is None:
        why = f"model version {version.version} was logged without a released segment table; retrain it to release them"
    else:
        why = (f"model version {version.version} released them for at least {made.threshold} people, "
               f"fewer than the {policy.threshold} required now; retrain it to release them")
    return without_raw_figures(planner, policy, why)
