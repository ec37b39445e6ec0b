"""Writing a hand-off folder: every file or none, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from uplift.data.tableio import atomic_directory
from uplift.handoff.sheets import HOLDOUT_FILE, KEY_FILE, MANIFEST_FILE, Handoff

__all__ = ["FORMULA_STARTS", "as_text", "handoff_archive", "handoff_files", "write_handoff"]

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


def handoff_files(handoff: Handoff) -> dict[str, bytes]:
    """Every file of ``handoff`` by name, as written: CSV (text cells safe, :func:`as_text`) and the manifest."""
    files = {name: as_text(frame).to_csv(index=False).encode()
             for name, frame in {**handoff.sheets, HOLDOUT_FILE: handoff.holdout, KEY_FILE: handoff.key}.items()}
    files[MANIFEST_FILE] = (json.dumps(handoff.manifest, indent=2, ensure_ascii=False) + "\n").encode()
    return files


def handoff_archive(handoff: Handoff) -> bytes:
    """The files of ``handoff`` as one zip archive (what the service sends)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in handoff_files(handoff).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def write_handoff(handoff: Handoff, folder: str | Path) -> Path:
    """Write ``handoff`` into ``folder`` (replaced as a whole, atomically: readers see the old folder or the
    complete new one, never part of it). Returns the folder."""
    folder = Path(folder)
    with atomic_directory(folder) as tmp:
        tmp.mkdir(parents=True)
        for name, content in handoff_files(handoff).items():
            (tmp / name).write_bytes(content)
    return folder
