"""``uplift plan``: split a budget over segment x message x channel from the champion's segment effects."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from uplift.cli.app import app, console, disclosure_policy, fail

__all__ = ["plan_command", "parse_overrides"]


def parse_overrides(items: list[str] | None) -> dict:
    """``["holdout_share=0.2", "min_spend.flyer=800"]`` -> ``{"holdout_share": 0.2, "min_spend.flyer": 800}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set {item!r}: expected key=value (e.g. holdout_share=0.2)")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _eur(x: float) -> str:
    """EUR for a table: '-' for NaN (no figure), '∞' for no finite amount."""
    if math.isnan(x):
        return "-"
    return "∞" if x == float("inf") else f"€{x:,.0f}"


def _eur_range(x: float, lo: float, hi: float) -> str:
    """A cost per conversion with its interval, e.g. '€33 [€27, €42]' or '€30 [€16, ∞]'."""
    return f"{_eur(x)} [{_eur(lo)}, {_eur(hi)}]"


def _rules_table(prices, level: str, *, on_value: bool = False) -> Table:
    """The price of every rule: whether it binds, its dual value and what holding it costs (in expected value for
    a plan on value)."""
    t = Table(title=f"The rules and their price (expected {'value' if on_value else 'conversions'})")
    for col in ("rule", "as declared", "status", "per unit", "unit", f"cost ({level}, paired)"):
        t.add_column(col, justify="left" if col in ("rule", "as declared", "status", "unit") else "right")
    for p in prices:
        cost = ("-" if math.isnan(p.cost) else
                f"{p.cost:,.1f} [{p.lo:,.1f}, {p.hi:,.1f}] ({p.cost_share:.0%})" if p.status == "binds" else "0")
        t.add_row(p.rule, p.stated, p.status, f"{p.dual:+,.2f}", p.unit, cost)
    return t


def _events_table(per_event, rules, level: str) -> Table:
    """A value plan's expected incremental conversions per funnel event, with their intervals."""
    from uplift.funnel.value import describe_value

    t = Table(title=f"The recommended plan's incremental conversions per event ({describe_value(rules.value_events)})")
    for col in ("event", "weight", "window (days)", f"incr. conversions ({level})", "value"):
        t.add_column(col, justify="left" if col == "event" else "right")
    for e in per_event:
        t.add_row(e.event, f"{e.weight:g}", str(e.attribution_days), f"{e.expected:.1f} [{e.lo:.1f}, {e.hi:.1f}]",
                  f"{e.weight * e.expected:.1f}")
    return t


def _places(audience: Path, table, threshold: int):
    """The places of ``table``'s segments in the ``audience`` file (:func:`uplift.places.places_table`), print units
    of at least the segment spec's ``min_size`` and the disclosure threshold."""
    from uplift.data.tableio import read_table
    from uplift.pipeline import load_priority_groups, load_segment_spec
    from uplift.places import places_table

    spec = load_segment_spec()
    return places_table(read_table(audience), table["segment"].astype(str), spec,
                        min_size=max(spec.min_size, threshold), groups=load_priority_groups(), source=str(audience))


def _plan_places(audience: Path | None, table, threshold: int, *, model: str | None, kind: str):
    """Where a targetable plan's flyers are placed: the ``audience`` file's neighbourhoods when given, else the
    places the ``model``'s training run saved (None: a segments file or a funnel table, which have none); (None,
    "") for flyers per municipality."""
    if kind != "targetable":
        return None, ""
    if audience is not None:
        return _places(audience, table, threshold), str(audience)
    if model is None:
        return None, ""
    from uplift.cli.segments import load_model_places

    places, label = load_model_places(model)
    if places is None:
        console.print("[dim]note:[/] the model's training run saved no places: flyers are planned per municipality "
                      "(give --audience to plan them per neighbourhood)")
    return places, label


def _unit_lines_table(lines, top: int) -> Table:
    """The plan's flyer lines: one print run per unit and message."""
    t = Table(title=f"Print runs planned per neighbourhood: top {min(top, len(lines))} of {len(lines)} "
                    f"(copies {int(lines['copies'].sum()):,})")
    for col in ("channel", "message", "unit", "postcodes", "contacts", "copies", "spend"):
        t.add_column(col, justify="right" if col in ("contacts", "copies", "spend") else "left")
    for r in lines.sort_values("spend", ascending=False).head(top).itertuples():
        t.add_row(r.channel, r.message, r.unit, r.postcodes, f"{r.contacts:,}", f"{r.copies:,}", _eur(r.spend))
    return t


def _cells_table(result, *, title: str, top: int, level: str, unit: str) -> Table:
    """The plan's ``top`` funded cells by spend, each with its interval and cost per conversion."""
    from uplift.allocation import cost_range

    funded = result.cells[result.cells["contacts"] > 0].sort_values("spend", ascending=False)
    t = Table(title=f"Budget split for {title}: top {min(top, len(funded))} of {len(funded)} funded cells")
    for col in ("segment", "arm", "contacts", "spend", f"incr. {unit} ({level})", f"€ / {unit} ({level})",
                f"€ next {unit}"):
        t.add_column(col, justify="left" if col in ("segment", "arm") else "right")
    for r in funded.head(top).itertuples():
        t.add_row(r.segment, r.arm, f"{r.contacts:,}", _eur(r.spend),
                  f"{r.expected_conversions:.1f} [{r.lo:.1f}, {r.hi:.1f}]",
                  _eur_range(r.cost_per_conversion, *cost_range(r.spend, r.lo, r.hi)), _eur(r.marginal_cost))
    return t


def _totals_table(result, *, level: str, unit: str, on_value: bool) -> Table:
    """The recommended plan's totals beside the reference plans', with the paired gain over each."""
    s = Table(title="Totals beside the reference plans")
    for col in ("plan", "spend", "contacts", "holdout", f"incr. {'value' if on_value else 'conversions'} ({level})",
                f"€ / {unit} ({level})", f"€ next {unit}", f"recommended adds ({level}, paired)"):
        s.add_column(col, justify="left" if col == "plan" else "right")
    for name, tot in (("recommended", result.totals), *result.references.items()):
        gain = result.gains.get(name)
        s.add_row(name, _eur(tot.spend), f"{tot.contacts:,}", f"{tot.holdout_people:,}",
                  f"{tot.expected_conversions:.1f} [{tot.lo:.1f}, {tot.hi:.1f}]",
                  _eur_range(tot.cost_per_conversion, tot.cost_per_conversion_lo, tot.cost_per_conversion_hi),
                  _eur(tot.marginal_cost),
                  "" if gain is None else f"{gain.extra_conversions:+.1f} [{gain.lo:+.1f}, {gain.hi:+.1f}], "
                                          f"P(more) {gain.probability_better:.0%}")
    return s


def _show_plan(result, per_event, rules, *, title: str, top: int, on_value: bool) -> None:
    """Print a plan: its funded cells, totals, events, print runs, rule prices, conflicts and notes."""
    level = f"{rules.interval:.0%}"
    unit = "value" if on_value else "conv."
    console.print(_cells_table(result, title=title, top=top, level=level, unit=unit))
    console.print(_totals_table(result, level=level, unit=unit, on_value=on_value))
    if per_event:
        console.print(_events_table(per_event, rules, level))
    if result.unit_lines is not None:
        console.print(_unit_lines_table(result.unit_lines, top))
    if result.rules:
        console.print(_rules_table(result.rules, level, on_value=on_value))
    if result.status != "optimal":
        console.print(f"[bold red]status: {result.status}[/]: the rules conflict; the plan above "
                      "is the closest relaxation")
    for c in result.conflicts:
        console.print(f"[red]conflict:[/] {c}")
    for n in result.notes:
        console.print(f"[dim]note:[/] {n}")


@app.command("plan")
def plan_command(
    budget: Annotated[float, typer.Option(help="Budget in EUR for the next wave.")],
    model: Annotated[str, typer.Option(help="Registry alias or version whose segment table to use.")] = "champion",
    segments: Annotated[Path | None, typer.Option(help="A segment table file instead of the model's (under a "
                                                     "policy with a value block: instead of the latest funnel "
                                                     "table made for it).")] = None,
    kind: Annotated[str, typer.Option(help="Segment kind to plan over: targetable or persona.")] = "targetable",
    costs: Annotated[Path | None, typer.Option(help="Cost catalogue (default serve/costs.yaml).")] = None,
    policy: Annotated[Path | None, typer.Option(help="Planning policy (default serve/policy.yaml).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Policy override key=value (repeatable).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail instead of returning a relaxed plan when rules conflict.")] = False,
    prices: Annotated[bool, typer.Option(help="Price every rule: binds or not, and what holding it costs.")] = True,
    top: Annotated[int, typer.Option(help="Cells to print (all are written).")] = 20,
    out: Annotated[Path,
                   typer.Option(help="Where to write the plan's cells (.csv or .parquet).")] = Path("out/plan.csv"),
    handoff: Annotated[Path | None,
                       typer.Option(help="Also write the hand-off, one file per channel, into this folder.")] = None,
    wave: Annotated[int | None, typer.Option(help="The wave the hand-off is for (utm_campaign=wave-<n>).")] = None,
    start: Annotated[str | None, typer.Option(help="First day of the wave, YYYY-MM-DD (default: today).")] = None,
    audience: Annotated[Path | None, typer.Option(help="The audience file (one row per person) whose "
                                                       "neighbourhoods place the flyers: with targetable segments "
                                                       "the flyers are planned per print unit (neighbourhood) and "
                                                       "message; without it, by the places the model's training "
                                                       "run saved, else per municipality, handed over by the region "
                                                       "declaration's residents.")] = None,
) -> None:
    """Recommend contacts and spend per segment x message x channel under costs, caps and fairness floors."""
    from uplift.allocation import plan
    from uplift.cli.segments import load_model_segments
    from uplift.data.tableio import read_table, write_table
    from uplift.funnel import event_conversions, value_plan_tables
    from uplift.specs import load_spec, project_root
    from uplift.specs.planning import CostCatalogue, PlanningPolicy, apply_overrides

    root = project_root()
    catalogue = load_spec(costs or root / "serve" / "costs.yaml", CostCatalogue)
    policy_path = policy or root / "serve" / "policy.yaml"
    rules = load_spec(policy_path, PlanningPolicy)
    rules = apply_overrides(rules, parse_overrides(set_), source="--set")
    notes: list[str] = []
    if segments is not None:
        table, label = read_table(segments), str(segments)
    elif rules.value is not None:  # a plan on value: the latest funnel table made for the policy's value
        from uplift.config import get_settings
        from uplift.valuepipeline import latest_funnel_table

        table, label, notes = latest_funnel_table(get_settings(), rules.value_events)
    else:
        table, label = load_model_segments(model)
    table = table[table["kind"] == kind] if "kind" in table.columns else table
    threshold = disclosure_policy().threshold
    small = table["size"].to_numpy() < threshold if "size" in table.columns else None
    if small is not None and small.any():  # a plan over a smaller segment would show how many people it has
        console.print(f"[dim]note:[/] {table.loc[small, 'segment'].nunique()} segment(s) of fewer than {threshold} "
                      "people (the disclosure threshold) left out")
        table = table[~small]
    if table.empty:
        fail(f"no {kind} segments in {label}")
    if handoff is not None and wave is None:
        fail("--handoff needs --wave, the wave the plan is for (utm_campaign=wave-<n>)")
    table, events = value_plan_tables(table, rules, source=label)
    places, places_source = _plan_places(audience, table, threshold,
                                         model=model if segments is None and not events else None, kind=kind)
    result = plan(table, budget=budget, costs=catalogue, policy=rules, strict=strict, prices=prices, source=label,
                  policy_source=str(policy_path), places=places, places_source=places_source)
    cells, per_event = event_conversions(result.cells, events, rules) if events else (result.cells, ())
    write_table(cells, out)
    manifest = None
    if handoff is not None:
        from uplift.cli.handoff import write_plan_handoff

        manifest = write_plan_handoff(result.cells, folder=handoff, costs=catalogue, policy=rules, wave=wave,
                                      start=start, audience=audience, unit_lines=result.unit_lines)

    _show_plan(result, per_event, rules, title=f"{_eur(budget)} ({label}, {kind} segments)", top=top,
               on_value=bool(events))
    for n in notes:
        console.print(f"[dim]note:[/] {n}")
    console.print(f"wrote {out}")
    if manifest is not None:
        from uplift.cli.handoff import show_manifest

        show_manifest(manifest, handoff)
