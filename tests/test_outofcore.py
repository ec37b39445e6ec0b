"""The out-of-core training table (DuckDB) equals the in-memory one row for row, whatever the batches."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT, feature_set_for
from handmade import SPEC, audience, enrolments, exposures
from uplift.data.inputs import load_inputs
from uplift.data.tableio import write_table
from uplift.data.trainingtable import TrainingTable, file_digest
from uplift.errors import DataError, MissingAttributesWarning, SchemaError, SpecError
from uplift.features import build_training_table, outofcore
from uplift.features.library import FEATURES, Feature
from uplift.features.outofcore import EngineSettings, bucket_count, memory_bytes, row_group_rows, write_training_table
from uplift.pipeline import load_feature_set


def _files(folder, aud, ex, en, suffix=".parquet"):
    return {name: write_table(frame, folder / f"{name}{suffix}")
            for name, frame in (("audience", aud), ("exposures", ex), ("enrolments", en))}


def _reference(files, spec) -> TrainingTable:
    """The in-memory build of the same files: contracts on whole frames, then the pandas definitions."""
    inputs = load_inputs(files["audience"], files["exposures"], files["enrolments"], attributes=spec.attributes)
    return build_training_table(inputs.audience, inputs.exposures, inputs.enrolments, spec)


def _same(tmp_path, aud, ex, en, spec, settings: EngineSettings | None = None):
    """Build both ways; return the out-of-core table after checking it equals the in-memory one exactly."""
    files = _files(tmp_path, aud, ex, en)
    reference = _reference(files, spec)
    out = tmp_path / "table.parquet"
    summary = write_training_table(files, spec, out, settings=settings or EngineSettings())
    built = TrainingTable.load(out)
    pd.testing.assert_frame_equal(built.frame, reference.frame, check_exact=True)  # every column, dtype and row
    assert built.features == reference.features and built.arms == reference.arms and built.outcome == reference.outcome
    assert file_digest(out, batch_rows=len(built.frame) // 3 + 1) == built.digest() == reference.digest()
    assert summary.rows == len(reference.frame) and summary.people == reference.frame["person_id"].nunique()
    return built


@pytest.fixture(scope="module")
def demo_world():
    """The demo region (haaglanden, seed 7) at a test's size."""
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.region import RegionSpec

    region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    return simulate(region, people=4_000, waves=4, seed=7)


def test_equals_the_in_memory_table_on_the_demo_world(tmp_path, demo_world):
    w = demo_world
    table = _same(tmp_path, w.audience, w.exposures, w.enrolments, load_feature_set("default"))
    assert len(table.frame) == len(w.exposures) and table.frame["prior_contacts"].max() >= 2


def test_equals_the_in_memory_table_with_funnel_history(tmp_path):
    """The hand-made world has events before later waves (the simulator's registrants leave the waves)."""
    table = _same(tmp_path, audience(), exposures(), enrolments(), SPEC)
    assert table.frame["funnel_stage"].max() == 2 and table.frame["days_since_last_event"].notna().any()


def test_equals_with_attributes_left_out_and_declared_ones(tmp_path):
    spec = load_feature_set("own_attributes")
    aud = audience().drop(columns=["sector", "education"]).assign(
        language=["dutch", "arabic", "other"], benefit_status=[True, False, True], months_unemployed=[0, 14.5, 3])
    with pytest.warns(MissingAttributesWarning, match="features left out: sector, education"):
        table = _same(tmp_path, aud, exposures(), enrolments(), spec.model_copy(update={
            "channels": SPEC.channels, "messages": SPEC.messages}))
    assert {"language", "benefit_status", "months_unemployed"} <= set(table.feature_names)


def test_many_small_batches_equal_one_batch(tmp_path, region):
    """A tiny world (150 people, 2 messages on 1 channel, 3 waves) in batches of 5, 13 and all rows."""
    from uplift.simulate import simulate

    w = simulate(region.subset(messages=["fresh_start", "free_voucher"], channels=["meta"]), people=150, waves=3,
                 seed=7)
    digests = set()
    for i, settings in enumerate([EngineSettings(batch_rows=1_000_000),
                                  EngineSettings(batch_rows=5, threads=1, memory_limit="64MB"),
                                  EngineSettings(batch_rows=13, threads=2)]):
        folder = tmp_path / str(i)
        folder.mkdir()
        _same(folder, w.audience, w.exposures, w.enrolments, feature_set_for(w), settings)
        digests.add(file_digest(folder / "table.parquet"))
    assert len(digests) == 1


def test_many_buckets_of_people_equal_one_bucket(tmp_path, region, monkeypatch):
    """A tiny world (60 people, 3 waves: 180 exposure rows) asked for 1 bucket, 26 (7 rows each) and 180 (more
    than people: ranges of one person each), and the handmade one with a bucket per person, two without events."""
    from uplift.simulate import simulate

    w = simulate(region.subset(messages=["fresh_start", "free_voucher"], channels=["meta"]), people=60, waves=3,
                 seed=11)
    used = []
    write_parts = outofcore._write_parts
    monkeypatch.setattr(outofcore, "_write_parts", lambda *a: used.append(a[-1]) or write_parts(*a))
    digests = set()
    for bucket_rows in (None, 7, 1):
        folder = tmp_path / str(bucket_rows)
        folder.mkdir()
        settings = EngineSettings(bucket_rows=bucket_rows)
        _same(folder, w.audience, w.exposures, w.enrolments, feature_set_for(w), settings)
        digests.add(file_digest(folder / "table.parquet"))
    assert used == [1, 26, 180] and len(digests) == 1
    _same(tmp_path, audience(), exposures(), enrolments().iloc[:2], SPEC, EngineSettings(bucket_rows=1))  # p1 only


def test_bucket_count_follows_the_rows():
    """2 GB at 1,000 bytes an exposure row: 2,000,000 rows a bucket; 700 MB: 700,000; 1 GiB: 1,073,741."""
    default, low, gib = EngineSettings(), EngineSettings(memory_limit="700MB"), EngineSettings(memory_limit="1 GiB")
    assert [bucket_count(r, default) for r in (0, 1, 2_000_000, 2_000_001, 10_000_000, 30_000_000)] == [
        1, 1, 1, 2, 5, 15]
    assert [bucket_count(10_000_000, s) for s in (low, gib)] == [15, 10]
    assert bucket_count(10, EngineSettings(bucket_rows=3)) == 4
    assert memory_bytes("1.5GB") == 1_500_000_000 and memory_bytes("64MiB") == 64 * 2**20


def test_row_groups_shrink_under_a_small_memory_limit(tmp_path, monkeypatch):
    """2,000 bytes a row: 2 GB keeps 1,000,000 rows, 700 MB 350,000, 64 MB 32,000; never more than batch_rows."""
    assert [row_group_rows(EngineSettings(memory_limit=m)) for m in ("2GB", "700MB", "64MB")] == [
        1_000_000, 350_000, 32_000]
    assert row_group_rows(EngineSettings(memory_limit="700MB", batch_rows=5)) == 5
    monkeypatch.setattr(outofcore, "BYTES_PER_ROW_GROUP_ROW", 10**9)  # 2 rows a row group under 2 GB
    used = []
    write_in_order = outofcore._write_in_order
    monkeypatch.setattr(outofcore, "_write_in_order", lambda *a: used.append(a[-1]) or write_in_order(*a))
    _same(tmp_path, audience(), exposures(), enrolments(), SPEC)
    assert used == [2]


@given(rows=st.integers(0, 10**9), per=st.integers(1, 10**7))
def test_buckets_are_the_fewest_that_hold_the_rows(rows, per):
    n = bucket_count(rows, EngineSettings(bucket_rows=per))
    assert n >= 1 and rows <= n * per and (n == 1 or rows > (n - 1) * per)


@pytest.mark.parametrize("limit", ["lots", "2 GBs", "-1GB", ""])
def test_a_memory_limit_that_is_not_a_size_is_a_spec_error(limit):
    with pytest.raises(SpecError, match=r"memory_limit .*: expected a size such as '2GB'"):
        EngineSettings(memory_limit=limit)
    with pytest.raises(SpecError, match="bucket_rows 0: expected a whole number"):
        EngineSettings(bucket_rows=0)


def test_csv_inputs_are_coerced_as_the_contract_coerces(tmp_path):
    """CSV (and Parquet of other types) is checked and coerced batch by batch into a copy the engine reads."""
    files = _files(tmp_path, audience(), exposures(), enrolments(), ".csv")
    reference = _reference(files, SPEC)
    out = tmp_path / "table.parquet"
    write_training_table(files, SPEC, out, settings=EngineSettings(batch_rows=2))
    pd.testing.assert_frame_equal(TrainingTable.load(out).frame, reference.frame, check_exact=True)


def test_contract_breaks_name_the_file_and_the_rows_and_write_nothing(tmp_path):
    out = tmp_path / "table.parquet"
    aud = audience()
    aud.loc[2, "age"] = 71
    with pytest.raises(SchemaError,
                       match=r"(?s)audience.parquet \(rows 3-3\): does not match.*'age': expected in_range"):
        write_training_table(_files(tmp_path, aud, exposures(), enrolments()), SPEC, out,
                             settings=EngineSettings(batch_rows=1))
    ex = exposures()
    ex.loc[4, "arm"] = "b@flyer"  # message a, channel flyer
    with pytest.raises(SchemaError,
                       match=r"(?s)column 'arm': expected 'message@channel'.*1 row\(s\) break it \(e.g. arm='b@flyer'"):
        write_training_table(_files(tmp_path, audience(), ex, enrolments()), SPEC, out)
    assert not out.exists() and not list(tmp_path.glob(".table.parquet.*")) and not list(tmp_path.glob(".uplift-*"))


def test_rules_over_whole_files(tmp_path):
    out = tmp_path / "table.parquet"
    twice = pd.concat([audience(), audience().iloc[[1]]], ignore_index=True)
    with pytest.raises(SchemaError,
                       match=r"column 'person_id': expected unique values; 1 value\(s\) occur "
                             r"more than once \(e.g. 'p2'\)"):
        write_training_table(_files(tmp_path, twice, exposures(), enrolments()), SPEC, out,
                             settings=EngineSettings(batch_rows=2))
    again = pd.concat([exposures(), exposures().iloc[[0]]], ignore_index=True)
    with pytest.raises(SchemaError, match=r"expected unique \['person_id', 'wave'\]"):
        write_training_table(_files(tmp_path, audience(), again, enrolments()), SPEC, out)
    with pytest.raises(DataError, match=r"1 person id\(s\) have history but no audience row \(e.g. \['p3'\]\)"):
        write_training_table(_files(tmp_path, audience().iloc[:2], exposures(), enrolments()), SPEC, out)
    ex = exposures()
    ex.loc[0, ["arm", "message"]] = ["c@meta", "c"]
    with pytest.raises(DataError, match=r"\['c@meta'\] which the feature set 'handmade' does not declare"):
        write_training_table(_files(tmp_path, audience(), ex, enrolments()), SPEC, out)
    assert not out.exists()


def test_a_feature_without_sql_is_a_spec_error(tmp_path, monkeypatch):
    plain = FEATURES["prior_waves"]
    monkeypatch.setitem(FEATURES, "prior_waves", Feature(plain.name, plain.kind, plain.fn, plain.doc))
    with pytest.raises(SpecError, match="feature 'prior_waves' has no SQL definition"):
        write_training_table(_files(tmp_path, audience(), exposures(), enrolments()), SPEC, tmp_path / "t.parquet")


def test_every_library_feature_has_its_sql():
    with warnings.catch_warnings():
        assert [name for name, f in FEATURES.items() if f.sql is None] == []
