"""A person's history carried on their audience row: their earlier exposures and funnel events as JSON text.

The logged model (and the Spark job, which builds the two columns by grouping the history files
per person) takes history this way, so one row holds everything a person is scored on. Column
``exposures`` holds a JSON array of records with the fields of the exposures contract without
``person_id`` (the row's own), column ``enrolments`` one with ``event`` and ``occurred_at``;
times are ISO text (a time without offset is UTC), e.g.
``[{"wave": 2, "arm": "fresh_start@meta", "message": "fresh_start", "channel": "meta",
"assigned_at": "2025-05-05T09:00:00Z", "assignment_probability": 0.25, "cost_eur": 1.8}]``.
JSON text rather than typed lists: MLflow checks typed nested columns element by element in
Python (about 700 rows/s measured), text columns at memory speed.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from uplift.data.contracts import ENROLMENTS, EXPOSURES, validate
from uplift.data.inputs import check_exposures
from uplift.errors import SchemaError

__all__ = [
    "EXPOSURES_COLUMN",
    "ENROLMENTS_COLUMN",
    "HISTORY_COLUMNS",
    "EXPOSURE_FIELDS",
    "ENROLMENT_FIELDS",
    "empty_history",
    "history_frames",
    "nest_history",
]

EXPOSURES_COLUMN = "exposures"
ENROLMENTS_COLUMN = "enrolments"
HISTORY_COLUMNS = (EXPOSURES_COLUMN, ENROLMENTS_COLUMN)

EXPOSURE_FIELDS: dict[str, str] = {
    "wave": "long",
    "arm": "string",
    "message": "string",
    "channel": "string",
    "assigned_at": "datetime",
    "assignment_probability": "double",
    "cost_eur": "double",
}
"""Fields of one element of the ``exposures`` list (the exposures contract without ``person_id``) and their types."""

ENROLMENT_FIELDS: dict[str, str] = {"event": "string", "occurred_at": "datetime"}
"""Fields of one element of the ``enrolments`` list."""

_TIME = {EXPOSURES_COLUMN: "assigned_at", ENROLMENTS_COLUMN: "occurred_at"}


def _fields(column: str) -> dict[str, str]:
    return EXPOSURE_FIELDS if column == EXPOSURES_COLUMN else ENROLMENT_FIELDS


def empty_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exposures and enrolments frames without rows, typed as the contracts coerce them."""
    utc = pd.DatetimeTZDtype(tz="UTC")
    dtypes = {"long": "int64", "string": "str", "double": "float64", "datetime": utc}
    frames = []
    for column in HISTORY_COLUMNS:
        cols = {"person_id": pd.Series(dtype="str")}
        cols.update({f: pd.Series(dtype=dtypes[t]) for f, t in _fields(column).items()})
        frames.append(pd.DataFrame(cols))
    return frames[0], frames[1]


def _parse(text: object, column: str, row: int, source: str) -> list[dict]:
    if text is None or (isinstance(text, float) and np.isnan(text)) or text == "":
        return []
    try:
        records = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{source}: column {column!r}, row {row}: expected a JSON array of records ({exc})") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SchemaError(f"{source}: column {column!r}, row {row}: expected a JSON array of records, "
                          f"got {str(text)[:80]!r}")
    return records


def _unnest(rows: pd.DataFrame, column: str, *, source: str) -> pd.DataFrame:
    """One row per record of ``rows[column]``, with the row's ``person_id`` in front."""
    fields = _fields(column)
    parsed = [_parse(v, column, i + 1, source) for i, v in enumerate(rows[column].tolist())]
    counts = np.fromiter((len(p) for p in parsed), dtype=np.int64, count=len(parsed))
    records = [r for p in parsed for r in p]
    missing = sorted({f for r in records for f in fields if f not in r})
    if missing:
        raise SchemaError(f"{source}: column {column!r}: records lack field(s) {missing}; expected {list(fields)}")
    frame = pd.DataFrame({"person_id": np.repeat(rows["person_id"].to_numpy(dtype=object), counts)})
    for f in fields:
        frame[f] = pd.Series([r[f] for r in records], dtype=object)
    when = _TIME[column]
    try:
        frame[when] = pd.to_datetime(frame[when], utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"{source}: column {column!r}: field {when!r}: expected ISO times ({exc})") from None
    return frame


def history_frames(rows: pd.DataFrame, *, control: str,
                   source: str = "model input") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validated exposures and enrolments carried by ``rows`` (empty where a column is absent).

    Raises
    ------
    SchemaError
        A list element breaks the exposures or enrolments contract (the message names the column and field).
    """
    ex, en = empty_history()
    if EXPOSURES_COLUMN in rows.columns:
        where = f"{source}: column {EXPOSURES_COLUMN!r}"
        ex = validate(_unnest(rows, EXPOSURES_COLUMN, source=source), EXPOSURES, source=where)
        check_exposures(ex, source=where, control=control)
    if ENROLMENTS_COLUMN in rows.columns:
        where = f"{source}: column {ENROLMENTS_COLUMN!r}"
        en = validate(_unnest(rows, ENROLMENTS_COLUMN, source=source), ENROLMENTS, source=where)
    return ex, en


def _json(history: pd.DataFrame, people: pd.Series, fields: dict[str, str]) -> list[str]:
    frame = history[["person_id", *fields]].copy()
    for f, t in fields.items():
        if t == "datetime":
            frame[f] = frame[f].map(lambda ts: pd.Timestamp(ts).isoformat())
    by_person: dict[str, list[dict]] = {}
    for record in frame.to_dict("records"):
        by_person.setdefault(str(record.pop("person_id")), []).append(record)
    return [json.dumps(by_person.get(str(p), []), default=_plain) for p in people]


def _plain(value: object) -> object:
    """numpy scalars as Python numbers for JSON."""
    return value.item() if isinstance(value, np.generic) else str(value)


def nest_history(audience: pd.DataFrame, exposures: pd.DataFrame, enrolments: pd.DataFrame) -> pd.DataFrame:
    """``audience`` with each person's exposures and funnel events as JSON columns (for small frames: examples,
    tests)."""
    out = audience.copy()
    out[EXPOSURES_COLUMN] = _json(exposures, audience["person_id"], EXPOSURE_FIELDS)
    out[ENROLMENTS_COLUMN] = _json(enrolments, audience["person_id"], ENROLMENT_FIELDS)
    return out
