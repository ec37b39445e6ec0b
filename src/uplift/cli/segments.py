"""``uplift segments``: the champion's segment table (size, base rate, per-arm effect with interval)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from uplift.cli.app import app, console

__all__ = ["segments", "load_model_segments"]


def load_model_segments(model: str) -> tuple[pd.DataFrame, str]:
    """Segment table of ``model`` (an alias such as ``champion`` or a version number) and a label for it."""
    from mlflow import MlflowClient

    from uplift.config import get_settings, tracking_uri
    from uplift.tracking.registry import load_segments, resolve_version

    settings = get_settings()
    client = MlflowClient(tracking_uri(settings))
    version = resolve_version(client, settings.registered_model, model)
    return load_segments(client, version), f"{settings.registered_model} v{version.version}"


@app.command()
def segments(
    model: Annotated[str, typer.Option(help="Registry alias or version number.")] = "champion",
    kind: Annotated[str | None, typer.Option(help="targetable or persona (default: both).")] = None,
    arm: Annotated[list[str] | None, typer.Option(help="Only these arms (repeatable).")] = None,
    top: Annotated[int, typer.Option(help="Rows to print (the full table is written).")] = 25,
    out: Annotated[Path | None, typer.Option(help="Write the table (.parquet or .csv).")] = Path("out/segments.csv"),
) -> None:
    """Print and write per segment x arm: size, holdout base rate, calibrated effect with interval."""
    from uplift.tableio import write_table

    table, label = load_model_segments(model)
    if kind:
        table = table[table["kind"] == kind]
    if arm:
        table = table[table["arm"].isin(arm)]
    if out is not None:
        write_table(table, out)
    best = table.sort_values("effect", ascending=False).groupby("segment", sort=False).head(1).head(top)
    t = Table(title=f"{label}: best arm per segment (incremental registrations per 1,000 contacts, 80% interval)")
    for col in ("segment", "kind", "people", "base /1,000", "best arm", "effect /1,000", "interval"):
        t.add_column(col, justify="left" if col in ("segment", "kind", "best arm") else "right")
    for r in best.itertuples():
        t.add_row(r.segment, r.kind, f"{r.size:,}", f"{1000 * r.base_rate:.2f}", r.arm, f"{1000 * r.effect:+.2f}",
                  f"[{1000 * r.lo:+.2f}, {1000 * r.hi:+.2f}]")
    console.print(t)
    console.print(f"{table['segment'].nunique()} segments x {table['arm'].nunique()} arms"
                  + (f"; wrote {out}" if out is not None else ""))
    _print_stages(table)


def _print_stages(table: pd.DataFrame) -> None:
    """The stages each kind's estimator kept on its data, with the held-out evidence (when it chose)."""
    from uplift.segments import stage_table

    for kind, record in (table.attrs.get("stages") or {}).items():
        stages = stage_table(table, kind=kind)
        if stages.empty:
            continue
        console.print(f"{kind} effects: stages kept ({record['by']}); held-out gain of each stage, "
                      "(per 1,000 contacts)^2 per row, ± its standard error")
        t = Table()
        for col in ("stage", "kept", "gain", "t"):
            t.add_column(col, justify="left" if col in ("stage", "kept") else "right")
        for r in stages.itertuples():
            gain = "-" if pd.isna(r.gain) else f"{r.gain:+.3f} ± {r.gain_se:.3f}"
            t.add_row(r.stage, "yes" if r.kept else "no", gain, "-" if pd.isna(r.t) else f"{r.t:+.1f}")
        console.print(t)
        slope = record.get("slope")
        if slope is not None and pd.notna(slope):
            console.print(f"held-out slope of the {kind} cells' deviations: {slope:.2f} ± {record['slope_se']:.2f} "
                          "(1: the truth follows the estimates' deviations as far as they say)")
