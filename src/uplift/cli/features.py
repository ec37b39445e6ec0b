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
    data: Annotated[Path, typer.Option(
        help="Folder with audience, exposures and enrolments (.parquet or .csv).")] = Path("data/sim"),
    feature_set: Annotated[str, typer.Option("--feature-set", help="Name in features/ or a YAML path.")] = "default",
    out: Annotated[Path,
                   typer.Option(help="Where to write the training table (.parquet).")] = Path("data/training.parquet"),
    list_features: Annotated[bool, typer.Option("--list", help="List the feature library and exit.")] = False,
    memory_limit: Annotated[
        str | None,
        typer.Option("--memory-limit",
                     help="Memory the engine (DuckDB) may use before it spills to disk, e.g. 2GB or 700MB (default "
                          "2GB); people's histories are joined in buckets sized to it."),
    ] = None,
    batch_rows: Annotated[
        int | None,
        typer.Option("--batch-rows", min=1,
                     help="Rows per batch of the input checks and per row group (default 1,000,000)."),
    ] = None,
) -> None:
    """Build one row per randomised (person, wave): features as of assignment, arm, outcome, propensities.

    The table is built out of core (DuckDB) and written in row groups, so it may be larger than memory.
    """
    from uplift.data.inputs import locate_inputs
    from uplift.data.trainingtable import file_digest
    from uplift.features import FEATURES
    from uplift.features.outofcore import EngineSettings, write_training_table
    from uplift.pipeline import load_feature_set

    if list_features:
        t = Table("feature", "kind", "what it is")
        for name, f in sorted(FEATURES.items()):
            t.add_row(name, f.kind + (f" (per {f.family[:-1]})" if f.family else ""), f.doc)
        console.print(t)
        return
    spec = load_feature_set(feature_set)
    with console.status("building the training table"):
        chosen = {"memory_limit": memory_limit, "batch_rows": batch_rows}
        settings = EngineSettings(**{k: v for k, v in chosen.items() if v is not None})
        written = write_training_table(locate_inputs(data), spec, out, settings=settings)
    summary = Table("rows", "people", "waves", "arms", "features", "outcome", "outcome rate")
    summary.add_row(
        f"{written.rows:,}", f"{written.people:,}", str(written.waves),
                    str(1 + len(spec.messages) * len(spec.channels)),
        str(len(written.features)), spec.outcome.describe(), f"{written.outcome_rate:.4%}",
    )
    console.print(summary)
    console.print(f"wrote {out} (digest {file_digest(out, batch_rows=settings.batch_rows)[:12]})")
