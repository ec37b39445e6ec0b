"""``uplift run``: the main job end to end on the embedded defaults (simulate, features, train, register)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from uplift.cli.app import app, console, disclosure_policy
from uplift.cli.simulate import REGION_HELP, load_region, write_region

__all__ = ["run", "DEFAULT_MODELS"]

DEFAULT_MODELS = ("pooled_lightgbm", "t_shared_lightgbm")


@app.command()
def run(
    people: Annotated[int, typer.Option(help="Residents in the simulated region.")] = 100_000,
    waves: Annotated[int, typer.Option(help="Campaign waves.")] = 4,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
    out: Annotated[Path, typer.Option(help="Folder for the simulated inputs and the training table.")] = Path("data"),
    models: Annotated[list[str] | None, typer.Option("--model", help="Model spec names in models/ (repeatable).")] = None,
    region: Annotated[str | None, typer.Option(help=REGION_HELP)] = None,
    family: Annotated[Path | None, typer.Option(help="Family of regions for random:SEED (default features/regions/family.yaml).")] = None,
) -> None:
    """Simulate a campaign world, build the point-in-time table, train and register the campaign models, print a summary."""
    from uplift.cli.train import print_results
    from uplift.config import get_settings, tracking_uri
    from uplift.pipeline import load_feature_set, load_priority_groups, table_from_folder, train_and_log
    from uplift.simulate import simulate, write_world
    from uplift.specs import project_root
    from uplift.tableio import read_table

    root = project_root()
    settings = get_settings()
    started = time.perf_counter()
    spec = load_region(region, family)
    with console.status(f"simulating {people:,} people x {waves} waves"):
        world = simulate(spec, people=people, waves=waves, seed=seed)
        written = write_world(world, out / "sim")
        write_region(spec, out / "sim" / "truth" / "region.yaml")
    console.print(f"[bold]1/3 simulate[/]: {len(world.exposures):,} person-waves, "
                  f"{int((world.enrolments['event'] == 'registration').sum()):,} registrations -> {out / 'sim'}")

    feature_set = load_feature_set("default")
    with console.status("building the point-in-time training table"):
        table = table_from_folder(out / "sim", feature_set)
        table.save(out / "training.parquet")
    console.print(f"[bold]2/3 features[/]: {len(table.frame):,} rows x {len(table.features)} features, "
                  f"outcome = {table.outcome} ({table.frame['outcome'].mean():.3%})")

    truth = read_table(written["truth"])
    policy = disclosure_policy()
    groups = load_priority_groups(region=spec)  # the simulated region's neighbourhoods and their deprivation
    results = []
    for name in models or DEFAULT_MODELS:
        with console.status(name) as status:
            results.append(
                train_and_log(root / "models" / f"{name}.yaml", table, settings=settings, data_source=str(out / "sim"),
                              truth=truth, outcome_event=feature_set.outcome.event, disclosure=policy, groups=groups,
                              progress=lambda m, s=status, n=name: s.update(f"3/3 train {n}: {m}"))
            )
        console.print(f"[bold]3/3 train[/] {name}: done")
    print_results(results)

    from mlflow import MlflowClient

    from uplift.tracking.registry import champion_version

    name = results[0].registered_model
    champion = champion_version(MlflowClient(tracking_uri(settings)), name, settings.alias)
    console.print(
        f"\n[bold]{name}@{settings.alias}[/] = version {champion.version} "
        f"(run {champion.run_id[:8]}); tracking: {tracking_uri(settings)}; "
        f"took {time.perf_counter() - started:.0f} s. See it with: mlflow ui --backend-store-uri {tracking_uri(settings)}"
        f" or `uplift models`"
    )
    console.print("Plan with it in a browser: TOKEN=$(uplift token) && echo \"$TOKEN\" && "
                  "UPLIFT_SERVICE_TOKENS=\"anna:$TOKEN\" uplift serve, then open http://127.0.0.1:8000/ui/ and sign in "
                  "with that token.", markup=False, highlight=False)
