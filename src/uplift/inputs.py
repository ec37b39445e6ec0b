"""Loading the three campaign inputs (audience, exposures, enrolments) and checking their contracts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from uplift.errors import SchemaError
from uplift.schemas import ENROLMENTS, EXPOSURES, audience_schema, validate
from uplift.specs.features import AttributeSpec
from uplift.tableio import SUFFIXES, read_table
from uplift.vocabulary import HOLDOUT, NO_MESSAGE, arm_name

__all__ = ["CampaignInputs", "load_inputs", "locate_inputs", "check_exposures", "INPUT_NAMES"]

INPUT_NAMES = ("audience", "exposures", "enrolments")


@dataclass(frozen=True)
class CampaignInputs:
    """The three validated inputs."""

    audience: pd.DataFrame
    exposures: pd.DataFrame
    enrolments: pd.DataFrame


def locate_inputs(folder: str | Path) -> dict[str, Path]:
    """Find ``audience``, ``exposures`` and ``enrolments`` (.parquet or .csv) in ``folder``."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for name in INPUT_NAMES:
        candidates = [folder / f"{name}{s}" for s in SUFFIXES if (folder / f"{name}{s}").exists()]
        if not candidates:
            raise FileNotFoundError(f"{folder}: no {name}.parquet or {name}.csv (run `uplift simulate` or pass the files)")
        found[name] = candidates[0]
    return found


def check_exposures(exposures: pd.DataFrame, *, source: str, control: str = HOLDOUT) -> None:
    """Arm names must agree with message and channel ("message@channel"; the control is "none"/"none")."""
    expected = [
        control if (m == NO_MESSAGE and c == NO_MESSAGE) else arm_name(m, c)
        for m, c in zip(exposures["message"], exposures["channel"])
    ]
    bad = exposures["arm"].to_numpy() != pd.Series(expected, index=exposures.index).to_numpy()
    if bad.any():
        row = exposures.loc[bad].iloc[0]
        raise SchemaError(
            f"{source}: column 'arm': expected 'message@channel' (or {control!r} with message and channel 'none'); "
            f"{int(bad.sum())} row(s) break it (e.g. arm={row['arm']!r}, message={row['message']!r}, channel={row['channel']!r})"
        )


def load_inputs(
    audience: str | Path,
    exposures: str | Path,
    enrolments: str | Path,
    *,
    control: str = HOLDOUT,
    attributes: Mapping[str, AttributeSpec] | None = None,
) -> CampaignInputs:
    """Read and validate the three files; the first broken file raises one :class:`SchemaError`.

    ``attributes`` are the programme's own audience attributes (checked when present).
    """
    frames = {}
    for name, path, schema in (
        ("audience", audience, audience_schema(attributes)),
        ("exposures", exposures, EXPOSURES),
        ("enrolments", enrolments, ENROLMENTS),
    ):
        frames[name] = validate(read_table(path), schema, source=str(path))
    check_exposures(frames["exposures"], source=str(exposures), control=control)
    return CampaignInputs(**frames)
