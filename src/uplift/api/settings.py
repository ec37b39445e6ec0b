"""Settings of the HTTP service (``uplift serve``): environment ``UPLIFT_SERVICE_*`` over ``serve/service.yaml``.

Priority, highest first: keyword arguments, environment variables, the YAML file named by
``UPLIFT_SERVICE_CONFIG`` (default ``<project root>/serve/service.yaml`` when it exists), the defaults.
Nothing is read at import: call :func:`load_service_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from uplift.config import DEFAULT_CAMPAIGN_MODEL
from uplift.errors import SpecError

__all__ = ["ServiceSettings", "config_path", "load_service_settings"]

CONFIG_ENV = "UPLIFT_SERVICE_CONFIG"


def config_path() -> Path | None:
    """The settings file to read: ``$UPLIFT_SERVICE_CONFIG``, else ``serve/service.yaml`` if present, else None."""
    from uplift.specs import project_root

    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise SpecError(f"{CONFIG_ENV}={env}: no such settings file")
        return path
    default = project_root() / "serve" / "service.yaml"
    return default if default.is_file() else None


class ServiceSettings(BaseSettings):
    """Everything the service needs to start; invalid values fail at start-up, never per request."""

    model_config = SettingsConfigDict(env_prefix="UPLIFT_SERVICE_", frozen=True, extra="forbid")

    mode: Literal["dev", "production"] = "dev"
    """``production`` refuses to start without tokens; ``dev`` without tokens is open (with a loud warning)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=32)
    """uvicorn worker processes; each loads the model, polls the alias and caches plans on its own."""
    compute_processes: int | None = Field(default=None, ge=0, le=64)
    """Processes that run scores and new plans (``uplift.api.compute``), per uvicorn worker; default
    one per core; 0 runs them in the request's thread."""
    tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """Accepted bearer tokens; in the environment a comma-separated list."""
    workdir: Path = Path(".")
    """Folder of local state: ``mlflow.db`` (unless ``tracking_uri``) and ``plans.db`` (unless ``plans_db_url``)."""
    tracking_uri: str | None = None
    """MLflow tracking/registry URI; default ``MLFLOW_TRACKING_URI`` or ``sqlite:///<workdir>/mlflow.db``."""
    registered_model: str = Field(default=DEFAULT_CAMPAIGN_MODEL, min_length=1)
    """The campaign model to serve (``uplift-<outcome event>``); refused at start-up if it is another kind."""
    alias: str = Field(default="champion", min_length=1)
    poll_seconds: float = Field(default=30.0, gt=0, le=86_400)
    """How often the background thread checks where the alias points."""
    plans_db_url: str | None = None
    """SQLAlchemy URL of the plan store; default ``sqlite:///<workdir>/plans.db``."""
    costs: Path | None = None
    """Cost catalogue YAML; default ``<project root>/serve/costs.yaml``."""
    policy: Path | None = None
    """Planning policy YAML; default ``<project root>/serve/policy.yaml``."""
    min_segment_size: int = Field(default=50, ge=1)
    """No segment smaller than this ever leaves the service (re-checked on every response)."""
    max_score_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Larger request bodies get 413 before they are parsed."""
    plan_cache_size: int = Field(default=256, ge=0)
    """Computed plans kept per (model version, request body); 0 turns the cache off."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @field_validator("tokens")
    @classmethod
    def _no_blank_tokens(cls, tokens: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        short = [i for i, t in enumerate(tokens) if len(t.get_secret_value().strip()) < 16]
        if short:
            raise ValueError(f"tokens at position(s) {short} are shorter than 16 characters; use long random tokens")
        return tokens

    @model_validator(mode="after")
    def _production_needs_tokens(self) -> ServiceSettings:
        if self.mode == "production" and not self.tokens:
            raise ValueError(
                "mode is 'production' but no tokens are configured; set UPLIFT_SERVICE_TOKENS "
                "(comma-separated) or 'tokens' in the settings file"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_path()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    # -- derived -----------------------------------------------------------------------------
    def resolved_tracking_uri(self) -> str:
        """The MLflow URI the service loads models from."""
        from uplift.config import Settings, tracking_uri

        return self.tracking_uri or tracking_uri(Settings(workdir=self.workdir))

    def resolved_compute_processes(self) -> int:
        """``compute_processes``, with the default (one per core) filled in."""
        return self.compute_processes if self.compute_processes is not None else (os.cpu_count() or 1)

    def resolved_plans_url(self) -> str:
        """The SQLAlchemy URL of the plan store."""
        return self.plans_db_url or f"sqlite:///{(self.workdir / 'plans.db').resolve()}"

    def costs_path(self) -> Path:
        from uplift.specs import project_root

        return self.costs or project_root() / "serve" / "costs.yaml"

    def policy_path(self) -> Path:
        from uplift.specs import project_root

        return self.policy or project_root() / "serve" / "policy.yaml"


def load_service_settings(**overrides: Any) -> ServiceSettings:
    """Read the settings; :class:`SpecError` names the file/variable and field when one is invalid."""
    try:
        return ServiceSettings(**overrides)
    except ValidationError as exc:
        where = config_path() or "environment"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"service settings ({where}, UPLIFT_SERVICE_*): {problems}") from None
