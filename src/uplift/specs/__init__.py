"""Declarations: YAML files in the top-level folders, read into frozen pydantic models.

Each spec module defines the models for one folder; :func:`load_spec` reads any of them and
turns a malformed file into a :class:`~uplift.errors.SpecError` naming the file and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from uplift.errors import SpecError

__all__ = ["Spec", "load_spec", "project_root"]


class Spec(BaseModel):
    """Base of every declaration: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


S = TypeVar("S", bound=Spec)


def load_spec(path: str | Path, model: type[S]) -> S:
    """Read ``path`` (YAML) into ``model``; raise :class:`SpecError` naming the file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"{path}: invalid {model.__name__}: {problems}") from None


def project_root() -> Path:
    """The folder that holds the declarations (``features/``, ``models/``, ``serve/``, ...).

    ``UPLIFT_PROJECT_ROOT`` wins; otherwise the current folder if it has ``models/``, else the
    source checkout this package was installed from.
    """
    import os

    env = os.environ.get("UPLIFT_PROJECT_ROOT")
    if env:
        return Path(env)
    cwd = Path.cwd()
    if (cwd / "models").is_dir() and (cwd / "features").is_dir():
        return cwd
    return Path(__file__).resolve().parents[3]
