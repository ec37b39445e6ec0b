"""Loading a logged model that an earlier version of the package pickled.

A pickle names the module each of its classes was defined in. When a module moves (the data layer into
``uplift.data``, the effects' helpers into ``uplift.segments``), a model registered before the move names the old
module, and unpickling it in a process that already runs the new package fails with ``ModuleNotFoundError``. The
loader maps every module that moved to where it lives now, for the time of the load only: new code never imports
the old names.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MOVED_MODULES", "load_pyfunc", "moved_modules"]

MOVED_MODULES: dict[str, str] = {
    "uplift.schemas": "uplift.data.contracts",
    "uplift.tableio": "uplift.data.tableio",
    "uplift.inputs": "uplift.data.inputs",
    "uplift.trainingtable": "uplift.data.trainingtable",
    "uplift.vocabulary": "uplift.data.vocabulary",
    "uplift.additive": "uplift.segments.additive",
    "uplift.armtable": "uplift.segments.armtable",
}
"""Old module name -> the module that holds its code now."""

_LOCK = threading.Lock()


@contextmanager
def moved_modules() -> Iterator[None]:
    """Within the block, every old name of :data:`MOVED_MODULES` resolves to its module's new home."""
    with _LOCK:
        added = [old for old in MOVED_MODULES if old not in sys.modules]
        for old in added:
            sys.modules[old] = importlib.import_module(MOVED_MODULES[old])
        try:
            yield
        finally:
            for old in added:
                sys.modules.pop(old, None)


def load_pyfunc(uri: str):
    """``mlflow.pyfunc.load_model(uri)``, with the modules that moved since the model was logged mapped."""
    import mlflow.pyfunc

    with moved_modules():
        return mlflow.pyfunc.load_model(uri)
