"""``uplift plan ... --handoff DIR`` (the plan as one file per channel) and ``uplift attribute`` (registrations
back to the arm and cell of the link that brought them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from uplift.cli.app import app, console, disclosure_policy, fail

__all__ = ["attribute_command", "write_plan_handoff"]


def write_plan_handoff(cells: pd.DataFrame, *, folder: Path, costs, policy, wave: int | None, start: str | None,
                       audience: Path | None, unit_lines=None) -> dict:
    """Write the hand-off of a plan's ``cells`` into ``folder`` and return its manifest (``unit_lines``: the plan's
    flyer lines per print unit, each one print run)."""
    from uplift.data.tableio import read_table
    from uplift.handoff import (
        areas_from_audience,
        areas_from_region,
        handoff_tables,
        write_handoff,
    )
    from uplift.specs import load_spec, project_root
    from uplift.specs.handoff import HandoffSpec
    from uplift.specs.region import RegionSpec
    from uplift.specs.segments import SegmentSpec

    if wave is None:
        fail("--handoff needs --wave, the wave the plan is for (utm_campaign=wave-<n>)")
    try:
        first = dt.date.fromisoformat(start) if start else dt.date.today()
    except ValueError:
        fail(f"--start {start!r}: expected a date as YYYY-MM-DD")
    root = project_root()
    spec = load_spec(root / "serve" / "handoff.yaml", HandoffSpec)
    min_size = load_spec(root / "features" / "segments.yaml", SegmentSpec).min_size
    threshold = disclosure_policy().threshold
    if min_size < threshold:
        fail(f"features/segments.yaml: min_size {min_size} is below the disclosure threshold {threshold}; a print run "
             "could cover fewer people than may be shown")
    if audience is not None:
        areas = areas_from_audience(read_table(audience), source=str(audience))
    else:
        areas = areas_from_region(load_spec(root / spec.region, RegionSpec))
    handoff = handoff_tables(cells, costs=costs, policy=policy, spec=spec, areas=areas, wave=wave, start=first,
                             min_size=min_size, unit_lines=unit_lines)
    write_handoff(handoff, folder)
    return handoff.manifest


def show_manifest(manifest: dict, folder: Path) -> None:
    """The hand-off's files with their totals beside the plan's."""
    t = Table(title=f"Hand-off for {manifest['utm_campaign']} ({manifest['start_date']} - {manifest['end_date']})")
    for col in ("file", "lines", "spend", "planned contacts", "planned holdout", "below the channel's minimum"):
        t.add_column(col, justify="left" if col == "file" else "right")
    for f in manifest["files"]:
        if "spend_eur" in f:
            t.add_row(f["file"], f"{f['lines']:,}", f"€{f['spend_eur']:,.2f}", f"{f['planned_contacts']:,}",
                      f"{f['planned_holdout_people']:,}", f"{f['below_minimum']:,}")
    plan = manifest["plan"]
    t.add_row("plan", "", f"€{plan['spend_eur']:,.2f}", f"{plan['contacts']:,}", f"{plan['holdout_people']:,}", "")
    console.print(t)
    if not manifest["adds_up"]:  # pragma: no cover - handoff_tables splits by largest remainder
        fail("the hand-off's totals do not add up to the plan's")
    if manifest["below_minimum"]:
        console.print(f"[yellow]note:[/] {len(manifest['below_minimum']):,} line(s) below "
                      "their channel's minimum spend "
                      "or print run are handed over as planned and flagged (below_minimum; manifest.json lists them)")
    for line in manifest["not_targeted"]:
        console.print(f"[dim]note:[/] {line}: the channel cannot select on it; each of its lines was planned over "
                      "all of them, as it runs")
    console.print(f"wrote {folder}")


@app.command("attribute")
def attribute_command(
    enrolments: Annotated[Path,
                          typer.Option(help="Enrolments with the UTM columns or visit_url of each registration.")],
    handoff: Annotated[list[Path], typer.Option(help="A hand-off folder (repeatable: one per wave).")],
    out: Annotated[Path, typer.Option(help="Where to write one row per registration (.csv or .parquet).")] = Path(
        "out/attributions.csv"),
) -> None:
    """Attribute registrations to the arm and cell of the hand-off link that brought them (docs/handoff.md)."""
    from uplift.data.contracts import ENROLMENTS, validate
    from uplift.data.tableio import CSV_ENCODING, read_table, reading, write_table
    from uplift.disclosure import release_count
    from uplift.handoff import KEY_FILE, attribute, attribution_counts

    keys = []
    for folder in handoff:
        if not (folder / KEY_FILE).exists():
            fail(f"{folder}: no {KEY_FILE}; expected a folder written by `uplift plan ... --handoff`")
        with reading(folder / KEY_FILE):  # as text: a code or message that looks like a number stays as written
            keys.append(pd.read_csv(folder / KEY_FILE, dtype=str, keep_default_na=False, encoding=CSV_ENCODING))
    frame = validate(read_table(enrolments), ENROLMENTS, source=str(enrolments))
    attributed = attribute(frame, pd.concat(keys, ignore_index=True), source=str(enrolments))
    write_table(attributed, out)
    policy = disclosure_policy()
    t = Table(title=f"Registrations by attribution (counts rounded to {policy.rounding_base}; '<{policy.threshold}': "
                    "below the disclosure threshold)")
    for col in ("status", "reason", "registrations"):
        t.add_column(col, justify="right" if col == "registrations" else "left")
    for r in attribution_counts(attributed).itertuples():
        n = release_count(r.registrations, policy)
        t.add_row(r.status, r.reason, f"<{policy.threshold}" if n is None else f"{n:,}")
    console.print(t)
    console.print(f"wrote {out}")
