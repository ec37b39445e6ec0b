"""What a registered model is for, and the registry name that follows from it.

A model trained on the campaign's own data (a feature set, its outcome event) is a *campaign* model:
it has a segment table, and ``uplift plan``, ``uplift segments``, ``uplift score`` and the service
serve it. A model trained on a randomised experiment file (``uplift train --experiment-csv`` with a
column mapping) is an *experiment* model: it scores and ranks people of that experiment, nothing
more. Each use gets its own registered model, so a model trained for one never competes with, nor
replaces, another's champion: ``uplift-<outcome event>`` for the campaign (``uplift-registration``),
``uplift-<mapping>-<outcome>`` for an experiment (``uplift-hillstrom-visit``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from uplift.errors import SpecError

__all__ = ["ModelUse", "campaign_use", "experiment_use", "USE_TAG", "OUTCOME_TAG", "MAPPING_TAG"]

USE_TAG = "uplift.use"
OUTCOME_TAG = "uplift.outcome"
MAPPING_TAG = "uplift.mapping"
"""Tags on the registered model that say what it is for (written when it is first registered)."""


def _slug(text: str, what: str) -> str:
    out = re.sub(r"[^0-9a-z]+", "-", str(text).lower()).strip("-")
    if not out:
        raise SpecError(f"{what} {text!r} gives an empty registered model name; use letters or digits")
    return out


@dataclass(frozen=True)
class ModelUse:
    """What a model is for: the campaign's outcome, or an experiment mapping and its outcome.

    Attributes
    ----------
    kind : ``"campaign"`` or ``"experiment"``.
    outcome : the campaign's outcome event (``registration``) or the experiment's outcome column (``visit``).
    mapping : the experiment's column mapping name (``hillstrom``); None for the campaign.
    """

    kind: Literal["campaign", "experiment"]
    outcome: str
    mapping: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("campaign", "experiment"):
            raise SpecError(f"model use {self.kind!r}: expected 'campaign' or 'experiment'")
        if (self.kind == "experiment") != (self.mapping is not None):
            raise SpecError("an experiment model needs its mapping's name, a campaign model has none")

    @property
    def registered_name(self) -> str:
        """``uplift-<outcome>`` (campaign) or ``uplift-<mapping>-<outcome>`` (experiment)."""
        if self.kind == "campaign":
            return f"uplift-{_slug(self.outcome, 'outcome')}"
        return f"uplift-{_slug(self.mapping, 'mapping')}-{_slug(self.outcome, 'outcome')}"

    def describe(self) -> str:
        """``campaign model (outcome registration)`` / ``experiment model (mapping hillstrom, outcome visit)``."""
        if self.kind == "campaign":
            return f"campaign model (outcome {self.outcome})"
        return f"experiment model (mapping {self.mapping}, outcome {self.outcome})"

    def tags(self) -> dict[str, str]:
        """The registered model's tags that record this use."""
        out = {USE_TAG: self.kind, OUTCOME_TAG: self.outcome}
        if self.mapping is not None:
            out[MAPPING_TAG] = self.mapping
        return out

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> ModelUse | None:
        """The use recorded on a registered model; None when it carries none (registered by an older version)."""
        kind = tags.get(USE_TAG)
        if kind not in ("campaign", "experiment") or not tags.get(OUTCOME_TAG):
            return None
        return cls(kind, tags[OUTCOME_TAG], tags.get(MAPPING_TAG) if kind == "experiment" else None)


def campaign_use(event: str) -> ModelUse:
    """The campaign model predicting funnel event ``event`` (the feature set's outcome)."""
    return ModelUse("campaign", event)


def experiment_use(mapping: str, outcome: str) -> ModelUse:
    """The model of experiment mapping ``mapping`` predicting its outcome column ``outcome``."""
    return ModelUse("experiment", outcome, mapping)
