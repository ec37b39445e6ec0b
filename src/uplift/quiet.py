"""Quiet output: the third-party notices nobody running uplift can act on are dropped, each by its message and origin.

:func:`install` is called where a process starts working for the user: the ``uplift`` command line
(:func:`uplift.cli.main`), the service (:func:`uplift.api.app.create_app`) and the processes they start
(:func:`quietly`, the service's compute workers). Everything not listed here is shown as before; what the user
should act on is said once, in the product's words, where the product decides (e.g.
:class:`uplift.errors.ThinDataWarning` for cross-validation strata smaller than the folds).

The HiGHS banner is not a Python message: the planner switches the solver's output off before HiGHS writes it
(:mod:`uplift.allocation.reducedlp`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

__all__ = ["install", "quietly", "registry_notes_dropped", "DROPPED_WARNINGS", "DROPPED_LOG_RECORDS"]


class DroppedWarning(NamedTuple):
    """A Python warning to drop: ``message`` is a regular expression matched at the start of the text."""

    message: str
    category: type[Warning]
    module: str
    why: str


DROPPED_WARNINGS: tuple[DroppedWarning, ...] = (
    DroppedWarning(
        r"The least populated class in y has only", UserWarning, r"sklearn\.model_selection\._split",
        "StratifiedKFold on arm x outcome strata: uplift.modeling.validation.fold_ids says it as a ThinDataWarning",
    ),
)

DROPPED_LOG_RECORDS: dict[str, tuple[str, ...]] = {
    # forestci (imported by causalml's uplift forest) logs an ERROR when the optional duecredit is not installed
    "duecredit": ("Failed to import duecredit",),
    # a new SQLite tracking store is created and migrated: routine, once per store
    "mlflow.store.db.utils": ("Creating initial MLflow database tables", "Updating database tables"),
    # uplift logs its model as a Python object on purpose (uplift.tracking.modellog) and gives an input example
    "mlflow.pyfunc": ("Passing a Python object as `python_model`", "Validating input example against model signature",
                      "Inferring model signature from input example"),
}
"""Logger name -> message prefixes of the records dropped from it (records of other levels and texts pass)."""

_ALEMBIC_LOGGER = "alembic.runtime.migration"  # INFO lines of every migration step of a new tracking store

_ENVIRONMENT = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""Set unless the environment already says otherwise: MLflow's download progress bar for each model load."""

_REGISTRY_NOTES = re.compile(r"^(Registered model '.*' already exists\. Creating a new version of this model\.\.\."
                             r"|Successfully registered model '.*'\.|Created version '\d+' of model '.*'\.)$")


class _DropRecords(logging.Filter):
    """Drops records whose message starts with one of ``prefixes`` (and, with ``below``, all under that level)."""

    def __init__(self, prefixes: tuple[str, ...] = (), below: int = logging.NOTSET) -> None:
        super().__init__()
        self.prefixes, self.below = prefixes, below

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.below:
            return False
        return not record.getMessage().startswith(self.prefixes) if self.prefixes else True


def _add_filter_once(logger: logging.Logger, record_filter: _DropRecords) -> None:
    if not any(isinstance(f, _DropRecords) for f in logger.filters):
        logger.addFilter(record_filter)


def install() -> None:
    """Drop the listed warnings and log records in this process and quiet MLflow's progress bars (idempotent).

    Call it before the libraries are imported: some notices are issued at import time.
    """
    for key, value in _ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for dropped in DROPPED_WARNINGS:
        warnings.filterwarnings("ignore", message=dropped.message, category=dropped.category, module=dropped.module)
    for name, prefixes in DROPPED_LOG_RECORDS.items():
        _add_filter_once(logging.getLogger(name), _DropRecords(prefixes))
    _add_filter_once(logging.getLogger(_ALEMBIC_LOGGER), _DropRecords(below=logging.WARNING))


def _call_quietly(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    install()
    return function(*args, **kwargs)


def quietly(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` for another process (joblib, a process pool): :func:`install` runs there before it.

    ``function`` must be picklable (defined at a module's top level)."""
    return functools.partial(_call_quietly, function)


@contextlib.contextmanager
def registry_notes_dropped() -> Iterator[None]:
    """Drop MLflow's printed notes of a registration ("Registered model ... already exists", "Created version
    ...": the product reports the version itself); any other text written to stderr meanwhile is passed on."""
    real, buffer = sys.stderr, io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        kept = [line for line in buffer.getvalue().splitlines(keepends=True)
                if not _REGISTRY_NOTES.match(line.rstrip("\n"))]
        if kept:
            real.write("".join(kept))
            real.flush()
