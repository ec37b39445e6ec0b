"""``uplift features``: build the point-in-time training table from the three inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from uplift.cli.app import app, console

__all__ = ["features"]


@app.command()
def features(
    data: Annotated[Path, typer.Option(help="Folder with audience, exposures and enrolments (.parquet or .csv).")] = Path("data/sim"),
    feature_set: Annotated[str, typer.Option("--feature-set", help="Name in features/ or a YAML path.")] = "default",
    out: Annotated[Path, typer.Option(help="Where to write the training table (.parquet).")] = Path("data/training.parquet"),
    list_features: Annotated[bool, typer.Option("--list", help="List the feature library and exit.")] = False,
) -> None:
    """Build one row per randomised (person, wave): features as of assignment, arm, outcome, propensities."""
    from uplift.features import FEATURES
    from uplift.pipeline import load_feature_set, table_from_folder

    if list_features:
        t = Table("feature", "kind", "what it is")
        for name, f in sorted(FEATURES.items()):
            t.add_row(name, f.kind + (f" (per {f.family[:-1]})" if f.family else ""), f.doc)
        console.print(t)
        return
    spec = load_feature_set(feature_set)
    with console.status("building the training table"):
        table = table_from_folder(data, spec)
    table.save(out)
    f = table.frame
    summary = Table("rows", "people", "waves", "arms", "features", "outcome", "outcome rate")
    summary.add_row(
        f"{len(f):,}", f"{f['person_id'].nunique():,}", str(f["wave"].nunique()), str(len(table.arms)),
        str(len(table.features)), table.outcome, f"{f['outcome'].mean():.4%}",
    )
    console.print(summary)
    console.print(f"wrote {out} (digest {table.digest()[:12]})")
