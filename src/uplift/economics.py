"""What a conversion is worth and what a contact costs: the terms of net-value targeting.

An :class:`Economics` holds the value of one conversion (or of one unit of the outcome) and the cost
of one contact with each arm, fixed or read per person from a column, with an optional budget
(average spend per person). It travels with an experiment's training table
(:attr:`uplift.data.trainingtable.TrainingTable.economics`) and with the logged model, so training,
the gate and scoring use the same terms. Net value of arm ``a`` for one person:
``value * uplift_a - (cost_a - cost_control)``; definitions in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.errors import SchemaError

__all__ = ["Economics", "CostSource", "campaign_economics"]

CostSource = float | str
"""A contact cost: a fixed amount, or the name of the column that holds it per person."""


@dataclass(frozen=True)
class Economics:
    """The value of a conversion, the contact cost of every arm and an optional budget.

    Parameters
    ----------
    value : value of one conversion (or one unit of the outcome), > 0.
    costs : per arm (every arm, the control included), a fixed cost >= 0 or the name of a column
        with each person's cost.
    budget_per_person : the most the rule may spend on average per person scored (incremental
        spend over contacting no one); None: no budget.
    """

    value: float
    costs: Mapping[str, CostSource] = field(default_factory=dict)
    budget_per_person: float | None = None

    def __post_init__(self) -> None:
        if not np.isfinite(self.value) or self.value <= 0:
            raise SchemaError(f"economics: value must be a finite number > 0, got {self.value!r}")
        for arm, cost in self.costs.items():
            if not isinstance(cost, str) and (not np.isfinite(cost) or cost < 0):
                raise SchemaError(f"economics: cost of arm {arm!r} must be a number >= 0 or a column name, "
                                  f"got {cost!r}")
        if self.budget_per_person is not None and not self.budget_per_person > 0:
            raise SchemaError(f"economics: budget_per_person must be > 0, got {self.budget_per_person!r}")

    @classmethod
    def free(cls, arms: tuple[str, ...]) -> Economics:
        """No costs, a conversion worth 1: the net-value rule is then the conversion rule."""
        return cls(value=1.0, costs={a: 0.0 for a in arms})

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns per-person costs are read from (each once, in declaration order)."""
        return tuple(dict.fromkeys(c for c in self.costs.values() if isinstance(c, str)))

    @property
    def is_free(self) -> bool:
        """Every cost is a fixed 0."""
        return all(not isinstance(c, str) and c == 0 for c in self.costs.values())

    def cost_matrix(self, frame: pd.DataFrame, arms: tuple[str, ...], *, source: str = "rows") -> pd.DataFrame:
        """Each row's contact cost of every arm in ``arms`` (columns named by arm; an arm without a declared
        cost costs 0).

        Raises
        ------
        SchemaError
            A cost column is missing, or holds a value that is not a finite number >= 0.
        """
        out = {}
        for arm in arms:
            cost = self.costs.get(arm, 0.0)
            if isinstance(cost, str):
                if cost not in frame.columns:
                    raise SchemaError(f"{source}: missing column {cost!r} with the contact cost of arm {arm!r}")
                values = pd.to_numeric(frame[cost], errors="coerce").to_numpy(float)
                bad = ~np.isfinite(values) | (values < 0)
                if bad.any():
                    first = int(np.flatnonzero(bad)[0])
                    raise SchemaError(f"{source}: column {cost!r} (cost of arm {arm!r}): expected numbers >= 0; "
                                      f"{int(bad.sum())} row(s) break it, first at row {first} "
                                      f"({frame[cost].iloc[first]!r})")
                out[arm] = values
            else:
                out[arm] = np.full(len(frame), float(cost))
        return pd.DataFrame(out, index=frame.index)

    def incremental_costs(self, frame: pd.DataFrame, arms: tuple[str, ...], control: str, *,
                          source: str = "rows") -> pd.DataFrame:
        """Per row and treatment arm, its cost over the control's (``cost_a - cost_control``)."""
        full = self.cost_matrix(frame, (control, *arms), source=source)
        return full[list(arms)].sub(full[control], axis=0)

    def to_dict(self) -> dict:
        """A JSON-able form (logged with the model)."""
        return {"value": self.value, "costs": dict(self.costs), "budget_per_person": self.budget_per_person}

    @classmethod
    def from_dict(cls, data: Mapping) -> Economics:
        return cls(value=float(data["value"]), costs=dict(data.get("costs", {})),
                   budget_per_person=data.get("budget_per_person"))


def campaign_economics(catalogue, value: float, arms: tuple[str, ...], control: str) -> Economics:
    """A campaign's economics: every ``message@channel`` arm costs its channel's base cost per contact
    (:attr:`uplift.specs.planning.ChannelCost.unit_cost`), the control nothing; a conversion is worth ``value``.

    Raises
    ------
    SchemaError
        An arm's channel is not in the catalogue.
    """
    from uplift.data.vocabulary import split_arm

    costs: dict[str, CostSource] = {control: 0.0}
    for arm in arms:
        if arm == control:
            continue
        channel = split_arm(arm)[1]
        if channel not in catalogue.channels:
            raise SchemaError(f"cost catalogue: arm {arm!r} is sent on channel {channel!r}, which has no price; "
                              f"priced channels: {sorted(catalogue.channels)}")
        costs[arm] = catalogue.channels[channel].unit_cost
    return Economics(value=value, costs=costs)
