"""The README's headline table is written from the benchmarks' records, never by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is a top-level folder, not installed
from benchmarks.headline import END, START, HeadlineRow, collect, main, record, render, update_readme  # noqa: E402


def test_records_become_the_readme_block_and_nothing_else_changes(tmp_path):
    out = tmp_path / "bench"
    record(out / "family", "benchmarks.family", [HeadlineRow("share of the oracle, mean", "84.1%", "21 worlds")],
           argv=["--worlds", "20"])
    record(out, "benchmarks.loop", [HeadlineRow("cumulative share by wave 6", "91.0%", "5 seeds"),
                                    HeadlineRow("calibration slope, wave 6", "0.97 [0.80, 1.14]", "5 seeds")],
           argv=[])
    body = json.loads((out / "family" / "headline-family.json").read_text())
    assert body["command"] == "python -m benchmarks.family --worlds 20" and body["commit"] and body["date"]
    records = collect([out])
    assert [r["benchmark"] for r in records] == ["benchmarks.family", "benchmarks.loop"]
    table = render(records, order=["benchmarks.loop"])
    lines = table.splitlines()
    assert (lines[2] == "| cumulative share by wave 6 | 91.0% | 1 |"
            and lines[4] == "| share of the oracle, mean | 84.1% | 2 |")
    assert lines[6].startswith("1. 5 seeds: `python -m benchmarks.loop` (commit ")
    assert lines[7].startswith("2. 21 worlds: `python -m benchmarks.family --worlds 20` (commit ")
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{START}\nold table\n{END}\nafter\n")
    assert update_readme(readme, table) and not update_readme(readme, table)
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "old table" not in text and table in text
    assert main(["--from", str(out), "--readme", str(readme)]) == 0


def test_a_readme_without_markers_or_a_folder_without_records_is_refused(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="expected the markers"):
        update_readme(readme, "| a |")
    assert main(["--from", str(tmp_path), "--readme", str(readme)]) == 2
    assert "no headline-*.json" in capsys.readouterr().err
    (tmp_path / "headline-x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a headline record"):
        collect([tmp_path])
