"""Where the service finds the segment table of a plan on value: the latest funnel table made for that value.

The same table ``uplift plan --policy`` finds (:func:`uplift.valuepipeline.find_funnel_run`): the latest
``funnel-value`` run whose events, weights and windows are the policy's, in the experiment the served model was
trained in (``uplift train --value-policy`` logs there too). The run is looked up
again on every new prepared plan (a newer run is used as soon as it is logged); its table is read once per run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pandas as pd

from uplift.specs.planning import ValueEvent

__all__ = ["FunnelTable", "FunnelTables"]

_KEPT = 4
"""Funnel tables kept in memory at most (one per value and run), most recently used first."""


@dataclass(frozen=True)
class FunnelTable:
    """A funnel segment table, the run it comes from, a label for messages and notes on its event models."""

    table: pd.DataFrame
    run_id: str
    label: str
    notes: tuple[str, ...]


class FunnelTables:
    """The funnel segment tables of one MLflow experiment, for the service.

    Parameters
    ----------
    client : an MLflow client on the service's tracking store.
    alias : the alias the notes compare the table's event models with.
    """

    def __init__(self, client, *, alias: str) -> None:
        self.client = client
        self.alias = alias
        self._kept: dict[str, FunnelTable] = {}
        self._experiments: dict[str, str] = {}  # a model's run id -> its experiment's name
        self._lock = threading.Lock()

    def latest(self, events: tuple[ValueEvent, ...], model_run_id: str) -> FunnelTable:
        """The latest funnel table made for ``events`` in the experiment of the run ``model_run_id`` (the
        served model's).

        Raises
        ------
        ModelNotFoundError
            No ``funnel-value`` run for that value in the experiment.
        """
        from uplift.valuepipeline import find_funnel_run, read_funnel_run

        run = find_funnel_run(self.client, self._experiment_of(model_run_id), events)
        run_id = str(run.info.run_id)
        with self._lock:
            hit = self._kept.pop(run_id, None)
            if hit is not None:
                self._kept[run_id] = hit
                return hit
        table, notes = read_funnel_run(self.client, run, self.alias)
        found = FunnelTable(table=table, run_id=run_id, label=f"funnel-value run {run_id[:8]}", notes=tuple(notes))
        with self._lock:
            self._kept[run_id] = found
            while len(self._kept) > _KEPT:
                self._kept.pop(next(iter(self._kept)))
        return found

    def values(self, model_run_id: str) -> list[tuple[ValueEvent, ...]]:
        """Every value the experiment of the served model's run ``model_run_id`` has a funnel table for, the
        latest made first (none when the model has no training run). Asked of the store every time: one query
        over the experiment's ``funnel-value`` runs, so a table logged a moment ago is offered at once."""
        from uplift.errors import ModelNotFoundError
        from uplift.valuepipeline import funnel_values

        try:
            experiment = self._experiment_of(model_run_id)
        except ModelNotFoundError:
            return []
        return funnel_values(self.client, experiment)

    def _experiment_of(self, run_id: str) -> str:
        from uplift.errors import ModelNotFoundError

        if not run_id:
            raise ModelNotFoundError("the served model has no training run, so no experiment to find a funnel "
                                     "segment table in")
        name = self._experiments.get(run_id)
        if name is None:
            name = self.client.get_experiment(self.client.get_run(run_id).info.experiment_id).name
            self._experiments[run_id] = name
        return name
