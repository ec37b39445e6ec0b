"""The README's table of headline results, written by the benchmarks themselves.

A benchmark that produces a headline figure calls :func:`record` with its rows: each a figure's name,
its value as text, and what it is measured on. The record goes to ``<out>/headline-<benchmark>.json``
with the command that made it, the commit of the working tree (``+dirty`` when it had uncommitted
changes) and the date. ``python -m benchmarks.headline --from DIR [DIR ...] --readme README.md``
collects every record under the folders and rewrites the block between the README's markers
``<!-- headline:start -->`` and ``<!-- headline:end -->``; nothing in that block is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["HeadlineRow", "record", "collect", "render", "update_readme", "main"]

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- headline:start -->", "<!-- headline:end -->"


@dataclass(frozen=True)
class HeadlineRow:
    """One headline figure: ``figure`` (what), ``value`` (as shown), ``on`` (the data it is measured on)."""

    figure: str
    value: str
    on: str


def _commit() -> str:
    """The working tree's commit, ``+dirty`` when it has uncommitted changes to tracked files."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def record(out: Path, benchmark: str, rows: Iterable[HeadlineRow], *, argv: Sequence[str] | None = None) -> Path:
    """Write ``rows`` as the headline record of ``benchmark`` into folder ``out``; returns the file."""
    command = f"python -m {benchmark} {shlex.join(list(argv if argv is not None else sys.argv[1:]))}".strip()
    body = {"benchmark": benchmark, "command": command, "commit": _commit(),
            "date": f"{datetime.now(timezone.utc):%Y-%m-%d}", "rows": [asdict(r) for r in rows]}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"headline-{benchmark.rsplit('.', 1)[-1]}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=1))
    tmp.replace(path)
    return path


def collect(folders: Iterable[Path]) -> list[dict]:
    """Every headline record under ``folders`` (searched recursively), newest file first per benchmark."""
    found: dict[str, tuple[float, dict]] = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("headline-*.json")):
            body = json.loads(path.read_text())
            if not {"benchmark", "command", "commit", "date", "rows"} <= set(body):
                raise ValueError(f"{path}: not a headline record (expected benchmark, command, commit, date, rows)")
            mtime = path.stat().st_mtime
            if body["benchmark"] not in found or found[body["benchmark"]][0] < mtime:
                found[body["benchmark"]] = (mtime, body)
    return [body for _, body in sorted(found.values(), key=lambda item: item[1]["benchmark"])]


def render(records: Sequence[dict], order: Sequence[str] = ()) -> str:
    """The Markdown table of ``records`` (benchmarks in ``order`` first), one row per figure."""
    rank = {name: i for i, name in enumerate(order)}
    records = sorted(records, key=lambda r: (rank.get(r["benchmark"], len(rank)), r["benchmark"]))
    lines = ["| figure | value | measured on | command | commit, date |", "|---|---|---|---|---|"]
    for body in records:
        for row in body["rows"]:
            lines.append(f"| {row['figure']} | {row['value']} | {row['on']} | `{body['command']}` | "
                         f"{body['commit']}, {body['date']} |")
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> bool:
    """Replace the block between the README's headline markers with ``table``; True when it changed."""
    text = readme.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise ValueError(f"{readme}: expected the markers {START} and {END}, in that order")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table}\n{END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.headline --from DIR [DIR ...] [--readme README.md] [--order NAME ...]``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.headline", description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="folders", nargs="+", type=Path, required=True,
                   help="folders the benchmarks wrote into (searched for headline-*.json)")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--order", nargs="*", default=[], help="benchmarks to list first, in this order")
    args = p.parse_args(argv)
    records = collect(args.folders)
    if not records:
        print(f"no headline-*.json under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    changed = update_readme(args.readme, render(records, args.order))
    print(f"{args.readme}: {'updated' if changed else 'unchanged'} ({sum(len(r['rows']) for r in records)} figures)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
