"""``uplift experiment design`` and ``uplift experiment analyze``: randomise a wave, then measure it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from uplift.cli.app import app, console, disclosure_policy, fail
from uplift.errors import DataError, SchemaError
from uplift.specs.experiment import ExperimentSpec
from uplift.specs.planning import CostCatalogue

__all__ = [
    "experiment_app",
    "WaveDesign",
    "design_wave",
    "read_plan",
    "PlanFile",
    "plan_effects",
    "channel_costs",
    "analysis_frame",
    "expected_shares",
    "COVARIATES",
    "beside",
    "released_summary",
]

experiment_app = typer.Typer(help="Design a randomised wave and analyse it afterwards.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")

COVARIATES = ("prior_waves", "prior_contacts", "funnel_stage")
"""Pre-wave covariates for the CUPED adjustment, computed as of each person's assignment."""


# -- design -------------------------------------------------------------------------------
@dataclass(frozen=True)
class WaveDesign:
    """A designed wave: the assignment, its exposures rows, design shares, power and stratum balance."""

    assignment: pd.DataFrame
    exposures: pd.DataFrame
    shares: pd.Series
    power: pd.DataFrame
    balance: pd.DataFrame


def channel_costs(spec: ExperimentSpec, costs: CostCatalogue) -> dict[str, float]:
    """Unit cost (EUR per contact) of every channel the spec's arms use, from the cost catalogue."""
    from uplift.data.vocabulary import split_arm

    channels = dict.fromkeys(split_arm(a)[1] for a in spec.arms)
    return {c: costs.channel(c).unit_cost for c in channels}


def plan_effects(cells: pd.DataFrame, spec: ExperimentSpec, *, source: str = "plan") -> dict[str, float]:
    """The effect the plan expects of each treatment arm of ``spec``: its expected conversions per contact.

    Arms of the spec the plan gives no contacts are left out (no expectation is known for them).

    Raises
    ------
    SchemaError
        The plan has no ``arm``, ``contacts`` or ``expected_conversions`` column.
    """
    missing = [c for c in ("arm", "contacts", "expected_conversions") if c not in cells.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing}; expected the cells written by `uplift plan`")
    arm = cells["arm"].astype(str)
    contacts = pd.to_numeric(cells["contacts"], errors="coerce").fillna(0.0).groupby(arm).sum()
    conversions = pd.to_numeric(cells["expected_conversions"], errors="coerce").fillna(0.0).groupby(arm).sum()
    return {a: float(conversions[a] / contacts[a]) for a in spec.arms if contacts.get(a, 0.0) > 0}


def design_wave(
    spec: ExperimentSpec,
    audience: pd.DataFrame,
    *,
    costs: CostCatalogue,
    base_rate: float,
    weights: dict[str, float] | None = None,
) -> WaveDesign:
    """Randomise ``audience`` to the spec's arms and compute what the design can detect.

    Parameters
    ----------
    spec : the experiment.
    audience : validated audience rows (not modified).
    costs : the cost catalogue; each channel's unit cost becomes ``cost_eur`` of its exposures.
    base_rate : expected holdout conversion rate, for the power table.
    weights : the plan's contacts per arm when ``spec.arm_weights`` is ``from_plan``.
    """
    from uplift.design import assign, design_shares, power_table, stratum_balance, to_exposures

    shares = design_shares(spec, weights)
    assignment = assign(audience, spec, weights=weights)
    return WaveDesign(
        assignment=assignment,
        exposures=to_exposures(assignment, spec, channel_costs(spec, costs)),
        shares=shares,
        power=power_table(spec, base_rate, len(audience), weights),
        balance=stratum_balance(assignment, shares),
    )


def beside(path: Path, tag: str, suffix: str = ".csv") -> Path:
    """``out/wave5.parquet`` + ``power`` -> ``out/wave5.power.csv``."""
    return path.with_name(f"{path.stem}.{tag}{suffix}")


@dataclass(frozen=True)
class PlanFile:
    """A plan read from a file: its cells, and the model version that made it when the file says so."""

    cells: pd.DataFrame
    model: str = ""


def read_plan(path: Path) -> PlanFile:
    """The cells of a plan written by ``uplift plan`` (.csv or .parquet), or of a stored plan as the service
    returns it (``GET /plans/{id}`` saved as .json: its ``cells``, ``model_name`` and ``model_version``).

    Raises
    ------
    SchemaError
        The JSON is not a plan (no ``cells`` list).
    """
    import json

    from uplift.data.tableio import read_table

    if path.suffix.lower() != ".json":
        return PlanFile(read_table(path))
    try:
        body = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: not a readable JSON plan ({exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("cells"), list):
        raise SchemaError(f"{path}: field 'cells' is missing or not a list; expected a stored plan (GET /plans/{{id}})")
    model = f"{body.get('model_name', '')}/{body.get('model_version', '')}" if "model_version" in body else ""
    return PlanFile(pd.DataFrame(body["cells"]), model)


@experiment_app.command("design")
def design_command(
    spec: Annotated[Path, typer.Option(help="Experiment spec (experiments/*.yaml).")],
    audience: Annotated[Path, typer.Option(help="Audience to randomise (.parquet or .csv).")],
    out: Annotated[Path, typer.Option(help="Assignment file: exposures rows (.parquet or .csv).")],
    plan: Annotated[Path | None, typer.Option(help="A plan (`uplift plan` cells, or a stored plan saved as .json): "
                                              "the wave is designed from its cells.")] = None,
    enrolments: Annotated[Path | None, typer.Option(help="Funnel events: people who registered before the wave "
                                                    "are left out of a design from a plan.")] = None,
    keep_registered: Annotated[bool, typer.Option(help="Keep people who already registered.")] = False,
    segments: Annotated[Path | None, typer.Option(help="Segment spec the plan was made with "
                                                  "(default features/segments.yaml).")] = None,
    costs: Annotated[Path | None, typer.Option(help="Cost catalogue (default serve/costs.yaml).")] = None,
    base_rate: Annotated[float,
                         typer.Option("--base-rate", help="Expected holdout conversion rate, for power.")] = 0.002,
) -> None:
    """Deterministic salted-hash assignment, power table, stratum balance; written and logged to MLflow.

    With --plan: each planned segment is randomised on its own to the plan's contacts per arm and its holdout."""
    from uplift.config import get_settings
    from uplift.data.contracts import AUDIENCE, validate
    from uplift.data.tableio import read_table, write_table
    from uplift.design.release import released_balance, released_power
    from uplift.disclosure import release_count
    from uplift.scoring import file_digest
    from uplift.specs import load_spec, project_root
    from uplift.tracking.jobs import DesignInputs, log_design

    exp = load_spec(spec, ExperimentSpec)
    catalogue = load_spec(costs or project_root() / "serve" / "costs.yaml", CostCatalogue)
    people = validate(read_table(audience), AUDIENCE, source=str(audience))
    if plan is not None:
        _design_from_plan(exp, spec, people, audience, plan, catalogue, out, enrolments=enrolments,
                          keep_registered=keep_registered, segments=segments)
        return
    if exp.weights_from_plan:
        raise DataError(f"{spec}: arm_weights: from_plan needs --plan (the plan the wave is designed from)")
    result = design_wave(exp, people, costs=catalogue, base_rate=base_rate)
    policy = disclosure_policy()
    power = released_power(result.power, policy)
    balance = released_balance(result.balance, result.assignment, policy)
    write_table(result.exposures, out)  # the hand-off: one row per person and the arm to reach them with
    write_table(power, beside(out, "power"))
    write_table(balance, beside(out, "balance"))
    inputs = DesignInputs(spec_path=spec, spec_name=exp.name, wave=exp.wave, salt=exp.salt, audience=audience,
                          digest=file_digest(audience), out=out)
    run_id = log_design(get_settings(), inputs=inputs, base_rate=base_rate, shares=result.shares, power=power,
                        balance=balance, plan=None, people=release_count(len(result.assignment), policy))
    console.print(_power_table(exp, power, base_rate))
    _print_design_counts(exp, result, balance, policy)
    console.print(f"wrote {out}, {beside(out, 'power')}, {beside(out, 'balance')}; MLflow run {run_id[:8]} "
                  "in experiment 'uplift-experiments'")


def _power_table(exp: ExperimentSpec, power: pd.DataFrame, base_rate: float) -> Table:
    """The released power table as printed: per arm its share, people, people needed, detectable effect, power."""
    t = Table(title=f"{exp.name}: power per arm at a holdout rate of {1000 * base_rate:.2f} per 1,000 "
                    f"(declared effect {1000 * exp.minimum_detectable_effect:.2f} per 1,000)")
    for col in ("arm", "share", "people", "needed", "detectable /1,000", "power", "ok"):
        t.add_column(col, justify="left" if col == "arm" else "right")
    for r in power.itertuples():
        t.add_row(r.arm, f"{r.arm_share:.1%}", _count(r.n_arm_available), f"{r.n_arm_needed:,}",
                  f"{1000 * r.mde_available:.2f}" if r.mde_available == r.mde_available else "-",
                  "-" if pd.isna(r.power_available) else f"{r.power_available:.2f}",
                  "yes" if r.sufficient else "[red]no[/]")
    return t


def _print_design_counts(exp: ExperimentSpec, result, balance: pd.DataFrame, policy) -> None:
    """The wave's people in and out of the holdout and its spend (released counts), and the strata's balance."""
    from uplift.disclosure import release_count

    counts = result.assignment["arm"].value_counts()
    holdout = int(counts.get(exp.control, 0))
    console.print(f"{_count(release_count(len(result.assignment), policy))} people: "
                  f"{_count(release_count(holdout, policy))} in {exp.control!r}, "
                  f"{_count(release_count(len(result.assignment) - holdout, policy))} over {len(exp.arms)} arms; "
                  f"spend EUR {result.exposures['cost_eur'].sum():,.0f} (people rounded to {policy.rounding_base}, "
                  f"none below {policy.threshold})")
    worst = balance["p_value"].min() if len(balance) else float("nan")
    hidden = int(balance["p_value"].isna().sum())
    console.print(f"{len(balance)} strata; smallest balance p-value {worst:.3g} (reported, not forced)"
                  + (f"; {hidden} strata with an arm of fewer than {policy.threshold} people not tested in the "
                     "written table" if hidden else ""))


def _design_from_plan(exp: ExperimentSpec, spec_path: Path, people: pd.DataFrame, audience: Path, plan: Path,
                      catalogue: CostCatalogue, out: Path, *, enrolments: Path | None, keep_registered: bool,
                      segments: Path | None) -> None:
    """``uplift experiment design --plan``: write the wave's exposures, the plan check and the postcodes."""
    from uplift.config import get_settings
    from uplift.design.fromplan import design_from_plan
    from uplift.disclosure import release_count
    from uplift.pipeline import load_segment_spec
    from uplift.scoring import file_digest
    from uplift.tracking.jobs import DesignInputs, log_plan_design

    registered = None if keep_registered else _registered_before(exp, enrolments)
    design = design_from_plan(read_plan(plan).cells, people, exp,
                              segment_spec=load_segment_spec(str(segments) if segments else "segments"),
                              costs=catalogue, registered=registered, source=str(plan))
    _write_plan_design(design.exposures, design.check, out)
    policy = disclosure_policy()
    figures = _plan_design_figures(design, exp, policy)
    inputs = DesignInputs(spec_path=spec_path, spec_name=exp.name, wave=exp.wave, salt=exp.salt, audience=audience,
                          digest=file_digest(audience), out=out)
    run_id = log_plan_design(get_settings(), inputs=inputs, plan=plan, check=design.check,
                             figures={k: (float("nan") if v is None else v) for k, v in figures.items()})
    ex, check = design.exposures, design.check
    held_out = release_count(len(ex) - int((ex["arm"] != exp.control).sum()), policy)
    short = check[check["rounding"] != 0]
    console.print(f"{exp.name}: {_count(figures['people'])} people in {check['segment'].nunique()} planned segments, "
                  f"{_count(figures['contacts'])} contacted on {int((check['arm'] != exp.control).sum())} cells, "
                  f"{_count(held_out)} held out inside their cells; spend EUR "
                  f"{figures['spend_eur']:,.2f} of the plan's EUR {figures['planned_spend_eur']:,.2f}; "
                  f"{int(figures['exploration_contacts']):,} contacts are exploration")
    console.print(f"{len(short)} of {len(check)} cells differ from the plan (segments with fewer eligible people "
                  f"than planned, scaled down): {int(figures['contacts_short_of_plan']):,} contacts fewer in all"
                  if len(short) else "every cell has the plan's contacts and spend exactly")
    console.print("already registered and left out: " + ("none (--keep-registered)" if registered is None else
                  f"{_count(figures['excluded_registered'])} people (rounded to {policy.rounding_base}, none below "
                  f"{policy.threshold})"))
    console.print(f"wrote {out}, {beside(out, 'plan_check')}, {beside(out, 'postcodes')}; MLflow run {run_id[:8]} "
                  "in experiment 'uplift-experiments'")


def _registered_before(exp: ExperimentSpec, enrolments: Path | None):
    """The people who registered before the wave starts (left out of a design from a plan)."""
    from uplift.data.contracts import ENROLMENTS, validate
    from uplift.data.tableio import read_table
    from uplift.design.fromplan import registered_people

    if enrolments is None:
        raise DataError("--plan: pass --enrolments (people who already registered are left out) "
                        "or --keep-registered")
    events = validate(read_table(enrolments), ENROLMENTS, source=str(enrolments))
    return registered_people(events, exp.start)


def _write_plan_design(ex: pd.DataFrame, check: pd.DataFrame, out: Path) -> None:
    """The wave's exposures at ``out``; beside it the plan check and each designed cell's postcodes."""
    from uplift.data.tableio import write_table

    areas = (ex.loc[ex["area"] != "", ["design_cell", "arm", "area"]].drop_duplicates()
             .rename(columns={"design_cell": "segment", "area": "postcode"})
             .sort_values(["segment", "arm", "postcode"]))
    write_table(ex, out)
    write_table(check, beside(out, "plan_check"))
    write_table(areas, beside(out, "postcodes"))


def _plan_design_figures(design, exp: ExperimentSpec, policy) -> dict[str, float | None]:
    """A design from a plan in released totals: people, contacts, spend against the plan's, contacts short of
    the plan, people left out as registered, exploration contacts (None: a count withheld)."""
    from uplift.disclosure import release_count

    ex, check = design.exposures, design.check
    return {"people": release_count(len(ex), policy),
            "contacts": release_count(int((ex["arm"] != exp.control).sum()), policy),
            "spend_eur": float(check["spend"].sum()), "planned_spend_eur": float(check["planned_spend"].sum()),
            "contacts_short_of_plan": float(-check.loc[check["rounding"] < 0, "rounding"].sum()),
            "excluded_registered": release_count(design.excluded_registered, policy),
            "exploration_contacts": float(check["exploration_contacts"].sum())}


# -- analysis -----------------------------------------------------------------------------
def _group_membership(frame: pd.DataFrame, people: pd.DataFrame | None, path: Path | None) -> dict[str, np.ndarray]:
    """Each priority group's members among the wave's rows (none without an audience or declared groups)."""
    from uplift.pipeline import load_priority_groups
    from uplift.segments.composition import group_members

    declared = load_priority_groups(path)
    if people is None or declared is None:
        return {}
    rows = (people.set_index(people["person_id"].astype(str)).reindex(frame["person_id"].astype(str))
            .reset_index(drop=True))
    members = group_members(rows, declared)
    return {name: members[name].to_numpy(dtype=bool) for name in members.columns}


def _promised_section(frame: pd.DataFrame, plan_file: PlanFile, exp: ExperimentSpec, plan: Path, out: Path,
                      run_id: str, *, model: str, people: pd.DataFrame | None, groups_path: Path | None) -> None:
    """What the plan promised per cell, message and priority group against what the wave delivered: written
    beside ``out`` (released), printed, and added to the analysis run ``run_id`` with the plan's model."""
    from uplift.data.tableio import atomic_path, write_table
    from uplift.design.promised import promised_and_delivered
    from uplift.design.release import released_outcome
    from uplift.tracking.jobs import log_plan_outcome
    from uplift.tracking.plots import calibration_figure

    outcome = promised_and_delivered(frame, plan_file.cells, outcome_col=exp.outcome, control=exp.control,
                                     groups=_group_membership(frame, people, groups_path), level=1 - exp.alpha,
                                     source=str(plan))
    released = released_outcome(outcome, disclosure_policy())
    for name in ("cells", "messages", "groups", "total"):
        write_table(getattr(released, name), beside(out, f"plan_{name}"))
    figure = calibration_figure(released.cells, released.calibration, f"{exp.name}: calibration over the planned cells")
    with atomic_path(beside(out, "calibration", ".png")) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    log_plan_outcome(run_id, outcome=released, model=model, plan=plan)
    _print_promised(released, model)


def _fig(v: float, lo: float, hi: float) -> str:
    return "withheld" if pd.isna(v) else f"{v:,.1f} [{lo:,.1f}, {hi:,.1f}]"


def _print_promised(released, model: str) -> None:
    level = f"{released.level:.0%}"
    for name, key in (("message", "messages"), ("group", "groups")):
        table = getattr(released, key)
        if table.empty:
            continue
        t = Table(title=f"Promised against delivered, per {name} (incremental conversions)")
        for col in (name, "promised (plan's interval)", f"delivered ({level})"):
            t.add_column(col, justify="left" if col == name else "right")
        for r in table.itertuples():
            t.add_row(str(getattr(r, name)), _fig(r.promised, r.promised_lo, r.promised_hi),
                      _fig(r.realised, r.realised_lo, r.realised_hi))
        console.print(t)
    cells = released.cells
    shown = int(cells["realised"].notna().sum())
    cal = released.calibration
    console.print(f"{shown} of {len(cells)} planned cells have their delivered figures shown (the others rest on "
                  "too few people or converters)")
    console.print("calibration over the cells: " + ("too few cells or no spread in the promises" if pd.isna(cal.slope)
                  else f"slope {cal.slope:.2f} [{cal.slope_lo:.2f}, {cal.slope_hi:.2f}], intercept "
                       f"{1000 * cal.intercept:+.2f} [{1000 * cal.intercept_lo:+.2f}, {1000 * cal.intercept_hi:+.2f}] "
                       f"per 1,000 contacts ({cal.level:.0%}; {cal.cells} cells; slope 1 and intercept 0: on target)"))
    console.print(f"In total, {released.sentence()}; plan made by model {model or 'unknown'}.", highlight=False)



def expected_shares(spec: ExperimentSpec, wave_rows: pd.DataFrame) -> pd.Series:
    """Design shares for the SRM check: the spec's declared weights; for a wave designed from a plan (or with
    ``from_plan`` weights) those recorded in the exposures, each design cell's weighted by its rows."""
    from uplift.design import design_shares
    from uplift.features.propensity import DESIGN_CELL, design_keys, design_table

    if not spec.weights_from_plan and DESIGN_CELL not in wave_rows.columns:
        return design_shares(spec)
    table = design_table(wave_rows, spec.all_arms, source=f"exposures of wave {spec.wave}")
    sizes = pd.Series(1.0, index=design_keys(wave_rows)).groupby(level=[0, 1]).sum().reindex(table.index)
    return (table.mul(sizes.to_numpy(), axis=0).sum() / sizes.sum()).rename("share")


def analysis_frame(
    spec: ExperimentSpec,
    exposures: pd.DataFrame,
    enrolments: pd.DataFrame,
    *,
    audience: pd.DataFrame | None = None,
    segment_by: str | None = None,
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """One row per person randomised in ``spec.wave``: arm, 0/1 outcome, pre-wave covariates, segment.

    The outcome is ``spec.outcome`` within ``spec.attribution_days`` of the person's ``assigned_at``
    (:func:`uplift.features.outcome.label_outcome`); covariates (:data:`COVARIATES`) come from
    :func:`uplift.features.build_features` with history strictly before ``assigned_at``. Covariates
    that are constant in the wave carry no information and are left out.

    Returns
    -------
    (frame, covariates) : the frame (columns ``person_id, arm``, the outcome named ``spec.outcome``, covariates,
        ``design_cell`` for a wave designed from a plan, ``segment`` when asked)
        and the covariate names kept.

    Raises
    ------
    DataError
        The exposures have no rows of the wave, or arms the spec does not declare.
    SchemaError
        ``segment_by`` is neither an audience column (``age_band`` from ``age``) nor an exposures column.
    """
    from uplift.features import build_features
    from uplift.features.outcome import label_outcome
    from uplift.features.propensity import DESIGN_CELL, design_cells
    from uplift.specs.features import FeatureSetSpec, OutcomeSpec

    rows = exposures[exposures["wave"] == spec.wave].reset_index(drop=True)
    if rows.empty:
        waves = sorted(exposures["wave"].unique().tolist())
        raise DataError(f"exposures: no rows of wave {spec.wave} (experiment {spec.name!r}); waves present: {waves}")
    unknown = sorted(set(rows["arm"]) - set(spec.all_arms))
    if unknown:
        raise DataError(f"exposures of wave {spec.wave}: arm(s) {unknown} are not in experiment {spec.name!r}")
    keys = pd.DataFrame({"person_id": rows["person_id"], "wave": rows["wave"], "as_of": rows["assigned_at"]})
    outcome = OutcomeSpec(event=spec.outcome, attribution_days=spec.attribution_days)
    people = audience if audience is not None else pd.DataFrame({"person_id": rows["person_id"].unique()})
    covariate_set = FeatureSetSpec(name="pre-wave covariates", control_arm=spec.control, features=COVARIATES)
    x = build_features(keys, people, exposures, enrolments, covariate_set)
    kept = tuple(c for c in COVARIATES if np.nanstd(x[c].to_numpy(float)) > 0)
    frame = pd.concat(
        [rows[["person_id", "arm"]], pd.DataFrame({spec.outcome: label_outcome(keys, enrolments, outcome)}),
         x[list(kept)]],
        axis=1,
    )
    if DESIGN_CELL in rows.columns:  # a wave designed from a plan: each person's planned segment
        frame[DESIGN_CELL] = design_cells(rows)
    if segment_by:
        frame["segment"] = _segment_values(rows, audience, segment_by)
    return frame, kept


def _segment_values(rows: pd.DataFrame, audience: pd.DataFrame | None, column: str) -> np.ndarray:
    from uplift.design import age_band

    if audience is not None and (column in audience.columns or (column == "age_band" and "age" in audience.columns)):
        values = audience[column] if column in audience.columns else age_band(audience["age"])
        lookup = pd.Series(values.to_numpy(), index=audience["person_id"].to_numpy())
        return lookup.reindex(rows["person_id"].to_numpy()).astype(str).to_numpy()
    if column in rows.columns:
        return rows[column].astype(str).to_numpy()
    hint = "" if audience is not None else " (pass --audience for audience columns such as age_band)"
    raise SchemaError(f"--segment-by {column!r}: not a column of the audience or the exposures{hint}")


def _count(n) -> str:
    """A released count for a table: '-' where suppressed."""
    return "-" if n is None or pd.isna(n) else f"{int(n):,}"


def released_summary(analysis, policy) -> str:
    """The plain-language summary of a released analysis (:func:`uplift.design.release.released_analysis`):
    arms whose effects are withheld are named, not described; nothing but that when the control's figures
    are withheld (every effect rests on them)."""
    import dataclasses

    from uplift.design import summary_text

    arms = analysis.arms
    control = arms[arms["arm"] == analysis.control]
    reason = (f"rest on fewer than {policy.threshold} people, converters or people who did not convert, "
              "or would give such a figure back")
    if control.empty or control["n"].isna().any() or control["rate"].isna().any():
        return (f"Outcome {analysis.outcome!r}: the {analysis.control}'s figures {reason}; every effect is measured "
                "against them, so none is shown.")
    shown = (arms["arm"] == analysis.control) | arms["estimate"].notna()
    segments = analysis.segments
    if segments is not None:
        segments = segments[(segments["arm"] == analysis.control) | segments["estimate"].notna()]
    text = summary_text(dataclasses.replace(analysis, arms=arms[shown].reset_index(drop=True), segments=segments))
    withheld = arms.loc[~shown, "arm"].tolist()
    if withheld:
        text += f"\nNot shown: {', '.join(withheld)}: their figures {reason}."
    return text


def _value_section(exp: ExperimentSpec, exposures: pd.DataFrame, enrolments: pd.DataFrame, value_policy: Path,
                   out: Path, policy) -> None:
    """Each event of the value in its own window (exact intervals) and the value per arm (Welch interval),
    as released under ``policy``; the value table is written beside ``out``."""
    from uplift.data.tableio import write_table
    from uplift.design import Inference, analyze
    from uplift.design.funnelvalue import funnel_outcomes, released_value_differences, value_differences
    from uplift.design.release import released_analysis
    from uplift.funnel import last_recorded
    from uplift.funnel.value import describe_value
    from uplift.specs import load_spec
    from uplift.specs.planning import PlanningPolicy

    events = load_spec(value_policy, PlanningPolicy).value_events
    if events is None:
        fail(f"{value_policy}: no 'value' block; expected the funnel events the value adds up")
    rows = exposures[exposures["wave"] == exp.wave].reset_index(drop=True)
    until = last_recorded(enrolments["occurred_at"], exposures["assigned_at"])
    outcomes = funnel_outcomes(rows, enrolments, events, until)
    inference = Inference.from_spec(exp)
    level = f"{1 - inference.alpha:.0%}"
    t = Table(title=f"Each event in its own window against {exp.control} (exact {level} intervals; data recorded "
                    f"until {until:%Y-%m-%d})")
    for col in ("event", "arm", "effect /1,000", "interval", "people left out (window not over)"):
        t.add_column(col, justify="left" if col in ("event", "arm") else "right")
    for e in events:
        frame = outcomes.frame.dropna(subset=[e.event]).astype({e.event: int})
        if not (frame["arm"] == exp.control).any():
            t.add_row(e.event, "-", "-", "-", f"{outcomes.censored[e.event]:,}")
            continue
        arms = released_analysis(analyze(frame, outcome_col=e.event, control=exp.control, inference=inference),
                                 policy).treatment
        for r in arms.itertuples():
            shown = pd.notna(r.effect)
            t.add_row(e.event, r.arm, f"{1000 * r.effect:+.2f}" if shown else "withheld",
                      f"[{1000 * r.ci_low:+.2f}, {1000 * r.ci_high:+.2f}]" if shown else "",
                      f"{outcomes.censored[e.event]:,}")
    console.print(t)
    table = released_value_differences(value_differences(outcomes.frame, control=exp.control, alpha=inference.alpha,
                                                         events=[e.event for e in events]), exp.control, policy)
    v = Table(title=f"The value per person against {exp.control} ({describe_value(events)}; Welch {level} interval, "
                    "people with every window over)")
    for col in ("arm", "people", "value /1,000", "difference /1,000", "interval"):
        v.add_column(col, justify="left" if col == "arm" else "right")
    for r in table.itertuples():
        n = "-" if pd.isna(r.n) else f"{int(r.n):,}"
        value = "withheld" if pd.isna(r.value_per_person) else f"{1000 * r.value_per_person:.1f}"
        diff = "" if r.arm == exp.control else ("withheld" if pd.isna(r.difference) else f"{1000 * r.difference:+.1f}")
        interval = "" if r.arm == exp.control or pd.isna(r.ci_low) else \
            f"[{1000 * r.ci_low:+.1f}, {1000 * r.ci_high:+.1f}]"
        v.add_row(r.arm, n, value, diff, interval)
    console.print(v)
    path = write_table(table, beside(out, "value"))
    console.print(f"wrote {path}", highlight=False)


@experiment_app.command("analyze")
def analyze_command(
    spec: Annotated[Path, typer.Option(help="Experiment spec (experiments/*.yaml).")],
    exposures: Annotated[Path, typer.Option(help="Exposures including the wave's rows.")],
    enrolments: Annotated[Path, typer.Option(help="Funnel events (outcomes).")],
    audience: Annotated[Path | None, typer.Option(help="Audience (for --segment-by on its columns).")] = None,
    segment_by: Annotated[str | None,
                          typer.Option("--segment-by", help="Also report per value, e.g. age_band.")] = None,
    out: Annotated[Path | None, typer.Option(help="Per-arm results (.csv); default out/analysis_<name>.csv.")] = None,
    plan: Annotated[Path | None, typer.Option(help="Plan cells (`uplift plan` output, or a stored plan as .json): the "
                                              "effect each arm is expected to have, for the too-small-to-detect "
                                              "warnings (default: the spec's minimum_detectable_effect); for a wave "
                                              "designed from it, what it promised per cell against what "
                                              "happened.")] = None,
    plan_model: Annotated[str | None, typer.Option(help="The model version that made the plan (a .json plan "
                                                   "names its own).")] = None,
    groups: Annotated[Path | None, typer.Option(help="Priority groups (default serve/groups.yaml), per group "
                                                "with --plan and --audience.")] = None,
    value_policy: Annotated[Path | None, typer.Option(
        "--value-policy", help="A planning policy with a 'value' block (e.g. serve/policy_funnel.yaml): also each "
        "event's effect in its own window and the effect on the value.")] = None,
) -> None:
    """Per arm (and segment) verdict against the holdout, adjusted for many arms; CUPED where it applies; SRM."""
    from uplift.cli.score import load_history
    from uplift.config import get_settings
    from uplift.data.contracts import AUDIENCE, validate
    from uplift.data.tableio import read_table
    from uplift.design import Inference, analyze
    from uplift.design.release import released_analysis
    from uplift.disclosure import release_count
    from uplift.specs import load_spec
    from uplift.tracking.jobs import AnalysisInputs, log_analysis

    exp = load_spec(spec, ExperimentSpec)
    ex, en = load_history(exposures, enrolments, control=exp.control)
    people = validate(read_table(audience), AUDIENCE, source=str(audience)) if audience is not None else None
    frame, covariates = analysis_frame(exp, ex, en, audience=people, segment_by=segment_by)
    shares = expected_shares(exp, ex[ex["wave"] == exp.wave])
    plan_file = read_plan(plan) if plan is not None else None
    targets = plan_effects(plan_file.cells, exp, source=str(plan)) if plan_file is not None else None
    result = analyze(frame, arm_col="arm", outcome_col=exp.outcome, control=exp.control,
                     segment_col="segment" if segment_by else None, covariates=covariates,
                     expected_shares=shares.to_dict(), inference=Inference.from_spec(exp, targets))
    policy = disclosure_policy()
    result = released_analysis(result, policy)
    text = released_summary(result, policy)
    out = out or Path("out") / f"analysis_{exp.name}.csv"
    summary_path = _write_analysis(result, text, out, segment_by)
    inputs = AnalysisInputs(spec_path=spec, spec_name=exp.name, wave=exp.wave, exposures=exposures,
                            enrolments=enrolments, plan=plan)
    run_id = log_analysis(get_settings(), inputs=inputs, analysis=result, out=out, summary=text,
                          people=release_count(len(frame), policy))
    console.print(text, highlight=False)
    if plan_file is not None and "design_cell" in frame.columns:
        _promised_section(frame, plan_file, exp, plan, out, run_id, model=plan_model or plan_file.model,
                          people=people, groups_path=groups)
    if value_policy is not None:
        _value_section(exp, ex, en, value_policy, out, policy)
    used = int((result.treatment["method"] == "cuped").sum())
    console.print(f"\ncovariates (CUPED): {', '.join(covariates) or 'none (constant in this wave)'}, used for "
                  f"{used} of {len(result.treatment)} arms; {exp.multiplicity} adjustment; "
                  f"wrote {out}" + (f", {beside(out, 'segments')}" if result.segments is not None else "")
                  + f", {summary_path}; MLflow run {run_id[:8]} in experiment 'uplift-experiments'")


def _write_analysis(result, text: str, out: Path, segment_by: str | None) -> Path:
    """The released per-arm table at ``out``, the per-segment one (its column named ``segment_by``) and the
    summary beside it; returns the summary's path."""
    from uplift.data.tableio import atomic_path, write_table

    write_table(result.arms, out)
    if result.segments is not None:
        write_table(result.segments.rename(columns={"segment": segment_by}), beside(out, "segments"))
    summary_path = beside(out, "summary", ".txt")
    with atomic_path(summary_path) as tmp:
        tmp.write_text(text + "\n")
    return summary_path
