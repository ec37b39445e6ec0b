"""The registry gate: register a trained model and move the alias only when it beats the champion."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from uplift.errors import ModelNotFoundError
from uplift.specs.model import PromotionSpec

__all__ = ["Promotion", "promote_if_better", "champion_version", "resolve_version", "load_segments"]


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


def load_segments(client: MlflowClient, version) -> pd.DataFrame:
    """The segment table logged with a model version's training run."""
    import tempfile

    from uplift.tracking.runs import SEGMENTS_ARTIFACT

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(version.run_id, SEGMENTS_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise ModelNotFoundError(
                f"model version {version.version} (run {version.run_id}) has no segment table ({SEGMENTS_ARTIFACT}): {exc}"
            ) from None
        return pd.read_parquet(path)
