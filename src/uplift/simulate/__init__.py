"""A seeded campaign world with known true effects: the demo data and the test oracle of uplift.

See ``docs/simulator.md`` for how the world works and what every output column means.
"""

from __future__ import annotations

from uplift.simulate.summary import arm_summary, funnel_counts, registered_in_window
from uplift.simulate.world import FORMATS, CampaignWorld, simulate, true_effects, write_world

__all__ = [
    "CampaignWorld",
    "simulate",
    "write_world",
    "true_effects",
    "arm_summary",
    "funnel_counts",
    "registered_in_window",
    "FORMATS",
]
