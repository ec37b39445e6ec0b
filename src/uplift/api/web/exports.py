"""A stored plan as files a programme team can keep: CSV of its funded cells, an Excel workbook (a summary
sheet, then one sheet per channel), made from the plan exactly as stored (the JSON API's answer)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping

__all__ = ["CELL_FIELDS", "plan_csv", "plan_xlsx", "file_stem"]

CELL_FIELDS: tuple[tuple[str, str], ...] = (
    ("segment", "segment"), ("message", "message"), ("channel", "channel"), ("contacts", "contacts"),
    ("holdout_people", "holdout people"), ("spend", "spend (EUR)"),
    ("expected_conversions", "expected incremental conversions"), ("lo", "conversions, interval low"),
    ("hi", "conversions, interval high"), ("cost_per_conversion", "EUR per conversion"),
    ("marginal_cost", "EUR of the next conversion"), ("exploration", "of which exploration (EUR)"),
)
"""The cells' columns in the files: (field of the plan's cells, header)."""
_FORMULA = re.compile(r"^[=+\-@\t\r]")


def _text(value) -> object:
    """A CSV field: a text with a leading ``=``, ``+``, ``-`` or ``@`` is quoted with ``'`` so no spreadsheet
    program opening the file runs a segment name or note as a formula."""
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


def file_stem(plan: Mapping) -> str:
    """``plan-<name or id>`` in letters, digits, ``-`` and ``_`` only."""
    label = plan.get("name") or plan["id"][:12]
    return "plan-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-")[:60] or plan["id"][:12])


def plan_csv(plan: Mapping) -> bytes:
    """The plan's funded cells as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the euro
    sign and accents), one row per cell, largest spend first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header for _, header in CELL_FIELDS])
    for cell in plan["cells"]:
        writer.writerow([_text(cell.get(key)) if cell.get(key) is not None else "" for key, _ in CELL_FIELDS])
    return ("\ufeff" + out.getvalue()).encode()


def _summary_rows(plan: Mapping) -> list[list]:
    totals = plan["totals"]
    interval = f"{totals['interval']:.0%} interval"
    rows: list[list] = [
        ["plan", plan.get("name") or plan["id"]], ["id", plan["id"]], ["note", plan.get("note") or ""],
        ["model", f"{plan['model_name']} v{plan['model_version']}"], ["made", plan["created_at"]],
        ["made by", plan.get("created_by") or ""],
        ["approved", f"{plan['approved_at']} by {plan['approved_by']}" if plan.get("approved_at") else "not approved"],
        ["status", plan["status"]], [],
        ["", "budget (EUR)", "spend (EUR)", "contacts", "expected incremental conversions", f"low ({interval})",
         f"high ({interval})", "EUR per conversion"],
    ]
    plans = [("this plan", totals), *((name.replace("_", " ") + " plan", t) for name, t in plan["references"].items())]
    for label, t in plans:
        rows.append([label, t["budget"], t["spend"], t["contacts"], t["expected_conversions"], t["lo"], t["hi"],
                     t["cost_per_conversion"]])
    rows.append([])
    for conflict in plan.get("conflicts", []):
        rows.append(["conflict", conflict])
    for rule in plan.get("rules", []):
        rows.append(["rule", rule.get("text", "")])
    return rows


def _row(sheet, values: list) -> list:
    """A worksheet row whose texts are written as text cells: never read as a formula, whatever they start with."""
    from openpyxl.cell import WriteOnlyCell

    out = []
    for value in values:
        if isinstance(value, str):
            cell = WriteOnlyCell(sheet, value=None)
            cell._value, cell.data_type = value, "s"  # set as text: openpyxl makes a text starting with '=' a formula
            out.append(cell)
        else:
            out.append(value)
    return out


def plan_xlsx(plan: Mapping) -> bytes:
    """The plan as an Excel workbook: a ``Summary`` sheet (labels, totals beside the reference plans,
    conflicts, rules), then one sheet per channel with that channel's cells and a total row."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    summary = book.create_sheet("Summary")
    for row in _summary_rows(plan):
        summary.append(_row(summary, row))
    by_channel: dict[str, list] = {}
    for cell in plan["cells"]:
        by_channel.setdefault(cell["channel"], []).append(cell)
    for channel, cells in by_channel.items():
        sheet = book.create_sheet(re.sub(r"[\[\]:*?/\\]", "_", channel)[:31])
        sheet.append([header for key, header in CELL_FIELDS if key != "channel"])
        for cell in cells:
            sheet.append(_row(sheet, [cell.get(key) for key, _ in CELL_FIELDS if key != "channel"]))
        sheet.append(["total", "", sum(c["contacts"] for c in cells), sum(c["holdout_people"] for c in cells),
                      round(sum(c["spend"] for c in cells), 2),
                      round(sum(c["expected_conversions"] for c in cells), 4)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
