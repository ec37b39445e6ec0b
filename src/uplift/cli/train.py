"""``uplift train``: validate model specs, log them to MLflow, register and gate the champion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from uplift.cli.app import app, console, disclosure_policy, fail

__all__ = ["train", "print_results"]


def _load_table(data: Path | None, table: Path | None, experiment_csv: Path | None, mapping: Path | None,
                outcome: str | None, feature_set: str):
    """The training table (the path of a saved one), what the models are for, the outcome event (truth checks) and
    a label of the source."""
    from uplift.adapters import ColumnMapping, load_experiment_csv
    from uplift.modeling.tablereader import read_structure
    from uplift.pipeline import load_feature_set, table_from_folder
    from uplift.specs import load_spec
    from uplift.tracking.uses import campaign_use, experiment_use

    chosen = [x for x in (data, table, experiment_csv) if x is not None]
    if len(chosen) > 1:
        fail("give one of --data, --table or --experiment-csv")
    if experiment_csv is not None:
        if mapping is None:
            fail("--experiment-csv needs --mapping (e.g. features/datasets/hillstrom.yaml)")
        columns = load_spec(mapping, ColumnMapping)
        tbl = load_experiment_csv(experiment_csv, columns, outcome=outcome, mapping_source=str(mapping))
        return tbl, experiment_use(columns.name, tbl.outcome), tbl.outcome, str(experiment_csv)
    spec = load_feature_set(feature_set)
    if table is not None:  # each model spec reads the file for itself (uplift.savedtraining)
        built_for = read_structure(table)["outcome"]
        if built_for != spec.outcome.describe():
            fail(f"{table}: built for the outcome {built_for!r}, but feature set {spec.name!r} declares "
                 f"{spec.outcome.describe()!r}; give the feature set it was built with (--feature-set)")
        return table, campaign_use(spec.outcome.event), spec.outcome.event, str(table)
    folder = data or Path("data/sim")
    with console.status(f"building the training table from {folder}"):
        return table_from_folder(folder, spec), campaign_use(spec.outcome.event), spec.outcome.event, str(folder)


def print_results(results) -> None:
    """Per-arm Qini of every model side by side, the policy comparison and the promotion decisions."""
    if not results:
        return
    arms = list(results[0].report.test_metrics.index)
    t = Table(title="Qini coefficient per arm (cross-validated on training rows | held-out test)")
    t.add_column("arm")
    for r in results:
        t.add_column(r.spec.name, justify="right")
    for arm in arms:
        t.add_row(arm, *[f"{r.report.cv_metrics.loc[arm, 'qini']:+.5f} | {r.report.test_metrics.loc[arm, 'qini']:+.5f}"
                         for r in results])
    t.add_row("[bold]mean[/]",
              *[f"{r.report.cv_metrics['qini'].mean():+.5f} | {r.report.test_metrics['qini'].mean():+.5f}"
                for r in results])
    console.print(t)

    p = Table(title="Held-out value per 1,000 people (IPW, 95% CI) and gain over the best single arm")
    p.add_column("policy")
    for r in results:
        p.add_column(r.spec.name, justify="right")
    for name in ("targeted", "argmax", "best_single_arm", f"all:{results[0].report.train.control}"):
        cells = []
        for r in results:
            row = r.report.policies.loc[name]
            cells.append(f"{1000 * row['value']:.2f} [{1000 * row['lo']:.2f}, {1000 * row['hi']:.2f}] "
                         f"{1000 * row['diff']:+.2f}")
        p.add_row(name, *cells)
    p.add_row("shrinkage λ", *[f"{r.report.shrinkage.lam:.2f}" for r in results])
    console.print(p)

    if results[0].report.net_policies is not None:
        _print_net(results)

    if results[0].truth_policies is not None:
        q = Table(title="Against the simulator's truth (test rows)")
        q.add_column("")
        for r in results:
            q.add_column(r.spec.name, justify="right")
        q.add_row("mean corr(estimated, true uplift)",
                  *[f"{r.truth_recovery['true_corr'].mean():.3f}" for r in results])
        for name in ("targeted", "argmax", "best_single_arm"):
            q.add_row(f"regret per 1,000: {name}",
                      *[f"{1000 * r.truth_policies.loc[name, 'regret']:.3f}" for r in results])
        console.print(q)

    for r in results:
        mark = "[green]promoted[/]" if r.promoted else "[yellow]not promoted[/]"
        console.print(f"{r.spec.name}: run {r.run_id[:8]}, {r.registered_model} v{r.version} {mark}: {r.reason}",
                      highlight=False)


def _print_net(results) -> None:
    """Held-out net value per person of every policy (95% CI), its gain over the best single arm, the spend."""
    econ = results[0].report.train.economics
    outcome = results[0].report.train.outcome
    t = Table(title=f"Held-out net value per person (IPW, 95% CI; a '{outcome}' worth {econ.value:g}, net of "
                    f"contact costs), gain over the best single arm, spend per person")
    t.add_column("policy")
    for r in results:
        t.add_column(r.spec.name, justify="right")
    for name in results[0].report.net_policies.index:
        cells = []
        for r in results:
            row = r.report.net_policies.loc[name]
            cells.append(f"{row['value']:.4f} [{row['lo']:.4f}, {row['hi']:.4f}] {row['diff']:+.4f} "
                         f"(spend {row['spend']:.3f})")
        t.add_row(name.replace("all:", "everyone: ").replace(f"everyone: {results[0].report.train.control}",
                                                             "no one"), *cells)
    t.add_row("shrinkage λ / price of a euro",
              *[f"{r.report.rule.lam:.2f} / {r.report.rule.price:.3g}" for r in results])
    for r in results:
        if r.report.cost_curve is not None:
            t.add_row(f"{r.spec.name}: next euro stops paying at", f"{r.report.cost_curve.break_even_spend:.3f} "
                      f"per person (best on test: {r.report.cost_curve.best_spend:.3f})", *[""] * (len(results) - 1))
    console.print(t)


@app.command()
def train(
    specs: Annotated[list[Path] | None,
                     typer.Argument(help="Model spec YAML files (default: models/pooled_lightgbm.yaml).")] = None,
    data: Annotated[Path | None, typer.Option(help="Folder with the three inputs (default data/sim).")] = None,
    table: Annotated[Path | None, typer.Option(help="A training table written by `uplift features`.")] = None,
    experiment_csv: Annotated[Path | None, typer.Option(
        "--experiment-csv", help="A randomised experiment CSV (e.g. hillstrom.csv).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="Column mapping YAML for --experiment-csv.")] = None,
    outcome: Annotated[str | None,
                       typer.Option(help="Outcome column for --experiment-csv (default: the mapping's first).")] = None,
    feature_set: Annotated[str, typer.Option("--feature-set")] = "default",
    truth: Annotated[Path | None, typer.Option(help="Simulator truth file: adds evaluation-only metrics.")] = None,
    groups_region: Annotated[Path | None, typer.Option(
        "--groups-region", help="Region declaration whose neighbourhoods' deprivation the priority groups read "
        "(default: serve/groups.yaml's deprivation_from; a simulated folder has its "
        "own in truth/region.yaml).")] = None,
    value_policy: Annotated[Path | None, typer.Option(
        "--value-policy", help="A planning policy with a 'value' block (e.g. serve/policy_funnel.yaml): one model "
        "per funnel event, side by side, and the funnel segment table (needs --data).")] = None,
    value_out: Annotated[Path, typer.Option(
        "--value-out", help="Where --value-policy writes the funnel segment table `uplift plan --segments` "
        "reads.")] = Path("out/funnel_segments.parquet"),
    observed_until: Annotated[str | None, typer.Option(
        "--observed-until", help="With --value-policy: where the data end, YYYY-MM-DD[THH:MM] UTC (default: the "
        "last recorded event or assignment); windows ending later are censored.")] = None,
) -> None:
    """Cross-validate each spec, log runs to MLflow, register the models, move the alias past the gate.

    Campaign data (--data, --table) register as ``uplift-<outcome event>``, an experiment file as
    ``uplift-<mapping>-<outcome>``: each use has its own champion.
    """
    from uplift.config import get_settings
    from uplift.data.tableio import read_table
    from uplift.pipeline import load_priority_groups, train_and_log
    from uplift.specs import load_spec, project_root
    from uplift.specs.region import RegionSpec

    policy = disclosure_policy()  # what the runs' released tables may show
    specs = specs or [project_root() / "models" / "pooled_lightgbm.yaml"]
    if value_policy is not None:
        _train_value(specs, value_policy, data=data, table=table, experiment_csv=experiment_csv,
                     feature_set=feature_set, groups_region=groups_region, out=value_out,
                     observed_until=observed_until, disclosure=policy)
        return
    tbl, use, event, source = _load_table(data, table, experiment_csv, mapping, outcome, feature_set)
    truth_frame = read_table(truth) if truth is not None else None
    groups = load_priority_groups(region=load_spec(groups_region, RegionSpec)) if groups_region is not None else None
    results = []
    for spec_path in specs:
        with console.status(f"{spec_path.stem}") as status:
            results.append(
                train_and_log(spec_path, tbl, settings=get_settings(), data_source=source, truth=truth_frame,
                              outcome_event=event, use=use, disclosure=policy, groups=groups,
                              progress=lambda m, s=status, n=spec_path.stem: s.update(f"{n}: {m}"))
            )
    print_results(results)


def _train_value(specs: list[Path], value_policy: Path, *, data: Path | None, table: Path | None,
                 experiment_csv: Path | None, feature_set: str, groups_region: Path | None, out: Path,
                 observed_until: str | None, disclosure) -> None:
    """``uplift train --value-policy``: one model per event of the policy's value, then the funnel table."""
    import pandas as pd

    from uplift.config import get_settings
    from uplift.pipeline import load_feature_set, load_priority_groups
    from uplift.specs import load_spec
    from uplift.specs.planning import PlanningPolicy
    from uplift.specs.region import RegionSpec
    from uplift.valuepipeline import train_value_and_log

    if table is not None or experiment_csv is not None:
        fail("--value-policy trains one model per funnel event from the three inputs: give --data, not --table "
             "or --experiment-csv")
    if len(specs) != 1:
        fail(f"--value-policy trains one model spec per event; got {len(specs)} specs")
    until = None
    if observed_until is not None:
        try:
            until = pd.Timestamp(observed_until)
        except ValueError:
            fail(f"--observed-until {observed_until!r}: expected a date, YYYY-MM-DD[THH:MM]")
        until = until.tz_localize("UTC") if until.tzinfo is None else until.tz_convert("UTC")
    rules = load_spec(value_policy, PlanningPolicy)
    if rules.value is None:
        fail(f"{value_policy}: no 'value' block; expected the funnel events a plan's value adds up "
             "(see serve/policy_funnel.yaml)")
    groups = load_priority_groups(region=load_spec(groups_region, RegionSpec)) if groups_region is not None else None
    folder = data or Path("data/sim")
    with console.status("value along the funnel") as status:
        result = train_value_and_log(specs[0], folder, load_feature_set(feature_set), rules, settings=get_settings(),
                                     segments_out=out, observed_until=until, disclosure=disclosure, groups=groups,
                                     progress=lambda m: status.update(m))
    print_results(list(result.models.values()))
    t = Table(title=f"Value along the funnel (data recorded until {result.observed_until:%Y-%m-%d %H:%M} UTC)")
    for col in ("event", "weight", "window (days)", "rows left out (window not over)", "model"):
        t.add_column(col, justify="left" if col in ("event", "model") else "right")
    for e in result.events:
        m = result.models[e.event]
        mark = "promoted" if m.promoted else "not promoted"
        t.add_row(e.event, f"{e.weight:g}", str(e.attribution_days), f"{result.censored[e.event]:,}",
                  f"{m.registered_model} v{m.version} ({mark})")
    console.print(t)
    console.print(f"funnel segment table: run {result.run_id[:8]}; wrote {out} "
                  f"(plan on it: uplift plan --segments {out} --policy {value_policy})", highlight=False)
