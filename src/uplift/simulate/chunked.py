"""A world too large for memory, simulated and written chunk of people by chunk of people (Parquet row groups).

People do not interact in the simulator: each person's waves, registration and funnel depend on that person
alone. A world of N people is simulated as chunks of at most ``chunk_people`` residents, each on random streams
of its own (:func:`uplift.simulate.campaign.wave_rng` with the chunk's number), and each chunk is appended to
the four files as row groups; memory holds one chunk. Person ids are drawn once for the whole world, so they
are unique across chunks.

A world of at most ``chunk_people`` people is simulated whole, bit for bit as :func:`uplift.simulate.simulate`
makes it. A larger one is a different draw of the same region than the whole world of the same seed would be
(the streams are per chunk), and the same for the same seed and chunk size. Its files are ordered chunk by
chunk (within a chunk as :func:`~uplift.simulate.simulate` orders them), not wave by wave over the whole world.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from uplift.data.tableio import atomic_path
from uplift.data.vocabulary import HOLDOUT
from uplift.errors import SpecError
from uplift.simulate.campaign import wave_rng
from uplift.simulate.population import person_id_codes, person_id_labels
from uplift.simulate.summary import arm_summary, funnel_counts, persona_summary_from_totals, persona_totals
from uplift.simulate.world import CampaignWorld, check_sizes, simulate_chunk, write_world
from uplift.specs.region import RegionSpec

__all__ = ["WorldSummary", "write_world_in_chunks", "STREAM_PERSON_IDS", "CHUNK_PEOPLE"]

STREAM_PERSON_IDS = 6
"""The random stream of the person ids of a world simulated in chunks (apart from streams 1-5)."""
CHUNK_PEOPLE = 500_000
"""Default chunk size: a chunk of 500,000 people x 6 waves peaked at 2.8 GB (benchmarks/scaling.py)."""

_TABLES = ("audience", "exposures", "enrolments", "truth")


@dataclass(frozen=True)
class WorldSummary:
    """What a written world holds, added up over its chunks (what ``uplift simulate`` prints).

    Attributes
    ----------
    paths : ``audience``, ``exposures``, ``enrolments``, ``truth`` -> the file written.
    rows : the same names -> number of rows.
    funnel : people reaching each funnel event (:func:`~uplift.simulate.summary.funnel_counts`).
    arms : per arm ``reached``, ``registrations``, ``rate``, ``true_rate``
        (:func:`~uplift.simulate.summary.arm_summary`).
    personas : per latent persona (:func:`~uplift.simulate.summary.persona_summary`).
    chunks : number of chunks simulated.
    """

    paths: dict[str, Path]
    rows: dict[str, int]
    funnel: pd.Series
    arms: pd.DataFrame
    personas: pd.DataFrame
    chunks: int
    arm_names: tuple[str, ...]
    attribution_days: int


def _chunk_sizes(people: int, chunk_people: int) -> list[int]:
    full, rest = divmod(people, chunk_people)
    return [chunk_people] * full + ([rest] if rest else [])


class _Totals:
    """The summaries of the chunks so far, added up."""

    def __init__(self, arms: tuple[str, ...]) -> None:
        self.funnel: pd.Series | None = None
        self.reached = pd.Series(0.0, index=list(arms))
        self.registrations = pd.Series(0.0, index=list(arms))
        self.true_sum = pd.Series(0.0, index=list(arms))
        self.persona_sums: pd.DataFrame | None = None

    def add(self, world: CampaignWorld) -> None:
        counts = funnel_counts(world)
        self.funnel = counts if self.funnel is None else self.funnel + counts
        arms = arm_summary(world)
        self.reached += arms["reached"]
        self.registrations += arms["registrations"]
        self.true_sum += (arms["true_rate"] * arms["reached"]).fillna(0.0)
        sums = persona_totals(world)
        self.persona_sums = sums if self.persona_sums is None else self.persona_sums.add(sums, fill_value=0.0)

    def arms(self) -> pd.DataFrame:
        reached = self.reached.astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return pd.DataFrame({"reached": reached, "registrations": self.registrations.astype(np.int64),
                                 "rate": self.registrations / self.reached.where(reached > 0),
                                 "true_rate": self.true_sum / self.reached.where(reached > 0)}).rename_axis("arm")


def write_world_in_chunks(
    spec: RegionSpec,
    out_dir: str | Path,
    *,
    people: int,
    waves: int,
    seed: int,
    chunk_people: int = CHUNK_PEOPLE,
    fmt: Literal["parquet", "csv"] = "parquet",
) -> WorldSummary:
    """Simulate the world and write it, one chunk of people at a time (see the module docstring).

    Every file is written atomically: all four appear when the last chunk is written, none if a chunk fails.
    A world of one chunk may be written as CSV (``fmt``); a larger one is Parquet.

    Raises
    ------
    SpecError
        ``people``, ``waves``, ``seed`` or ``chunk_people`` out of range, an invalid spec, or CSV asked for a
        world of more than one chunk.
    """
    check_sizes(people=people, waves=waves, seed=seed, chunk_people=chunk_people)
    spec = spec.updated()
    out = Path(out_dir)
    sizes = _chunk_sizes(people, chunk_people)
    if len(sizes) > 1 and fmt != "parquet":
        raise SpecError(f"simulate: a world of more than {chunk_people:,} people (one chunk) is written as Parquet, "
                        f"not {fmt}; use --format parquet or a larger --chunk-people")
    if len(sizes) == 1:
        return _write_single_chunk(spec, out, people=people, waves=waves, seed=seed, fmt=fmt)
    codes = person_id_codes(people, wave_rng(seed, STREAM_PERSON_IDS))
    targets = {name: out / f"{name}.parquet" for name in _TABLES[:3]} | {"truth": out / "truth" / "truth.parquet"}
    rows = dict.fromkeys(_TABLES, 0)
    totals = _Totals(spec.arm_names())
    with _AtomicFiles(targets) as temporary:
        writers: dict = {}
        try:
            start = 0
            for chunk, size in enumerate(sizes):
                world = simulate_chunk(spec, people=size, waves=waves, seed=seed, chunk=chunk,
                                       person_ids=person_id_labels(codes[start:start + size]))
                start += size
                _append_tables(world, writers, temporary, rows)
                totals.add(world)
                del world  # the next chunk is drawn with this one's memory free
        finally:
            for writer in writers.values():
                writer.close()
    return _summary(totals, targets, rows, len(sizes), spec)


def _write_single_chunk(spec: RegionSpec, out: Path, *, people: int, waves: int, seed: int,
                        fmt: Literal["parquet", "csv"]) -> WorldSummary:
    """A world of one chunk: simulated whole and written as :func:`write_world` writes it (``fmt``)."""
    world = simulate_chunk(spec, people=people, waves=waves, seed=seed)
    paths = write_world(world, out, fmt)
    totals = _Totals(spec.arm_names())
    totals.add(world)
    return _summary(totals, paths, {n: len(getattr(world, n)) for n in _TABLES}, 1, spec)


def _append_tables(world, writers: dict, temporary: dict[str, Path], rows: dict[str, int]) -> None:
    """Append a chunk's tables to their Parquet files (each writer opened on its table's first chunk, into
    ``writers``) and add their rows to ``rows``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in _TABLES:
        table = pa.Table.from_pandas(getattr(world, name), preserve_index=False)
        if name not in writers:
            # microsecond timestamps, as uplift.data.tableio.write_table writes them (Spark reads no nanoseconds)
            writers[name] = pq.ParquetWriter(temporary[name], table.schema, coerce_timestamps="us",
                                             allow_truncated_timestamps=True)
        writers[name].write_table(table.cast(writers[name].schema))
        rows[name] += table.num_rows


def _summary(totals: _Totals, paths: dict[str, Path], rows: dict[str, int], chunks: int,
             spec: RegionSpec) -> WorldSummary:
    arms = spec.arm_names()
    return WorldSummary(paths=dict(paths), rows=rows, funnel=totals.funnel, arms=totals.arms(),
                        personas=persona_summary_from_totals(totals.persona_sums, arms, HOLDOUT),
                        chunks=chunks, arm_names=arms, attribution_days=spec.attribution_days)


class _AtomicFiles:
    """Temporary files beside several targets, all renamed into place only if the block succeeds."""

    def __init__(self, targets: dict[str, Path]) -> None:
        self.targets = targets
        self._contexts = {name: atomic_path(path) for name, path in targets.items()}

    def __enter__(self) -> dict[str, Path]:
        self._entered = {}
        try:
            for name, context in self._contexts.items():
                self._entered[name] = context.__enter__()
        except BaseException:
            self.__exit__(*__import__("sys").exc_info())
            raise
        return dict(self._entered)

    def __exit__(self, kind, value, traceback) -> bool:
        # leaving each atomic_path renames its file when no exception is passed, removes it otherwise
        for name in reversed(list(self._entered)):
            self._contexts[name].__exit__(kind, value, traceback)
        return False
