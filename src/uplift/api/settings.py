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

from uplift.api.retention import PlanRetention
from uplift.api.tokens import MIN_BITS_PER_CHAR, MIN_CHARS, REPEAT_RUN, split_entry, token_weaknesses
from uplift.config import DEFAULT_CAMPAIGN_MODEL
from uplift.errors import SpecError
from uplift.specs.disclosure import DisclosurePolicy

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

    model_config = SettingsConfigDict(env_prefix="UPLIFT_SERVICE_", env_nested_delimiter="__", frozen=True,
                                      extra="forbid")

    mode: Literal["dev", "production"] = "dev"
    """``production`` refuses to start without tokens or with a weak one; ``dev`` without tokens is open
    (with a loud warning)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=32)
    """uvicorn worker processes; each loads the model, polls the alias and caches plans on its own."""
    compute_processes: int | None = Field(default=None, ge=0, le=64)
    """Processes that run scores and new plans (``uplift.api.compute``), per uvicorn worker; default
    one per core; 0 runs them in the request's thread."""
    tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """Accepted bearer tokens, each ``token`` or ``name:token`` (the name is recorded, never the token); in
    the environment a comma-separated list. Production tokens must be strong (:mod:`uplift.api.tokens`)."""
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
    disclosure: Path | None = None
    """Disclosure policy YAML; default ``<project root>/serve/disclosure.yaml`` (:meth:`disclosure_policy`)."""
    min_segment_size: int = Field(default=50, ge=1)
    """No segment smaller than this ever leaves the service (re-checked on every response)."""
    flyers_by_neighbourhood: bool = False
    """Plan a targetable plan's flyers per print unit (neighbourhood) from the places the model's training run saved;
    off, per municipality. Off by default: such a plan takes about ten times as long (docs/service.md)."""
    max_score_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Larger request bodies get 413 before they are parsed."""
    plan_cache_size: int = Field(default=256, ge=0)
    """Computed plans kept per (model version, request body); 0 turns the cache off."""
    prepared_plans_mb: int = Field(default=256, ge=1)
    """Memory (MB, of their arrays) for prepared plans, per process that computes plans; the least recently
    used go first (at most 32 are kept)."""
    plan_retention: PlanRetention = PlanRetention()
    """Which stored plans are deleted: approved ones never, unapproved ones past an age or a count; in the
    environment e.g. ``UPLIFT_SERVICE_PLAN_RETENTION__UNAPPROVED_DAYS=7``."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @field_validator("tokens")
    @classmethod
    def _valid_tokens(cls, tokens: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        named = []
        for i, entry in enumerate(tokens):
            try:
                named.append(split_entry(entry.get_secret_value()))
            except ValueError as exc:
                raise ValueError(f"tokens[{i}]: {exc}") from None
        short = [f"{name!r} (tokens[{i}])" for i, (name, token) in enumerate(named) if len(token.strip()) < 16]
        if short:
            raise ValueError(f"{', '.join(short)} shorter than 16 characters; make tokens with `uplift token`")
        names = [name for name, _ in named]
        if len(set(names)) < len(names):
            raise ValueError(f"two tokens share a name ({sorted({n for n in names if names.count(n) > 1})})")
        if len({token for _, token in named}) < len(named):
            raise ValueError("the same token is configured twice")
        return tokens

    @model_validator(mode="after")
    def _production_needs_strong_tokens(self) -> ServiceSettings:
        if self.mode != "production":
            return self
        if not self.tokens:
            raise ValueError(
                "mode is 'production' but no tokens are configured; set UPLIFT_SERVICE_TOKENS "
                "(comma-separated) or 'tokens' in the settings file; make one with `uplift token`"
            )
        weak = self.weak_tokens()
        if weak:
            problems = "; ".join(f"token {name!r}: {', '.join(why)}" for name, why in weak.items())
            raise ValueError(
                f"mode is 'production' and {problems}. Production tokens need at least {MIN_CHARS} characters, "
                f"{MIN_BITS_PER_CHAR:g} bits of entropy per character and no run of {REPEAT_RUN} characters "
                "repeated; make one with `uplift token`"
            )
        return self

    def named_tokens(self) -> tuple[tuple[str, bytes], ...]:
        """``(name, token bytes)`` of every configured token (:func:`uplift.api.tokens.split_entry`)."""
        return tuple((name, token.encode()) for name, token in
                     (split_entry(t.get_secret_value()) for t in self.tokens))

    def weak_tokens(self) -> dict[str, list[str]]:
        """Per token name, why the token is too weak for production (only weak ones)."""
        found = {}
        for name, token in self.named_tokens():
            why = token_weaknesses(token.decode())
            if why:
                found[name] = why
        return found

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


    def disclosure_policy(self) -> DisclosurePolicy:
        """The disclosure policy the service releases under (reads the file).

        Raises
        ------
        SpecError
            The file is invalid; in ``production`` mode, its threshold is below the default
            (production may only raise it); or ``min_segment_size`` is below the threshold (a plan
            over a smaller segment would show its people).
        """
        from uplift.specs.disclosure import DEFAULT_THRESHOLD, default_disclosure_path, load_disclosure_policy

        policy = load_disclosure_policy(self.disclosure)
        where = self.disclosure or default_disclosure_path()
        if self.mode == "production" and policy.lowered:
            raise SpecError(
                f"{where}: threshold {policy.threshold} is below the default {DEFAULT_THRESHOLD}; production mode "
                "may only raise it (no figure may rest on fewer people)"
            )
        if self.min_segment_size < policy.threshold:
            raise SpecError(
                f"service settings: min_segment_size {self.min_segment_size} is below the disclosure threshold "
                f"{policy.threshold} ({where}); raise min_segment_size to at least {policy.threshold}"
            )
        return policy


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
