"""What ``uplift run`` ends with: what a campaign planner needs from the model it just trained.

The champion and why it serves, the best segments of every message with their effects and intervals
(as the disclosure policy releases them), a plan at a budget beside the even and single-best-message
plans with the price of every rule, the plan's hand-off folder, and how to open the planner's page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

from uplift.cli.app import console, disclosure_policy

__all__ = ["best_segments_per_message", "print_planner_view"]


def best_segments_per_message(released: pd.DataFrame, per_message: int = 3) -> pd.DataFrame:
    """Per message, its ``per_message`` targetable segments of largest effect (each on its best channel), from a
    released segment table; columns ``message``, ``segment``, ``channel``, ``size``, ``effect``, ``lo``, ``hi``."""
    cells = released[released["kind"] == "targetable"] if "kind" in released.columns else released
    cells = cells.dropna(subset=["effect"])
    best = cells.sort_values("effect", ascending=False).drop_duplicates(["message", "segment"])
    top = best.groupby("message", sort=True).head(per_message)
    return top.sort_values(["message", "effect"], ascending=[True, False])[
        ["message", "segment", "channel", "size", "effect", "lo", "hi"]].reset_index(drop=True)


def _champion_line(name: str, alias: str) -> str:
    """``name@alias = vN: the gate's reason``."""
    from mlflow import MlflowClient

    from uplift.config import get_settings, tracking_uri
    from uplift.tracking.registry import champion_version

    uri = tracking_uri(get_settings())
    version = champion_version(MlflowClient(uri, registry_uri=uri), name, alias)
    reason = version.tags.get("gate.reason") or version.description or "no reason recorded"
    return f"[bold]{name}@{alias}[/] = version {version.version}: {reason}"


def print_planner_view(*, name: str, alias: str, budget: float, wave: int, out: Path, audience: Path | None) -> None:
    """Print the planner's view of the champion and write its plan (``out/plan.csv``) and hand-off (``out/handoff``)."""
    from uplift.cli.plan import plan_command
    from uplift.cli.segments import load_released_model_segments

    console.rule("[bold]For the campaign planner")
    console.print(_champion_line(name, alias), highlight=False)
    policy = disclosure_policy()
    released, label = load_released_model_segments(alias, policy)
    top = best_segments_per_message(released)
    t = Table(title=f"{label}: the best segments of each message (incremental registrations per 1,000 contacts, "
                    "80% interval; people rounded to "
                    f"{policy.rounding_base})")
    for col in ("message", "segment", "best channel", "people", "effect /1,000", "interval"):
        t.add_column(col, justify="right" if col in ("people", "effect /1,000", "interval") else "left")
    for r in top.itertuples():
        people = "" if pd.isna(r.size) else f"{int(r.size):,}"
        t.add_row(r.message, r.segment, r.channel, people, f"{1000 * r.effect:+.2f}",
                  f"[{1000 * r.lo:+.2f}, {1000 * r.hi:+.2f}]")
    console.print(t)
    plan_command(budget=budget, model=alias, segments=None, kind="targetable", costs=None, policy=None, set_=None,
                 strict=False, prices=True, top=10, out=out / "plan.csv", handoff=out / "handoff", wave=wave,
                 start=None, audience=audience)
    console.print("Plan with it in a browser: TOKEN=$(uplift token) && echo \"$TOKEN\" && "
                  "UPLIFT_SERVICE_TOKENS=\"anna:$TOKEN\" uplift serve, then open http://127.0.0.1:8000/ui/ and sign in "
                  "with that token.", markup=False, highlight=False)
