"""A model pickled before a module moved still loads: the loader maps the old module names for the load only."""

from __future__ import annotations

import importlib
import pickle
import sys

import pytest

from uplift.data.trainingtable import FeatureColumn
from uplift.tracking.storedmodel import MOVED_MODULES, moved_modules


def pickled_under_old_name(obj, old: str) -> bytes:
    """``obj`` pickled as the package before the move pickled it: its class in module ``old``."""
    cls = type(obj)
    module = cls.__module__
    sys.modules[old] = sys.modules[module]
    cls.__module__ = old
    try:
        return pickle.dumps(obj)
    finally:
        cls.__module__ = module
        del sys.modules[old]


def test_an_object_pickled_under_a_moved_module_loads_within_the_block_only():
    payload = pickled_under_old_name(FeatureColumn("age", "numeric"), "uplift.trainingtable")
    assert b"uplift.trainingtable" in payload
    with pytest.raises(ModuleNotFoundError, match="uplift.trainingtable"):
        pickle.loads(payload)
    with moved_modules():
        assert pickle.loads(payload) == FeatureColumn("age", "numeric")
    assert "uplift.trainingtable" not in sys.modules  # new code never imports the old names


def test_every_moved_module_has_a_new_home_and_no_old_file():
    for old, new in MOVED_MODULES.items():
        assert importlib.import_module(new).__name__ == new
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)
