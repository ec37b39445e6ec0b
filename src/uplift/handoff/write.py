"""Writing a hand-off folder: every file or none, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from uplift.handoff.sheets import HOLDOUT_FILE, KEY_FILE, MANIFEST_FILE, Handoff
from uplift.tableio import atomic_directory

__all__ = ["FORMULA_STARTS", "as_text", "write_handoff"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is a formula (or becomes one) in Excel and its kin."""


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that a spreadsheet would read as a formula prefixed by ``'`` (shown as
    text, the OWASP rule for CSV injection); numbers are left as numbers."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = [("'" + v) if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v
                           for v in out[column]]
    return out


def write_handoff(handoff: Handoff, folder: str | Path) -> Path:
    """Write ``handoff`` into ``folder`` (replaced as a whole, atomically: readers see the old folder or the
    complete new one, never part of it). Returns the folder."""
    folder = Path(folder)
    with atomic_directory(folder) as tmp:
        tmp.mkdir(parents=True)
        for name, frame in {**handoff.sheets, HOLDOUT_FILE: handoff.holdout, KEY_FILE: handoff.key}.items():
            as_text(frame).to_csv(tmp / name, index=False)
        (tmp / MANIFEST_FILE).write_text(json.dumps(handoff.manifest, indent=2, ensure_ascii=False) + "\n")
    return folder
