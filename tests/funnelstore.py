"""A funnel segment table with a known truth, logged as ``uplift train --value-policy`` logs one, for the service
tests: two events, registrations as the served model's segment table says and applications a fifth of them
(``APPLICATION_SHARE``), so the value ``1 x registration + 5 x application`` is exactly twice the registrations."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from uplift.allocation.effects import shared_error_columns
from uplift.funnel.value import describe_value
from uplift.specs.planning import PlanningPolicy
from uplift.valuepipeline import FUNNEL_ARTIFACT, FUNNEL_EVENTS_TAG

__all__ = ["APPLICATION_SHARE", "TWO_EVENTS", "log_funnel_table", "two_event_funnel_table"]

TWO_EVENTS = [{"event": "registration", "weight": 1, "attribution_days": 28},
              {"event": "application", "weight": 5, "attribution_days": 70}]
APPLICATION_SHARE = 0.2
"""Every cell's effect (and error) on applications is this share of its effect on registrations."""


def two_event_funnel_table(segments: pd.DataFrame) -> pd.DataFrame:
    """The value's rows, then registration's (``segments`` as they are), then application's (scaled)."""
    scaled = ["effect", "effect_sd", "lo", "hi", *shared_error_columns(segments)]
    scaled = [c for c in scaled if c in segments.columns]

    def rows(outcome: str, factor: float, weight: float, days: float) -> pd.DataFrame:
        out = segments.copy()
        out[scaled] = out[scaled] * factor
        return out.assign(outcome=outcome, weight=weight, attribution_days=days)

    value_factor = 1 + 5 * APPLICATION_SHARE
    return pd.concat([rows("value", value_factor, float("nan"), float("nan")),
                      rows("registration", 1.0, 1.0, 28.0),
                      rows("application", APPLICATION_SHARE, 5.0, 70.0)], ignore_index=True)


def log_funnel_table(store: Path, table: pd.DataFrame, experiment: str = "api") -> str:
    """Log ``table`` in a ``funnel-value`` run of ``experiment`` in ``store``'s SQLite MLflow store; its run id."""
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    events = PlanningPolicy(value=TWO_EVENTS).value_events
    run = client.create_run(client.get_experiment_by_name(experiment).experiment_id, run_name="funnel-value",
                            tags={"funnel_value": describe_value(events), "funnel_event_models": json.dumps({}),
                                  FUNNEL_EVENTS_TAG: json.dumps(TWO_EVENTS)})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(FUNNEL_ARTIFACT).name
        table.to_parquet(path, index=False)
        client.log_artifact(run.info.run_id, str(path), str(Path(FUNNEL_ARTIFACT).parent))
    client.set_terminated(run.info.run_id)
    return run.info.run_id
