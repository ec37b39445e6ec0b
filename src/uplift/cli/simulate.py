"""``uplift simulate``: write a seeded campaign world (audience, exposures, enrolments, truth) to a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from uplift.cli.app import app, console, fail
from uplift.simulate import FORMATS, CampaignWorld, arm_summary, funnel_counts, simulate, write_world
from uplift.specs import load_spec, project_root
from uplift.specs.region import RegionSpec

__all__ = ["simulate_command", "DEFAULT_REGION"]

DEFAULT_REGION = Path("features") / "regions" / "haaglanden.yaml"


def _summary_tables(world: CampaignWorld, written: dict[str, Path]) -> list[Table]:
    files = Table(title="Files written")
    files.add_column("table")
    files.add_column("rows", justify="right")
    files.add_column("path")
    for name, path in written.items():
        files.add_row(name, f"{len(getattr(world, name)):,}", str(path))

    counts = funnel_counts(world)
    randomised = len(world.exposures)
    funnel = Table(title=f"Funnel ({randomised:,} person-waves randomised)")
    funnel.add_column("event", no_wrap=True)
    funnel.add_column("people", justify="right")
    funnel.add_column("per 1,000 person-waves", justify="right")
    for event, count in counts.items():
        funnel.add_row(event, f"{count:,}", f"{1000 * count / randomised:.2f}" if randomised else "-")

    arms = arm_summary(world)
    per_arm = Table(title=f"Per arm (registration within {world.attribution_days} days)")
    per_arm.add_column("arm", no_wrap=True)
    per_arm.add_column("reached", justify="right")
    per_arm.add_column("regs", justify="right")
    per_arm.add_column("per 1,000", justify="right")
    per_arm.add_column("true /1,000", justify="right")
    for row in arms.itertuples():
        per_arm.add_row(
            str(row.Index),
            f"{row.reached:,}",
            f"{row.registrations:,}",
            f"{1000 * row.rate:.2f}" if row.reached else "-",
            f"{1000 * row.true_rate:.2f}" if row.reached else "-",
        )
    return [files, funnel, per_arm]


def _ratio_line(world: CampaignWorld) -> str:
    counts = funnel_counts(world)
    ratio = " : ".join(f"{counts[e]:,}" for e in ("registration", "advice_conversation", "application"))
    return f"registration : conversation : application = {ratio}"


@app.command("simulate")
def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the world into.")],
    region: Annotated[
        Path | None, typer.Option("--region", help="Region spec (YAML); default features/regions/haaglanden.yaml.")
    ] = None,
    people: Annotated[int, typer.Option("--people", min=1, help="Number of residents.")] = 200_000,
    waves: Annotated[
        int | None, typer.Option("--waves", min=1, help="Number of waves; default the region's waves.count.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (same seed, same files).")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="File format of the three inputs: parquet or csv.")] = "parquet",
) -> None:
    """Simulate randomised outreach waves in a region and write the inputs plus the truth file."""
    if fmt not in FORMATS:
        fail(f"--format {fmt!r} is not supported; valid: {', '.join(FORMATS)}")
    region_path = region if region is not None else project_root() / DEFAULT_REGION
    spec = load_spec(region_path, RegionSpec)
    n_waves = waves if waves is not None else spec.waves.count
    with console.status(f"Simulating {people:,} people x {n_waves} waves in {spec.name} (seed {seed})..."):
        world = simulate(spec, people=people, waves=n_waves, seed=seed)
    with console.status(f"Writing {fmt} files to {out}..."):
        written = write_world(world, out, fmt=fmt)  # type: ignore[arg-type]
    for table in _summary_tables(world, written):
        console.print(table)
    console.print(_ratio_line(world))
