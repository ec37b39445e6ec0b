"""``uplift segments``: the champion's segment table as released (size, base rate, per-arm effect with interval)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from uplift.cli.app import app, console, disclosure_policy

__all__ = ["segments", "load_model_segments", "load_released_model_segments"]


def _version(model: str):
    """The MLflow client, version ``model`` (an alias such as ``champion`` or a version number) of the campaign
    model in the settings (``UPLIFT_REGISTERED_MODEL``) and its name; refuses a model that is not one, saying why."""
    from mlflow import MlflowClient

    from uplift.config import get_settings, tracking_uri
    from uplift.tracking.registry import campaign_version

    settings = get_settings()
    uri = tracking_uri(settings)
    client = MlflowClient(uri, registry_uri=uri)
    return client, campaign_version(client, settings.registered_model, model), settings.registered_model


def load_model_segments(model: str) -> tuple[pd.DataFrame, str]:
    """The planner's segment table of ``model`` (see :func:`_version`) and a label."""
    from uplift.tracking.registry import load_segments

    client, version, name = _version(model)
    return load_segments(client, version), f"{name} v{version.version}"


def load_model_places(model: str) -> tuple[pd.DataFrame | None, str]:
    """The places table ``model``'s training run saved (None for a run that saved none) and a label."""
    from uplift.tracking.registry import load_places

    client, version, name = _version(model)
    return load_places(client, version), f"{name} v{version.version} places"


def load_released_model_segments(model: str, policy) -> tuple[pd.DataFrame, str]:
    """The segment table of ``model`` as ``policy`` releases it (:mod:`uplift.segments.release`) and a label."""
    from uplift.tracking.registry import load_released_segments

    client, version, name = _version(model)
    return load_released_segments(client, version, policy), f"{name} v{version.version}"


def _rate(value) -> str:
    return "withheld" if pd.isna(value) else f"{1000 * value:.2f}"


@app.command()
def segments(
    model: Annotated[str, typer.Option(help="Registry alias or version number.")] = "champion",
    kind: Annotated[str | None, typer.Option(help="targetable or persona (default: both).")] = None,
    arm: Annotated[list[str] | None, typer.Option(help="Only these arms (repeatable).")] = None,
    top: Annotated[int, typer.Option(help="Rows to print (the full table is written).")] = 25,
    out: Annotated[Path | None, typer.Option(help="Write the table (.parquet or .csv).")] = Path("out/segments.csv"),
) -> None:
    """Print and write per segment x arm: size, holdout base rate, calibrated effect with interval, as released
    under the disclosure policy (serve/disclosure.yaml)."""
    from uplift.data.tableio import write_table
    from uplift.pipeline import load_segment_spec
    from uplift.segments.composition import released_composition

    policy = disclosure_policy()
    table, label = load_released_model_segments(model, policy)
    if kind:
        table = table[table["kind"] == kind]
    if arm:
        table = table[table["arm"].isin(arm)]
    if out is not None:  # a priority group's share resting on fewer people than the anonymity floor is blanked
        write_table(released_composition(table, load_segment_spec().min_size), out)
    best = table.sort_values("effect", ascending=False).groupby("segment", sort=False).head(1).head(top)
    t = Table(title=f"{label}: best arm per segment (incremental registrations per 1,000 contacts, 80% interval)")
    for col in ("segment", "kind", "people", "base /1,000", "best arm", "effect /1,000", "interval"):
        t.add_column(col, justify="left" if col in ("segment", "kind", "best arm") else "right")
    for r in best.itertuples():
        t.add_row(r.segment, r.kind, f"{r.size:,}", _rate(r.base_rate), r.arm, f"{1000 * r.effect:+.2f}",
                  f"[{1000 * r.lo:+.2f}, {1000 * r.hi:+.2f}]")
    console.print(t)
    withheld = int((table["withheld"] != "").sum())
    console.print(f"{table['segment'].nunique()} segments x {table['arm'].nunique()} arms; people rounded to "
                  f"{policy.rounding_base}, no count below {policy.threshold}; {withheld} rows withhold raw figures "
                  "(column 'withheld')" + (f"; wrote {out}" if out is not None else ""))
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
        promise = record.get("promise")
        if promise and pd.notna(promise.get("ratio")) and pd.notna(promise.get("ratio_se")):
            console.print(f"plans promise {promise['ratio']:.2f} ± {promise['ratio_se']:.2f} x their estimated "
                          f"conversions: what the best-looking {promise['top_share']:.0%} of the {kind} cells bought "
                          "on the held-out rows per conversion they promised")
        elif promise:
            console.print(f"plans promise their estimated conversions: the best-looking {promise['top_share']:.0%} "
                          f"of the {kind} cells promised none on the held-out rows, so the promise is not calibrated")
