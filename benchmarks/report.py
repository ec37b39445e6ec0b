"""The benchmark report: Markdown tables and PNG figures from the results of the three benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["METRIC_DEFINITIONS", "decision_summary", "markdown_table", "render_report", "write_figures"]

METRIC_DEFINITIONS = """\
Definitions (exact formulas in `docs/metrics.md`; code in `uplift.modeling.metrics` and `uplift.modeling.policyvalue`):

- **Qini** (per arm, against the control, on the rows of that arm or the control, pairwise-IPW weighted): signed
  area between the Qini curve `Q(k) = Y_t(k) - Y_c(k) N_t(k)/N_c(k)` (divided by the total weight `W`) and the
  straight line to its end point, over the population fraction. **Unit: incremental conversions per person**; 0 for a
  random ranking. This is *not* causalml's `qini_score` (which divides the curve by `|Q(N)|`) nor scikit-uplift's
  `qini_auc_score` (a share of the perfect curve's area); `docs/metrics.md` gives the exact conversions.
- **AUUC**: the same area for the uplift (gain) curve `G(k) = (Y_t(k)/N_t(k) - Y_c(k)/N_c(k)) (N_t(k)+N_c(k))`, with
  the random line subtracted (causalml's `auuc_score` does not subtract it: a random ranking scores 0.5 there).
- **Policy value**: self-normalised (Hajek) inverse-propensity estimate of the outcome rate if everyone got the
  policy's arm, from the rows whose randomised arm matches it; 95% interval from the influence function. Differences
  between two policies use the paired influence function (much narrower than two separate intervals).
- **Share of the oracle** (simulator): true incremental conversions of a plan's contacts (true segment effects =
  mean over the segment's person-waves of the simulator's true `P(arm) - P(holdout)`) divided by those of the oracle
  plan (the same solver on the true effects, same budget, costs and policy)."""


def markdown_table(frame: pd.DataFrame, formats: Mapping[str, str | Callable[[object], str]] | None = None) -> str:
    """``frame`` as a GitHub Markdown table; ``formats`` maps a column to a format spec or a function."""
    formats = dict(formats or {})

    def cell(column: str, value: object) -> str:
        fmt = formats.get(column)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "-"
        if callable(fmt):
            return fmt(value)
        if fmt:
            return format(value, fmt)
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    align = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns) + "|"
    body = ["| " + " | ".join(cell(c, v) for c, v in zip(frame.columns, row, strict=True)) + " |"
            for row in frame.itertuples(index=False, name=None)]
    return "\n".join([header, align, *body])


def _pm(mean: float, sd: float, scale: float = 1000.0, digits: int = 2) -> str:
    sd_text = "-" if not np.isfinite(sd) else f"{sd * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {sd_text}"


def _ci(value: float, lo: float, hi: float, scale: float = 100.0, digits: int = 2) -> str:
    a, b, c = (round(x * scale, digits) + 0.0 for x in (value, lo, hi))  # + 0.0: a rounded -0 shows as 0
    return f"{a:.{digits}f} [{b:.{digits}f}, {c:.{digits}f}]"


def _targeting_section(result, figures: dict[str, str]) -> list[str]:
    from benchmarks.targeting import LEARNER_NOTES

    s = result.settings
    out = ["## 1. Targeting quality on a real experiment", "",
           f"Data: `{s.csv}` with mapping `{s.mapping}`; {s.repeats} repeats x {s.folds} folds stratified by arm and "
           f"outcome, the same folds for every learner; LightGBM on {s.threads} thread(s) per fit."
           + (f" Sample of {s.rows:,} rows." if s.rows else ""), "",
           "| learner | what it is |", "|---|---|"]
    out += [f"| {name} | {LEARNER_NOTES[name]} |" for name in s.learners]
    for outcome, info in result.info.items():
        arms = result.arms[result.arms["outcome"] == outcome]
        wide = arms.assign(qini=[_pm(m, v) for m, v in zip(arms["qini_mean"], arms["qini_sd"], strict=True)],
                           auuc=[_pm(m, v) for m, v in zip(arms["auuc_mean"], arms["auuc_sd"], strict=True)])
        table = wide.pivot(index="learner", columns="arm", values=["qini", "auuc"])
        table.columns = [f"{metric} {arm}" for metric, arm in table.columns]
        table = table.reindex([n for n in s.learners if n in table.index]).reset_index()
        secs = result.seconds[result.seconds["outcome"] == outcome].set_index("learner")["seconds"]
        table["fit+predict s (all folds)"] = table["learner"].map(secs)
        effects = ", ".join(f"{a} {v * 100:+.2f} pp" for a, v in info["mean_effects"].items())
        out += ["", f"### Outcome `{outcome}` ({info['rows']:,} rows, base rate {info['base_rate']:.2%}, "
                    f"average effects: {effects})", "",
                "Qini and AUUC per arm, x 1000 (incremental conversions per 1,000 people), mean ± sd over the "
                f"{s.repeats * s.folds} held-out folds:", "",
                markdown_table(table, {"fit+predict s (all folds)": ".1f"})]
        if f"targeting_{outcome}" in figures:
            out += ["", f"![Qini per learner and arm, {outcome}]({figures[f'targeting_{outcome}']})"]
        single = result.single_arm[result.single_arm["outcome"] == outcome]
        best = info["best_single_arm"]
        rows = [{"policy": p, "value % [95% CI]": _ci(v, lo, hi)}
                for p, v, lo, hi in single[["policy", "value", "lo", "hi"]].itertuples(index=False)]
        out += ["", "Every single-arm policy (IPW value on all rows, % of people with the outcome):", "",
                markdown_table(pd.DataFrame(rows))]
        pol = result.policies[result.policies["outcome"] == outcome]
        rows = []
        for learner in s.learners:
            part = pol[pol["learner"] == learner].set_index("policy")
            if part.empty:
                continue
            t, a = part.loc["targeted"], part.loc["argmax"]
            rows.append({
                "learner": learner,
                "argmax value %": _ci(a["value"], a["lo"], a["hi"]),
                f"argmax - {best} (pp)": _ci(a["diff"], a["diff_lo"], a["diff_hi"]),
                "argmax deviates": f"{a['share_deviating']:.0%}",
                "shrunk value %": _ci(t["value"], t["lo"], t["hi"]),
                f"shrunk - {best} (pp)": _ci(t["diff"], t["diff_lo"], t["diff_hi"]),
                "mean λ": f"{t['lam']:.2f}",
                "shrunk deviates": f"{t['share_deviating']:.0%}",
            })
        out += ["", f"Held-out value of each learner's best-arm policy (out-of-fold predictions; the shrinkage factor "
                    f"λ of the targeted policy is chosen for each fold on the other folds' out-of-fold rows; means "
                    f"over repeats, 95% CI; `{best}` is the best single arm in hindsight, which favours it):", "",
                markdown_table(pd.DataFrame(rows))]
        if result.net is not None:
            out += _net_lines(result, outcome)
    return out


def _net_lines(result, outcome: str) -> list[str]:
    """Per cost level: net value per 1,000 people of every rule, and the reference rule minus each (paired)."""
    s, net = result.settings, result.net[result.net["outcome"] == outcome]
    reference = f"{s.learners[0]}:targeted"
    out = ["", f"**Net value** (a conversion worth {s.net.value:g}, each contact with a treatment arm costing the "
               f"amount below, no contact free). Per cost: IPW net value per 1,000 people on the out-of-fold rows "
               f"(means over repeats, 95% CI); `<learner>:targeted` is our net-value rule on that learner's "
               f"estimates (λ chosen per fold on the other folds by net value), `<learner>:argmax` the arm of "
               f"largest estimated net value (none when none pays), `all:<arm>` everyone gets the arm "
               f"(`all:{result.info[outcome]['control']}`: no one). `{reference} - policy` is paired on the same rows."]
    for cost, part in net.groupby("cost", sort=False):
        rows = [{"policy": p.policy, "net value / 1,000 [95% CI]": _ci(p.value, p.lo, p.hi, 1000.0, 1),
                 "spend / person": f"{p.spend:.3f}",
                 f"{reference} - policy": _ci(-p.diff, -p.diff_hi, -p.diff_lo, 1000.0, 1),
                 "mean λ": "" if pd.isna(p.lam) else f"{p.lam:.2f}"}
                for p in part.itertuples(index=False)]
        fixed = part[part["policy"].str.startswith("all:")]
        peers = part[part["policy"].str.endswith(":argmax") & ~part["policy"].str.startswith(f"{s.learners[0]}:")]
        ours = part.set_index("policy").loc[reference, "value"]
        best_fixed = fixed.loc[fixed["value"].idxmax()]
        verdict = (f"{reference} {'>=' if ours >= best_fixed['value'] else '<'} the best fixed rule "
                   f"`{best_fixed['policy']}` ({1000 * (ours - best_fixed['value']):+.1f} per 1,000)")
        if len(peers):
            beaten = int((peers["value"] < ours).sum())
            verdict += f"; above {beaten} of {len(peers)} peers' argmax"
        out += ["", f"Cost per contact {cost:g}: {verdict}.", "", markdown_table(pd.DataFrame(rows))]
    return out


def _decisions_section(result, figures: dict[str, str]) -> list[str]:
    s = result.settings
    plans = result.plans
    out = ["## 2. Decisions on the simulator: plans against the oracle", "",
           f"Worlds: {s.people:,} people x {s.waves} waves, seeds {list(s.seeds)}; pooled model validated with "
           f"{s.folds} folds; targetable segments (age band x gender x municipality, anonymity floor applied); "
           f"budgets = {', '.join(f'{b:.0%}' for b in s.budget_shares)} of the cost of reaching every reachable "
           "person of every segment once on every channel. Policy: `serve/policy.yaml` with its channel minimums "
           "and maximums and its coverage floors scaled to the simulated population (they are written for 100,000 "
           "people); `no_exploration` is the same policy without the 10% Thompson exploration; `conversion_floors` "
           "is that with the spend floors as shares of expected conversions instead (held in expectation), "
           "`conversion_floors_90` the same floors held with 90% confidence under the effects' uncertainty; "
           "`without_<floor>` is the shipped policy without that floor. "
           "The oracle plans with the same policy on the true effects (where the floors hold exactly).", ""]
    wide = plans.pivot_table(index=["policy", "seed", "budget_share", "budget"], columns="plan",
                             values="share_of_oracle").reset_index()
    conv = plans[plans["plan"] == "oracle"].set_index(["policy", "seed", "budget"])["true_conversions"]
    recommended = plans[plans["plan"] == "recommended"].set_index(["policy", "seed", "budget"])
    planned = {k: f"{r.planned_conversions:.1f} [{r.planned_lo:.1f}, {r.planned_hi:.1f}]"
               for k, r in zip(recommended.index, recommended.itertuples(), strict=True)}
    truth_rec, status = recommended["true_conversions"], recommended["status"]
    keys = list(zip(wide["policy"], wide["seed"], wide["budget"], strict=True))
    table = pd.DataFrame({
        "policy": wide["policy"], "seed": wide["seed"],
        "budget": [f"€{b:,.0f} ({share:.0%})" for b, share in zip(wide["budget"], wide["budget_share"], strict=True)],
        "recommended": wide["recommended"], "status": [status[k] for k in keys],
        "even": wide["even"], "single best message": wide["single_best_message"],
        "recommended: planned conv. [interval]": [planned[k] for k in keys],
        "recommended: true conv.": [truth_rec[k] for k in keys],
        "oracle: true conv.": [conv[k] for k in keys],
    })
    pct = "{:.1%}".format
    out += ["True incremental conversions as a share of the oracle plan's (`status` of the recommended plan: "
            "`infeasible` = the policy's rules conflict at that budget, e.g. a channel minimum above the budget; "
            "the plan then names the conflict and relaxes it as little as it can, and so does the oracle; the "
            "planned conversions come with the plan's interval at the policy's coverage):", "",
            markdown_table(table, {"recommended": pct, "even": pct, "single best message": pct,
                                   "recommended: true conv.": ".1f",
                                   "oracle: true conv.": ".1f"})]
    summary = decision_summary(plans)
    for r in summary[summary["seed"] == "all"].itertuples(index=False):
        out += ["", f"- `{r.policy}`: recommended plan at **{r.mean_share:.1%}** of the oracle on average "
                    f"(min {r.min_share:.1%}, max {r.max_share:.1%}); goal >= 95%: "
                    f"{'met' if r.min_share >= 0.95 else 'not met'}. The plan's interval for its incremental "
                    f"conversions covered its true conversions in {r.intervals_covering} of {r.plans} plans "
                    f"(planned / true: {r.planned_over_true_min:.2f} to {r.planned_over_true_max:.2f})."]
    out += ["", "Per seed and over all seeds (`mean_share_feasible`: over the budgets where the policy could hold, "
                "status `optimal`; `intervals_covering`: plans whose interval covered their true conversions; "
                "planned / true: what the plans expected over what they bought):", "",
            markdown_table(summary, {"mean_share": pct, "mean_share_feasible": pct, "min_share": pct,
                                     "max_share": pct, "plans": "d", "intervals_covering": "d",
                                     "planned_over_true_min": ".2f", "planned_over_true_max": ".2f"})]
    out += _gain_lines(plans)
    out += _floor_price_lines(plans)
    if "decisions" in figures:
        out += ["", f"![Share of the oracle by budget]({figures['decisions']})"]
    fl = result.floors
    fl = fl[fl["plan"].isin(["recommended", "oracle"])]
    status = plans.set_index(["policy", "seed", "budget", "plan"])["status"]
    fl = fl.assign(feasible=status.reindex(pd.MultiIndex.from_frame(fl[["policy", "seed", "budget", "plan"]]))
                   .to_numpy() == "optimal")
    fl = fl.assign(held_feasible=fl["holds"] & fl["feasible"])
    summary = fl.groupby(["policy", "plan", "floor", "kind", "min_share"], sort=False).agg(
        min_true_share=("true_share", "min"), max_shortfall=("shortfall", "max"),
        held=("holds", "sum"), cases=("holds", "size"), held_feasible=("held_feasible", "sum"),
        feasible=("feasible", "sum")).reset_index()
    out += ["", "Fairness floors re-checked under the truth (over seeds and budgets; a spend or contact floor does not "
                "depend on the effects, a conversion floor does; `held` counts shares >= the floor - 1e-6, out of "
                "`cases`; `held_feasible` the same out of the `feasible` plans, status "
                "`optimal`, where the rules could "
                "all hold (an infeasible plan relaxes them); a coverage floor's share is its "
                "worst area's contacts over "
                "its minimum, held within the rounding of contacts to whole people):", "",
            markdown_table(summary, {"min_share": ".0%", "min_true_share": ".2%", "max_shortfall": ".4%"})]
    est = result.estimates
    out += ["", "How good the segment estimates were (targetable cells, truth = mean true effect over the cell's "
                "person-waves; `persona_mix_used`: whether the personas' split-half signal reached the spec's bar, "
                "so the cells were calibrated against the blend of the model and their persona mix; the last "
                "columns: how often the persona segments' 80% intervals cover their truth):", "",
            markdown_table(est, {"corr": ".2f", "mean_abs_error": ".5f", "mean_sd": ".5f",
                                 "true_sd_across_cells": ".5f", "coverage_80": ".0%", "persona_coverage_80": ".0%",
                                 "full_reach_spend": ",.0f", "equivalent_noise_ratio": ".2f"})]
    out += _frontier_lines(result)
    out += _gap_lines(result)
    return out


def decision_summary(plans: pd.DataFrame) -> pd.DataFrame:
    """Per policy and seed, then per policy over all seeds (``seed`` "all"): the recommended plans'
    mean share of the oracle, the same over the budgets where the policy could hold (status
    ``optimal``; at a budget under a channel minimum every plan, the oracle's too, relaxes it), how
    many plans' intervals covered their true conversions, the range of planned / true conversions,
    and the highest share (last column).

    ``plans``: :attr:`benchmarks.decisions.DecisionResult.plans` (one row per policy, seed, budget and plan).
    """
    rec = plans[plans["plan"] == "recommended"].assign(
        feasible_share=lambda f: f["share_of_oracle"].where(f["status"] == "optimal"),
        covered=lambda f: (f["planned_lo"] <= f["true_conversions"]) & (f["true_conversions"] <= f["planned_hi"]),
        ratio=lambda f: f["planned_conversions"] / f["true_conversions"])

    def summarise(frame: pd.DataFrame) -> dict[str, float | int]:
        return {
            "plans": len(frame), "mean_share": frame["share_of_oracle"].mean(),
            "mean_share_feasible": frame["feasible_share"].mean(), "min_share": frame["share_of_oracle"].min(),
            "intervals_covering": int(frame["covered"].sum()),
            "planned_over_true_min": frame["ratio"].min(), "planned_over_true_max": frame["ratio"].max(),
            "max_share": frame["share_of_oracle"].max()}

    rows = []
    for policy, mine in rec.groupby("policy", sort=False):
        for seed, one in mine.groupby("seed", sort=True):
            rows.append({"policy": policy, "seed": str(seed), **summarise(one)})
        rows.append({"policy": policy, "seed": "all", **summarise(mine)})
    return pd.DataFrame(rows)


def _floor_price_lines(plans: pd.DataFrame) -> list[str]:
    """What each shipped floor costs in truth: the shipped policy against the same without the floor."""
    variants = [p for p in plans["policy"].unique() if str(p).startswith("without_")]
    if not variants or "shipped" not in set(plans["policy"]):
        return []
    keys = ["seed", "budget"]

    def rows_of(policy: str, plan: str) -> pd.DataFrame:
        return plans[(plans["policy"] == policy) & (plans["plan"] == plan)].set_index(keys)

    rec_with, oracle_with = rows_of("shipped", "recommended"), rows_of("shipped", "oracle")
    rows = []
    for variant in variants:
        rec_without, oracle_without = rows_of(variant, "recommended"), rows_of(variant, "oracle")
        best = oracle_without["true_conversions"].reindex(rec_with.index)
        rows.append({
            "floor": str(variant).removeprefix("without_"),
            "with: share of its oracle": rec_with["share_of_oracle"].mean(),
            "without: share of its oracle": rec_without["share_of_oracle"].mean(),
            "with: share of the oracle without it": (rec_with["true_conversions"] / best).mean(),
            "true cost, oracle (conv.)": (oracle_without["true_conversions"]
                                         - oracle_with["true_conversions"].reindex(oracle_without.index)).mean(),
            "true cost, recommended (conv.)": (rec_without["true_conversions"]
                                              - rec_with["true_conversions"].reindex(rec_without.index)).mean(),
            "plans": len(rec_with),
        })
    pct = "{:.1%}".format
    return ["", "Each shipped floor's price in truth: the shipped policy against the same policy without that floor "
                "(`with: share of the oracle without it`: the recommended plan's true conversions over those of the "
                "oracle plan that need not hold the floor; the costs are mean true conversions given up, over seeds "
                "and budgets):", "",
            markdown_table(pd.DataFrame(rows), {"with: share of its oracle": pct, "without: share of its oracle": pct,
                                                "with: share of the oracle without it": pct,
                                                "true cost, oracle (conv.)": ".1f",
                                                "true cost, recommended (conv.)": ".1f", "plans": "d"})]


def _gain_lines(plans: pd.DataFrame) -> list[str]:
    """Did the plans' paired gains over the reference plans hold under the truth?"""
    if "planned_gain" not in plans.columns:
        return []
    keys = ["policy", "seed", "budget"]
    truth = plans[plans["plan"] == "recommended"].set_index(keys)["true_conversions"]
    refs = plans[plans["plan"].isin(["even", "single_best_message"])].copy()
    refs["true_gain"] = truth.reindex(pd.MultiIndex.from_frame(refs[keys])).to_numpy() - refs["true_conversions"]
    refs["covered"] = (refs["gain_lo"] <= refs["true_gain"]) & (refs["true_gain"] <= refs["gain_hi"])
    table = refs.groupby(["policy", "plan"], sort=False).agg(
        plans=("covered", "size"), interval_covers_true_gain=("covered", "sum"),
        truly_better=("true_gain", lambda g: int((g > 0).sum())),
        clearly_better_claimed=("gain_lo", lambda lo: int((lo > 0).sum())),
        mean_probability_better=("probability_better", "mean"),
        planned_gain=("planned_gain", "mean"), true_gain=("true_gain", "mean")).reset_index()
    return ["", "What the recommended plan said it adds over each reference plan (paired: both scored on the same "
                "estimates, `PlanResult.gains`), against the truth: how often the gain's interval covered the true "
                "gain, how often the plan truly bought more, how often it claimed to be clearly better (interval "
                "above 0; otherwise the plan notes that the estimates cannot tell it from the reference), and "
                "the mean claimed probability of buying more; gains are means over seeds and budgets, in "
                "incremental conversions:", "",
            markdown_table(table, {"mean_probability_better": ".0%", "planned_gain": ".1f", "true_gain": ".1f"})]


def _gap_lines(result) -> list[str]:
    """Where the gap lives: plans from half-true tables, next to ours."""
    gap = result.gap
    if gap is None or gap.empty:
        return []
    ours = result.plans[(result.plans["plan"] == "recommended") & (result.plans["policy"] == "no_exploration")]
    table = gap.pivot_table(index="seed", columns="variant", values="share_of_oracle", aggfunc="mean")
    table.insert(0, "ours", ours.groupby("seed")["share_of_oracle"].mean())
    columns = ["ours", "true_arm_levels", "true_deviations", "exact_persona_effects", "fitted_true_form"]
    table = table.reset_index()[["seed", *[c for c in columns if c in table.columns]]]
    if len(table) > 1:
        table = pd.concat([table.astype({"seed": str}),
                           table.drop(columns="seed").mean().to_frame().T.assign(seed="all")],
                          ignore_index=True)
    pct = "{:.1%}".format
    lines = ["", "Where the gap lives (plans without exploration, mean share of the oracle over the budgets): a cell's "
                 "effect is its arm's level (the mean over the arm's cells) plus its deviation from it. "
                 "`true_arm_levels`: our estimates with every arm's level replaced by the truth's (what is left "
                 "is the cost of our deviations); `true_deviations`: the truth with our arm levels (the cost of "
                 "our levels); `exact_persona_effects`: each cell's persona mix with the true persona effects "
                 "(how far the personas alone would carry the plans if their effects were known)."]
    if "fitted_true_form" in table.columns:
        lines[-1] += (" `fitted_true_form`: the simulator's own response model, every declared number fitted to "
                      "the world's rows by maximum likelihood, given each row's true persona "
                      "(`uplift.evaluation.trueform`): estimates that know everything about the world but its "
                      "numbers, which no product estimator does; how far this much history can carry the plans.")
    return [*lines, "", markdown_table(table, {c: pct for c in columns})]


def _frontier_lines(result) -> list[str]:
    """The noise frontier: what share of the oracle each estimation noise allows, and where ours sits."""
    from uplift.evaluation import target_ratio

    front = result.frontier
    if front is None or front.empty:
        return []
    s = result.settings
    table = front.groupby("noise_ratio").agg(
        corr=("corr", "mean"), mean_share=("share_of_oracle", "mean"), min_share=("share_of_oracle", "min"),
        max_share=("share_of_oracle", "max")).reset_index()
    ours = result.plans[(result.plans["plan"] == "recommended") & (result.plans["policy"] == "no_exploration")]
    est = result.estimates.set_index("seed")
    lines = []
    for seed, mine in ours.groupby("seed"):
        own = front[front["seed"] == seed]
        ratio = float(est.loc[seed, "equivalent_noise_ratio"])
        by_ratio = own.groupby("noise_ratio")["share_of_oracle"].mean()
        inside = np.isfinite(ratio) and by_ratio.index.min() <= ratio <= by_ratio.index.max()
        reference = float(np.interp(ratio, by_ratio.index, by_ratio.to_numpy())) if inside else float("nan")
        needed = target_ratio(own, 0.95)
        # the history rule only within the measured ratios: far outside them it is no estimate at all
        history = (ratio / needed) ** 2 if inside and np.isfinite(needed) and needed > 0 else float("nan")
        lines.append(
            f"- seed {seed}: our estimates (corr {est.loc[seed, 'corr']:.2f}) are as noisy as reference estimates "
            f"at ratio {ratio:.2f}, "
            + (f"which reach {reference:.1%} of the oracle" if inside else "outside the measured ratios")
            + f"; our plans without exploration reach {mine['share_of_oracle'].mean():.1%}. 95% needs "
            + ("less noise than any measured ratio" if not np.isfinite(needed) else
               f"ratio <= {needed:.2f} (corr >= {1 / np.sqrt(1 + needed**2):.2f})"
               + (f": {history:.1f}x this history ({history * s.people:,.0f} people x {s.waves} waves) if the "
                  "noise shrank like 1 / sqrt(history)" if np.isfinite(history) else "")))
    return ["", "Noise frontier (`uplift.evaluation.noise_frontier`): plans without exploration from reference "
                "estimates = each cell's true effect + Gaussian noise of sd `ratio x` the true effects' spread "
                "across cells, shrunk by the exact posterior weight; "
                f"{s.frontier_repeats} draw(s) per ratio, seeds and budgets as above. It separates the planner's "
                "shortfall from the data's: a share reached at our own equivalent noise is what estimates of "
                "that quality allow. Not a bound for every estimator (correlated or uneven errors plan "
                "differently).", "",
            markdown_table(table, {"noise_ratio": ".2f", "corr": ".2f", "mean_share": ".1%", "min_share": ".1%",
                                   "max_share": ".1%"}), "", *lines]


def _speed_section(result, figures: dict[str, str]) -> list[str]:
    s = result.settings
    steps = result.steps.copy()
    steps["rows"] = steps["rows"].map(lambda v: "-" if pd.isna(v) else f"{int(v):,}")
    out = ["## 3. Speed and memory", "",
           f"Target {s.rows:,} person-waves; every step in its own child process (peak RSS is that process's, "
           "imports included; time is the step alone). The machine is shared (2 cores).", "",
           markdown_table(steps, {"seconds": ".2f", "seconds_all_rows": ".1f", "peak_rss_mb": ",.0f"})]
    if "speed" in figures:
        out += ["", f"![Training time]({figures['speed']})"]
    for name, text in result.outputs.items():
        out += ["", f"### {name.capitalize()}", "", text]
    return out


def render_report(
    *, header: list[str], targeting=None, decisions=None, speed=None, figures: dict[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
) -> str:
    """The whole Markdown report; a section that was not run is replaced by the reason in ``skipped``."""
    figures = figures or {}
    skipped = dict(skipped or {})
    lines = [*header, "", METRIC_DEFINITIONS, ""]
    for name, result, render in (("targeting", targeting, _targeting_section),
                                 ("decisions", decisions, _decisions_section),
                                 ("speed", speed, _speed_section)):
        if result is not None:
            lines += render(result, figures) + [""]
        else:
            lines += [f"## {name.capitalize()}", "", f"Not run: {skipped.get(name, 'skipped')}.", ""]
    return "\n".join(lines)


def write_figures(out: Path, *, targeting=None, decisions=None, speed=None) -> dict[str, str]:
    """PNG figures next to the report; returns name -> file name (relative to ``out``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = {}
    if targeting is not None:
        for outcome in targeting.info:
            arms = targeting.arms[targeting.arms["outcome"] == outcome]
            learners = [n for n in targeting.settings.learners if n in set(arms["learner"])]
            arm_names = list(dict.fromkeys(arms["arm"]))
            fig, ax = plt.subplots(figsize=(8, 4))
            width = 0.8 / max(1, len(arm_names))
            for j, arm in enumerate(arm_names):
                part = arms[arms["arm"] == arm].set_index("learner").reindex(learners)
                ax.bar(np.arange(len(learners)) + j * width, part["qini_mean"] * 1000, width,
                       yerr=part["qini_sd"].fillna(0) * 1000, label=arm, capsize=3)
            ax.set_xticks(np.arange(len(learners)) + width * (len(arm_names) - 1) / 2, learners, rotation=30,
                          ha="right")
            ax.set_ylabel("Qini x 1000 (mean ± sd over folds)")
            ax.set_title(f"Targeting quality, outcome {outcome}")
            ax.axhline(0, color="black", linewidth=0.5)
            ax.legend()
            fig.tight_layout()
            name = f"targeting_{outcome}.png"
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
            written[f"targeting_{outcome}"] = name
    if decisions is not None:
        plans = decisions.plans[decisions.plans["policy"] == "shipped"]
        fig, ax = plt.subplots(figsize=(7, 4))
        for plan_name in ("recommended", "even", "single_best_message"):
            part = plans[plans["plan"] == plan_name].groupby("budget_share")["share_of_oracle"].mean()
            ax.plot(part.index * 100, part.to_numpy() * 100, marker="o", label=plan_name)
        ax.axhline(95, color="grey", linestyle="--", linewidth=0.8, label="goal 95%")
        ax.set_xlabel("budget, % of the full-reach spend")
        ax.set_ylabel("true conversions, % of the oracle")
        ax.set_title("Plans under the simulator's truth (mean over seeds)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "decisions.png", dpi=110)
        plt.close(fig)
        written["decisions"] = "decisions.png"
    if speed is not None:
        steps = speed.steps
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{s}: {w[:40]}" for s, w in zip(steps["step"], steps["what"], strict=True)]
        ax.barh(labels, steps["seconds_all_rows"])
        ax.set_xlabel(f"seconds for {speed.settings.rows:,} person-waves (forest scaled linearly)")
        ax.invert_yaxis()
        fig.tight_layout()
        fig.savefig(out / "speed.png", dpi=110)
        plt.close(fig)
        written["speed"] = "speed.png"
    return written
