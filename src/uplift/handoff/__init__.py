"""A plan handed to the people who run its channels, and its registrations brought back.

``handoff_tables`` turns a plan's cells into one sheet per channel in the channel's own terms (ad sets,
print runs per neighbourhood, mailings), the holdout per line, the UTM key and a manifest whose totals add
up to the plan; ``write_handoff`` writes them atomically. ``attribute`` reads the UTM parameters of
registrations back into arms and cells. ``plan_lines`` and ``cell_targeting`` are the cell -> audience
mapping other steps (the next wave's design) reuse, with ``line_people`` (the audience's people per line); ``as_run``
spreads each line's contacts over the cells it
reaches, to score a plan as its channels run it. See docs/handoff.md.
"""

from uplift.celltargeting import CellTargeting, cell_targeting, parse_segment
from uplift.handoff.areas import (
    PrintUnit,
    areas_from_audience,
    areas_from_region,
    print_units,
)
from uplift.handoff.asrun import as_run
from uplift.handoff.attribution import (
    ATTRIBUTION_COLUMNS,
    STATUSES,
    attribute,
    attribution_counts,
    cell_counts,
)
from uplift.handoff.lines import LINE_COLUMNS, apportion, plan_lines
from uplift.handoff.members import line_people
from uplift.handoff.sheets import (
    HOLDOUT_FILE,
    KEY_FILE,
    MANIFEST_FILE,
    Handoff,
    handoff_tables,
    sheet_name,
)
from uplift.handoff.utm import (
    UTM_KEYS,
    Utm,
    campaign,
    code,
    link,
    parse_utm,
    parse_utm_url,
)
from uplift.handoff.write import as_text, handoff_archive, handoff_files, write_handoff

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "HOLDOUT_FILE",
    "KEY_FILE",
    "LINE_COLUMNS",
    "MANIFEST_FILE",
    "STATUSES",
    "UTM_KEYS",
    "CellTargeting",
    "Handoff",
    "PrintUnit",
    "Utm",
    "apportion",
    "areas_from_audience",
    "areas_from_region",
    "as_run",
    "as_text",
    "attribute",
    "attribution_counts",
    "campaign",
    "cell_counts",
    "cell_targeting",
    "code",
    "handoff_archive",
    "handoff_files",
    "handoff_tables",
    "line_people",
    "link",
    "parse_segment",
    "parse_utm",
    "parse_utm_url",
    "plan_lines",
    "print_units",
    "sheet_name",
    "write_handoff",
]
