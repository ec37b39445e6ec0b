"""Runtime settings (pydantic-settings), read from ``UPLIFT_*`` environment variables.

Nothing happens at import: call :func:`get_settings` where the settings are needed.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "tracking_uri", "DEFAULT_CAMPAIGN_MODEL"]

DEFAULT_CAMPAIGN_MODEL = "uplift-registration"
"""The campaign model of the default feature set (outcome ``registration``), served unless settings say otherwise."""


class Settings(BaseSettings):
    """Settings shared by the CLI, the batch jobs and the service."""

    model_config = SettingsConfigDict(env_prefix="UPLIFT_", frozen=True, extra="ignore")

    workdir: Path = Path(".")
    """Folder where local state lives (MLflow database and artifacts) by default."""
    registered_model: str = DEFAULT_CAMPAIGN_MODEL
    """The campaign model that ``uplift plan``, ``segments`` and ``score`` serve. Training does not read it:
    a model registers under the name of its use (``uplift-<outcome event>``, ``uplift-<mapping>-<outcome>``)."""
    alias: str = "champion"
    """Registry alias that marks the model in service (and that the training gate moves)."""
    experiment_name: str = "uplift"
    """MLflow experiment that runs are logged to."""
    disclosure: Path | None = None
    """Disclosure policy YAML (``UPLIFT_DISCLOSURE``); default ``<project root>/serve/disclosure.yaml``."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached)."""
    return Settings()


def tracking_uri(settings: Settings | None = None) -> str:
    """MLflow tracking URI: ``MLFLOW_TRACKING_URI`` if set, else a SQLite file in the work folder."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    settings = settings or get_settings()
    db = (settings.workdir / "mlflow.db").resolve()
    return f"sqlite:///{db}"
