"""How much memory an object's arrays hold: the measure the service's caches of prepared plans are bounded by."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["array_bytes"]


def array_bytes(obj: Any, max_depth: int = 8) -> int:
    """Bytes of the numpy arrays, pandas frames and series and scipy sparse matrices reachable from ``obj``
    through attributes, dicts, lists and tuples (``max_depth`` levels; each object counted once).

    An estimate from below: Python scalars, strings outside frames and native handles (e.g. a HiGHS
    instance) are not counted. A prepared plan's memory is almost all in its arrays.
    """
    seen: set[int] = set()
    total = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        if id(item) in seen or depth > max_depth:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):  # object arrays: their pointers only
            total += item.nbytes
        elif isinstance(item, (pd.DataFrame, pd.Series)):
            total += int(np.sum(item.memory_usage(deep=True)))
        elif hasattr(item, "indptr") and hasattr(item, "data") and hasattr(item, "indices"):  # scipy sparse
            total += sum(a.nbytes for a in (item.data, item.indices, item.indptr))
        elif isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.extend((v, depth + 1) for v in vars(item).values())
        elif hasattr(item, "__slots__"):
            stack.extend((getattr(item, s), depth + 1) for s in item.__slots__ if hasattr(item, s))
    return total
