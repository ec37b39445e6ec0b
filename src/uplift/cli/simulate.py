"""``uplift simulate``: write a seeded campaign world (audience, exposures, enrolments, truth) to a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from uplift.cli.app import app, console, fail
from uplift.data.tableio import atomic_path
from uplift.errors import SpecError
from uplift.simulate import FORMATS
from uplift.simulate.chunked import CHUNK_PEOPLE, WorldSummary, write_world_in_chunks
from uplift.simulate.generate import RANDOM_PREFIX, generate_region
from uplift.specs import load_spec, project_root
from uplift.specs.family import FamilySpec
from uplift.specs.region import RegionSpec

__all__ = ["simulate_command", "load_region", "write_region", "DEFAULT_REGION", "DEFAULT_FAMILY", "REGION_HELP"]

DEFAULT_REGION = Path("features") / "regions" / "haaglanden.yaml"
DEFAULT_FAMILY = Path("features") / "regions" / "family.yaml"
REGION_HELP = ("Region spec (YAML), or random:SEED for a region drawn from the family (--family); "
               "default features/regions/haaglanden.yaml.")


def load_region(region: str | None, family: Path | None = None) -> RegionSpec:
    """The region a command runs on: a region YAML, or ``random:SEED`` drawn from the family spec.

    Raises
    ------
    SpecError
        The file is not a valid spec, or SEED is not a non-negative integer.
    """
    if region is None:
        return load_spec(project_root() / DEFAULT_REGION, RegionSpec)
    if region.startswith(RANDOM_PREFIX):
        text = region.removeprefix(RANDOM_PREFIX)
        if not text.isdigit():
            raise SpecError(f"--region {region!r}: expected random:SEED with SEED a whole number >= 0")
        spec = load_spec(family if family is not None else project_root() / DEFAULT_FAMILY, FamilySpec)
        return generate_region(spec, int(text))
    return load_spec(Path(region), RegionSpec)


def write_region(spec: RegionSpec, path: Path) -> Path:
    """Write the region as YAML (atomically): a drawn region can be read back with ``--region PATH``."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    return path


def _summary_tables(world: WorldSummary) -> list[Table]:
    files = Table(title="Files written")
    files.add_column("table")
    files.add_column("rows", justify="right")
    files.add_column("path")
    for name, path in world.paths.items():
        files.add_row(name, f"{world.rows[name]:,}", str(path))

    randomised = world.rows["exposures"]
    funnel = Table(title=f"Funnel ({randomised:,} person-waves randomised)")
    funnel.add_column("event", no_wrap=True)
    funnel.add_column("people", justify="right")
    funnel.add_column("per 1,000 person-waves", justify="right")
    for event, count in world.funnel.items():
        funnel.add_row(event, f"{count:,}", f"{1000 * count / randomised:.2f}" if randomised else "-")

    per_arm = Table(title=f"Per arm (registration within {world.attribution_days} days)")
    per_arm.add_column("arm", no_wrap=True)
    per_arm.add_column("reached", justify="right")
    per_arm.add_column("regs", justify="right")
    per_arm.add_column("per 1,000", justify="right")
    per_arm.add_column("true /1,000", justify="right")
    for row in world.arms.itertuples():
        per_arm.add_row(
            str(row.Index),
            f"{row.reached:,}",
            f"{row.registrations:,}",
            f"{1000 * row.rate:.2f}" if row.reached else "-",
            f"{1000 * row.true_rate:.2f}" if row.reached else "-",
        )
    return [files, funnel, per_arm]


def _persona_table(spec: RegionSpec, world: WorldSummary) -> Table:
    given = ", ".join(spec.given_attributes) if spec.given_attributes else "none (age, gender and place only)"
    table = Table(title=f"Personas of {spec.name} (truth; optional attributes handed over: {given})")
    for column in ("persona", "share", "holdout /1,000", "best arm", "its true /1,000"):
        table.add_column(column, justify="left" if column in ("persona", "best arm") else "right")
    for row in world.personas.itertuples():
        table.add_row(str(row.Index), f"{row.share:.1%}", f"{1000 * row.holdout_rate:.2f}", row.best_arm,
                      f"{1000 * row.best_rate:.2f}")
    return table


def _ratio_line(world: WorldSummary) -> str:
    ratio = " : ".join(f"{world.funnel[e]:,}" for e in ("registration", "advice_conversation", "application"))
    return f"registration : conversation : application = {ratio}"


@app.command("simulate")
def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the world into.")],
    region: Annotated[str | None, typer.Option("--region", help=REGION_HELP)] = None,
    family: Annotated[
        Path | None, typer.Option("--family",
                                  help="Family of regions for random:SEED; default features/regions/family.yaml.")
    ] = None,
    people: Annotated[int, typer.Option("--people", min=1, help="Number of residents.")] = 200_000,
    waves: Annotated[
        int | None, typer.Option("--waves", min=1, help="Number of waves; default the region's waves.count.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (same seed, same files).")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="File format of the three inputs: parquet or csv.")] = "parquet",
    chunk_people: Annotated[
        int, typer.Option("--chunk-people", min=1, help="People simulated and written at a time: a larger world is "
                          "written in chunks (Parquet row groups) on random streams of its own per chunk.")
    ] = CHUNK_PEOPLE,
) -> None:
    """Simulate randomised outreach waves in a region and write the inputs plus the truth file."""
    if fmt not in FORMATS:
        fail(f"--format {fmt!r} is not supported; valid: {', '.join(FORMATS)}")
    spec = load_region(region, family)
    n_waves = waves if waves is not None else spec.waves.count
    chunks = -(-people // chunk_people)
    what = f" in {chunks} chunks" if chunks > 1 else ""
    with console.status(f"Simulating {people:,} people x {n_waves} waves in {spec.name} (seed {seed}){what}..."):
        world = write_world_in_chunks(spec, out, people=people, waves=n_waves, seed=seed, chunk_people=chunk_people,
                                      fmt=fmt)  # type: ignore[arg-type]
        written_region = write_region(spec, Path(out) / "truth" / "region.yaml")
    for table in _summary_tables(world):
        console.print(table)
    console.print(f"region {spec.name!r} written to {written_region}")
    console.print(_persona_table(spec, world))
    console.print(_ratio_line(world))
