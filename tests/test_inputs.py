"""Input files as users hand them over: a CSV byte-order mark, broken files as one clear error, and the
temporary files of writes that were killed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from uplift.adapters import ColumnMapping, load_experiment_csv
from uplift.data.tableio import atomic_path, read_table, stale_temporaries, write_table
from uplift.data.trainingtable import TrainingTable
from uplift.errors import SchemaError
from uplift.scoring import ChunkWriter, count_rows, iter_chunks
from uplift.scoring.chunks import column_names

BOM = "\ufeff"


def _csv(path: Path, text: str, *, bom: bool = True) -> Path:
    path.write_bytes(((BOM if bom else "") + text).encode("utf-8"))
    return path


def _chunked(path: Path) -> pd.DataFrame:
    return pd.concat([c.frame for c in iter_chunks(path, 2)], ignore_index=True)


# --- a UTF-8 byte-order mark ---------------------------------------------------------------------------------

@pytest.mark.parametrize("reader", [read_table, _chunked])
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path, reader):
    src = _csv(tmp_path / "a.csv", "person_id,age\n007,30\n008,x\n009,41\n")
    frame = reader(src)
    assert list(frame.columns) == ["person_id", "age"]
    assert column_names(src) == ["person_id", "age"]
    if reader is _chunked:  # the streaming reader takes every column as text, the first one too
        assert frame["person_id"].tolist() == ["007", "008", "009"]


def test_an_experiment_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    rows = "".join(f"{'ctl' if i % 2 else 'Mail'},{i % 3 == 0:d},{i}\n" for i in range(40))
    src = _csv(tmp_path / "exp.csv", "arm,y,x\n" + rows)
    mapping = ColumnMapping(name="t", treatment="arm", control="ctl", outcomes=("y",), features={"x": "numeric"})
    table = load_experiment_csv(src, mapping)
    assert table.arms == ("ctl", "mail") and len(table.frame) == 40


# --- broken files: one SchemaError naming the file and what is wrong -----------------------------------------

def _parquet(path: Path, rows: int = 20_000) -> Path:
    frame = pd.DataFrame({"person_id": [f"p{i}" for i in range(rows)], "age": np.arange(rows) % 50 + 18})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=2_000,
                   compression="snappy")
    return path


def _truncated(tmp_path: Path) -> Path:
    whole = _parquet(tmp_path / "whole.parquet").read_bytes()
    out = tmp_path / "cut.parquet"
    out.write_bytes(whole[: len(whole) // 2])
    return out


PARQUET_READERS = {
    "read_table": read_table,
    "column_names": column_names,
    "count_rows": count_rows,
    "iter_chunks": lambda p: list(iter_chunks(p, 500)),
    "TrainingTable.load": TrainingTable.load,
}


@pytest.mark.parametrize("reader", PARQUET_READERS.values(), ids=PARQUET_READERS.keys())
def test_a_truncated_parquet_file_is_one_error_naming_it(tmp_path, reader):
    cut = _truncated(tmp_path)
    with pytest.raises(SchemaError, match=r"cut\.parquet: cannot be read as Parquet: .*magic bytes.*was it truncated"):
        reader(cut)


def test_a_parquet_file_corrupt_inside_fails_while_streaming_with_its_name(tmp_path):
    whole = _parquet(tmp_path / "whole.parquet").read_bytes()
    third = len(whole) // 3
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(whole[:third] + bytes(1000) + whole[third + 1000:])  # the footer is intact
    assert column_names(bad) == ["person_id", "age"] and count_rows(bad) == 20_000
    for reader in (read_table, lambda p: list(iter_chunks(p, 500))):
        with pytest.raises(SchemaError, match=r"bad\.parquet: cannot be read as Parquet: "):
            reader(bad)


CSV_PROBLEMS = {
    "latin-1": ("person_id,city\np1,Delft\np2,Zo\xebtermeer\n".encode("latin-1"), r"not UTF-8 text \(byte 0xeb"),
    "ragged": (b"person_id,age\np1,30\np2,31,extra\n",
               r"cannot be read as CSV: .*[Ee]xpected 2 (columns|fields).*(got|saw) 3"),
    "empty": (b"", r"empty CSV file|cannot be read as CSV"),
    "bom only": (BOM.encode("utf-8"), r"empty CSV file|cannot be read as CSV"),
}


@pytest.mark.parametrize("content,expected", CSV_PROBLEMS.values(), ids=CSV_PROBLEMS.keys())
@pytest.mark.parametrize("reader", [read_table, _chunked], ids=["read_table", "iter_chunks"])
def test_an_unreadable_csv_is_one_error_naming_it(tmp_path, reader, content, expected):
    src = tmp_path / "broken.csv"
    src.write_bytes(content)
    with pytest.raises(SchemaError, match=r"broken\.csv: ") as err:
        reader(src)
    assert re.search(expected, str(err.value)), str(err.value)


def test_a_repeated_column_name_is_refused_by_the_streaming_reader(tmp_path):
    src = _csv(tmp_path / "dup.csv", "person_id,age,age\np1,30,31\n")
    with pytest.raises(SchemaError, match=r"dup\.csv: column name\(s\) \['age'\] appear more than once"):
        list(iter_chunks(src, 10))


def test_the_cli_says_which_file_is_broken_before_loading_a_model(tmp_path):
    cut = _truncated(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update({"UPLIFT_WORKDIR": str(tmp_path), "COLUMNS": "200"})
    exe = Path(sys.executable).with_name("uplift")
    proc = subprocess.run([str(exe), "score", "--audience", str(cut), "--out", str(tmp_path / "s.parquet")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    err = " ".join(proc.stderr.split())
    assert "error: " + str(cut) + ": cannot be read as Parquet" in err, err
    assert "Traceback" not in proc.stderr and not (tmp_path / "s.parquet").exists()
    assert not list(tmp_path.glob(".s.parquet.*"))


# --- temporary files ----------------------------------------------------------------------------------------

def test_a_write_removes_what_a_killed_write_of_the_same_target_left_and_nothing_else(tmp_path):
    target = tmp_path / "scores.parquet"
    left = tmp_path / ".scores.parquet.0123456789ab.tmp"
    others = [".scores.parquet.tmp", ".scores.parquet.backup.tmp", "scores.parquet.0123456789ab.tmp",
              ".scores.parquet.x.0123456789ab.tmp", ".other.parquet.0123456789ab.tmp",
              ".scores.parquet.0123456789AB.tmp"]
    for name in [left.name, *others]:
        (tmp_path / name).write_bytes(b"partial")
    assert stale_temporaries(target) == [left]
    write_table(pd.DataFrame({"x": [1, 2]}), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scores.parquet", *others])


def test_a_temporary_file_a_live_write_holds_is_left_alone(tmp_path):
    target = tmp_path / "scores.csv"
    with atomic_path(target) as tmp:
        tmp.write_text("x\n1\n")
        assert stale_temporaries(target) == []
        write_table(pd.DataFrame({"x": [2]}), target)  # another write of the same target meanwhile
        assert tmp.exists()
    assert read_table(target)["x"].tolist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    import uplift.cli
    from uplift.cli.app import app
    from uplift.data.tableio import atomic_path

    @app.command("slow-write")
    def slow_write(out: str) -> None:
        with atomic_path(out) as tmp, open(tmp, "w") as handle:  # as every writer of the package does
            handle.write("x\\n")
            for i in range(600):
                handle.write(f"{i}\\n")
                handle.flush()
                print("row", i, flush=True)
                time.sleep(0.05)

    sys.argv = ["uplift", "slow-write", sys.argv[1]]
    uplift.cli.main()
""")


def _writing(tmp_path: Path, target: Path) -> subprocess.Popen:
    """A process writing ``target`` chunk by chunk through the CLI's entry point, once it has begun."""
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    line = proc.stdout.readline()
    assert line.startswith("row"), proc.stderr.read()
    return proc


def test_a_killed_write_leaves_a_temporary_file_that_the_next_write_removes(tmp_path):
    target = tmp_path / "scores.parquet"  # the killed process wrote text: it never got to rename it
    proc = _writing(tmp_path, target)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (left,) = tmp_path.glob(".scores.parquet.*.tmp")
    assert not target.exists()
    with ChunkWriter(target, pa.schema([pa.field("x", pa.int64())])) as writer:
        assert not left.exists()
        writer.write(pd.DataFrame({"x": [1, 2, 3]}))
    assert pd.read_parquet(target)["x"].tolist() == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]


def test_a_terminated_command_removes_its_temporary_file_on_the_way_out(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("x\nprevious\n")
    proc = _writing(tmp_path, target)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]
    assert target.read_text() == "x\nprevious\n"


# --- a real scoring job, killed and terminated mid-write ------------------------------------------------------

@pytest.fixture(scope="module")
def scoring_store(tmp_path_factory, strong_table, strong_world):
    """A work folder with a small champion and the strong world's audience as a file to score."""
    from apiserver import train_version

    folder = tmp_path_factory.mktemp("scoring_store")
    train_version(folder, strong_table)
    write_table(strong_world.audience, folder / "audience.csv")
    return folder


def _score_job(folder: Path, out: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update({"UPLIFT_WORKDIR": str(folder), "COLUMNS": "200"})
    exe = Path(sys.executable).with_name("uplift")
    return subprocess.Popen([str(exe), "score", "--audience", "audience.csv", "--out", out, "--chunk-rows", "200"],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _temporaries(folder: Path, out: str) -> list[Path]:
    """The temporary files of the scores and of the rejects beside them."""
    return sorted(folder.glob(f".{Path(out).stem}.*.tmp"))


def _once_writing(proc: subprocess.Popen, folder: Path, out: str, besides: list[Path] = ()) -> None:
    """Wait until ``proc`` has a temporary file of its own (not one of ``besides``)."""
    deadline = time.monotonic() + 300
    while not set(_temporaries(folder, out)) - set(besides):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_a_scoring_job_killed_or_terminated_mid_write_leaves_nothing_the_next_job_keeps(scoring_store):
    folder, out = scoring_store, "scores.parquet"
    killed = _score_job(folder, out)
    _once_writing(killed, folder, out)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    left = _temporaries(folder, out)
    assert len(left) == 2 and not (folder / out).exists()  # scores and rejects: the killed job could not clean up

    terminated = _score_job(folder, out)
    _once_writing(terminated, folder, out, besides=left)
    assert not any(p.exists() for p in left)  # the next job removed what the killed one left
    terminated.send_signal(signal.SIGTERM)
    assert terminated.wait(timeout=120) == 128 + signal.SIGTERM
    assert _temporaries(folder, out) == [] and not (folder / out).exists()  # it cleaned up on the way out
    assert not (folder / "scores.rejects.csv").exists()

    done = _score_job(folder, out)
    assert done.wait(timeout=600) == 0, done.stderr.read()
    assert len(read_table(folder / out)) == 40_000 and _temporaries(folder, out) == []
