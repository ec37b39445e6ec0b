"""``uplift run``: the main job end to end on the embedded defaults (simulate, features, train, register)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from uplift.cli.app import app, console, disclosure_policy
from uplift.cli.plannerview import print_planner_view
from uplift.cli.simulate import REGION_HELP, load_region, write_region

__all__ = ["run", "DEFAULT_MODELS"]

DEFAULT_MODELS = ("pooled_lightgbm", "t_shared_lightgbm")


@app.command()
def run(
    people: Annotated[int, typer.Option(help="Residents in the simulated region.")] = 100_000,
    waves: Annotated[int, typer.Option(help="Campaign waves.")] = 4,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
    out: Annotated[Path, typer.Option(help="Folder for the simulated inputs and the training table.")] = Path("data"),
    models: Annotated[list[str] | None,
                      typer.Option("--model", help="Model spec names in models/ (repeatable).")] = None,
    region: Annotated[str | None, typer.Option(help=REGION_HELP)] = None,
    family: Annotated[Path | None, typer.Option(
        help="Family of regions for random:SEED (default features/regions/family.yaml).")] = None,
    budget: Annotated[float, typer.Option(help="EUR the closing plan splits over the next wave.")] = 2_000.0,
    plan_out: Annotated[Path,
                        typer.Option(help="Folder for the closing plan (plan.csv) and its hand-off.")] = Path("out"),
    details: Annotated[bool, typer.Option(help="Also print the modelling tables (Qini per arm, policy values, "
                                                "regret against the simulator's truth).")] = False,
) -> None:
    """Simulate a campaign world, build the point-in-time table, train and register the campaign models, then show
    the champion, the best segments of every message and a plan for the next wave with its hand-off."""
    from uplift.cli.train import print_results
    from uplift.config import get_settings, tracking_uri
    from uplift.data.tableio import read_table
    from uplift.pipeline import load_feature_set, load_priority_groups, table_from_folder, train_and_log
    from uplift.simulate import simulate, write_world
    from uplift.specs import project_root

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
    if details:
        print_results(results)
    else:
        for r in results:
            mark = "promoted" if r.promoted else "not promoted"
            console.print(f"{r.spec.name}: {r.registered_model} v{r.version} {mark}: {r.reason}", highlight=False,
                          markup=False)
    console.print(f"took {time.perf_counter() - started:.0f} s; the runs, plots and models: mlflow ui "
                  f"--backend-store-uri {tracking_uri(settings)} (or `uplift models`; `--details` prints the "
                  "modelling tables here)", highlight=False)
    print_planner_view(name=results[0].registered_model, alias=settings.alias, budget=budget, wave=waves + 1,
                       out=plan_out, audience=Path(written["audience"]))
