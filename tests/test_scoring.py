"""Batch scoring: chunked reading, row validation with rejects, chunk invariance, strict mode, atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, feature_set_for
from uplift.data.tableio import write_table
from uplift.errors import SchemaError
from uplift.features import build_features
from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.targeting import recommend
from uplift.pipeline import load_segment_spec
from uplift.scoring import (
    UPLIFT_PREFIX,
    ChunkWriter,
    Scorer,
    SeenIds,
    SegmentLabeler,
    count_rows,
    iter_chunks,
    model_feature_set,
    score_chunk,
    score_file,
)
from uplift.specs import load_spec
from uplift.specs.model import ModelSpec
from uplift.tracking.pyfunc import UpliftPyfunc

AS_OF = pd.Timestamp("2025-07-21", tz="UTC")


@pytest.fixture(scope="module")
def scorer(strong_world, strong_table):
    spec = load_spec(ROOT / "models" / "pooled_lightgbm.yaml", ModelSpec)
    spec = spec.model_copy(update={"lightgbm": {**spec.lightgbm, "n_estimators": 30}})
    model = MultiArmUplift.from_table(spec, strong_table).fit_table(strong_table)
    pyfunc = UpliftPyfunc(model, shrinkage=0.5)
    segments = pd.DataFrame(
        {"segment": ["age_band=25-34|gender=female|municipality=Delft",
                     "age_band=25-34|gender=male|municipality=other"],
         "kind": "targetable"}
    )
    return Scorer(model=pyfunc, feature_set=model_feature_set(feature_set_for(strong_world), pyfunc),
                  labeler=SegmentLabeler(segments, load_segment_spec()))


@pytest.fixture(scope="module")
def dirty_audience(strong_world):
    """2,000 audience rows as text with five broken rows and one repeated id (rows are 1-based)."""
    a = strong_world.audience.head(2000).astype(str).reset_index(drop=True)
    a.loc[4, "age"] = "seventeen"            # row 5: not a number
    a.loc[99, "age"] = "80"                  # row 100: out of range
    a.loc[700, "gender"] = "unknown"         # row 701: not in the vocabulary
    a.loc[1200, "neighbourhood"] = "12AB"    # row 1201: not a 4-digit postcode
    a.loc[1500, "has_children"] = "perhaps"  # row 1501: not a boolean
    a.loc[1800, "person_id"] = a.loc[10, "person_id"]  # row 1801: repeats row 11's id
    return a


def _score(path, out, scorer, world, chunk_rows, **kw):
    return score_file(path, out, scorer=scorer, exposures=world.exposures, enrolments=world.enrolments,
                      as_of=AS_OF, chunk_rows=chunk_rows, **kw)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_many_chunks_give_the_same_scores_and_rejects_as_one(tmp_path, scorer, strong_world, dirty_audience, suffix):
    src = write_table(dirty_audience, tmp_path / f"audience{suffix}")
    one = _score(src, tmp_path / "one.parquet", scorer, strong_world, 10_000)
    many = _score(src, tmp_path / "many.parquet", scorer, strong_world, 333)
    assert one.chunks == 1 and many.chunks == 7
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "many.parquet"))
    pd.testing.assert_frame_equal(pd.read_csv(one.rejects), pd.read_csv(many.rejects))
    assert (many.rows_scored, many.rows_rejected, many.rows_read) == (1994, 6, 2000)


def test_rejects_name_file_row_column_and_reason_and_keep_the_values(tmp_path, scorer, strong_world, dirty_audience):
    src = write_table(dirty_audience, tmp_path / "audience.csv")
    summary = _score(src, tmp_path / "scores.csv", scorer, strong_world, 500)
    rejects = pd.read_csv(summary.rejects, dtype=str)
    assert rejects["row"].astype(int).tolist() == [5, 100, 701, 1201, 1501, 1801]
    assert rejects["column"].tolist() == ["age", "age", "gender", "neighbourhood", "has_children", "person_id"]
    assert set(rejects["file"]) == {"audience.csv"}
    assert "seventeen" in rejects.loc[0, "reason"] and "in_range" in rejects.loc[1, "reason"]
    assert "repeats an earlier row" in rejects.loc[5, "reason"]
    assert rejects.loc[2, "gender"] == "unknown" and rejects.loc[0, "person_id"] == dirty_audience.loc[4, "person_id"]
    scores = pd.read_csv(tmp_path / "scores.csv")
    kept = set(scores["person_id"]) | set(rejects["person_id"])
    assert kept == set(dirty_audience["person_id"])  # nothing silently dropped
    assert scores["person_id"].is_unique


def test_a_byte_order_mark_with_a_bad_row_gives_the_usual_rejects(tmp_path, scorer, strong_world, dirty_audience):
    src = tmp_path / "audience.csv"
    src.write_bytes(("\ufeff" + dirty_audience.head(800).to_csv(index=False)).encode("utf-8"))
    summary = _score(src, tmp_path / "scores.csv", scorer, strong_world, 300)
    assert (summary.rows_scored, summary.rows_rejected) == (797, 3)
    rejects = pd.read_csv(summary.rejects, dtype=str, encoding="utf-8")  # no byte-order mark in what we write
    assert list(rejects.columns) == ["file", "row", "column", "reason", *dirty_audience.columns]
    assert rejects["row"].astype(int).tolist() == [5, 100, 701]
    assert rejects["person_id"].tolist() == dirty_audience.loc[[4, 99, 700], "person_id"].tolist()
    assert set(pd.read_csv(tmp_path / "scores.csv", dtype=str)["person_id"]) == \
        set(dirty_audience.head(800)["person_id"]) - set(rejects["person_id"])


def test_a_truncated_audience_fails_with_its_name_and_writes_nothing(tmp_path, scorer, strong_world):
    whole = write_table(strong_world.audience.head(3000), tmp_path / "whole.parquet").read_bytes()
    src = tmp_path / "audience.parquet"
    src.write_bytes(whole[: len(whole) - 100])
    with pytest.raises(SchemaError, match=r"audience\.parquet: cannot be read as Parquet"):
        _score(src, tmp_path / "scores.parquet", scorer, strong_world, 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audience.parquet", "whole.parquet"]


def test_strict_fails_on_an_invalid_row_and_writes_nothing(tmp_path, scorer, strong_world, dirty_audience):
    src = write_table(dirty_audience, tmp_path / "audience.parquet")
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"previous scores")
    with pytest.raises(SchemaError, match=r"audience.parquet row 5, column 'age'.*\n.*row 100"):
        _score(src, out, scorer, strong_world, 1000, strict=True)
    assert out.read_bytes() == b"previous scores"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audience.parquet", "scores.parquet"]


def test_missing_column_is_a_file_error(tmp_path, scorer, strong_world):
    src = write_table(strong_world.audience.head(50).drop(columns=["income_band"]), tmp_path / "audience.parquet")
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['income_band'\]"):
        _score(src, tmp_path / "scores.parquet", scorer, strong_world, 10)
    assert not (tmp_path / "scores.parquet").exists()


def test_scores_match_the_training_code_path(scorer, strong_world):
    people = strong_world.audience.head(400)
    out = score_chunk(people, scorer=scorer, exposures=strong_world.exposures, enrolments=strong_world.enrolments,
                      as_of=AS_OF)
    keys = pd.DataFrame({"person_id": people["person_id"], "wave": 3, "as_of": AS_OF})
    features = build_features(keys, people, strong_world.exposures, strong_world.enrolments, scorer.feature_set)
    expected = scorer.model.effects(features[scorer.model.feature_names], shrunk=True)
    got = out[[UPLIFT_PREFIX + a for a in scorer.model.arms]].to_numpy()
    np.testing.assert_allclose(got, expected.to_numpy())
    assert (out["best_arm"].to_numpy() == recommend(expected, "holdout")).all()
    treated = out["best_arm"] != "holdout"
    assert (out.loc[~treated, "best_uplift"] == 0).all()
    assert (out.loc[treated, "best_uplift"] > 0).all()
    # history is used: people contacted before score differently from the same people without history
    bare = score_chunk(people, scorer=scorer, exposures=strong_world.exposures.head(0),
                       enrolments=strong_world.enrolments.head(0), as_of=AS_OF)
    assert not np.allclose(bare[UPLIFT_PREFIX + scorer.model.arms[0]], got[:, 0])


def test_segment_is_the_exact_cell_else_the_parents_other_cell_else_suppressed(scorer):
    people = pd.DataFrame({
        "person_id": ["a", "b", "c", "d"], "age": [30, 30, 30, 50],
        "gender": ["female", "male", "female", "female"], "municipality": ["Delft", "Delft", "Westland", "Delft"],
        "sector": ["retail"] * 4, "employment": ["employed_flexible"] * 4, "education": ["secondary"] * 4,
        "income_band": ["low"] * 4, "migration_background": [False] * 4, "has_children": [True, False, True, True],
    })
    assert scorer.labeler.segments(people).tolist() == [
        "age_band=25-34|gender=female|municipality=Delft",
        "age_band=25-34|gender=male|municipality=other",
        "", "",
    ]
    assert scorer.labeler.personas(people).tolist()[0] == "retail_to_childcare"


def test_chunks_have_fixed_size_and_row_numbers(tmp_path, strong_world):
    src = write_table(strong_world.audience.head(1000), tmp_path / "a.csv")
    chunks = list(iter_chunks(src, 300))
    assert [len(c.frame) for c in chunks] == [300, 300, 300, 100]
    assert [c.first_row for c in chunks] == [1, 301, 601, 901]
    assert count_rows(src) == 1000
    assert pd.concat([c.frame for c in chunks], ignore_index=True)["person_id"].tolist() == \
        strong_world.audience.head(1000)["person_id"].tolist()


def test_writer_leaves_nothing_behind_when_the_job_fails(tmp_path):
    import pyarrow as pa

    schema = pa.schema([pa.field("x", pa.float64())])
    out = tmp_path / "o.parquet"
    with pytest.raises(RuntimeError):
        with ChunkWriter(out, schema) as w:
            w.write(pd.DataFrame({"x": [1.0, 2.0]}))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with ChunkWriter(out, schema) as w:
        w.write(pd.DataFrame({"x": [1.0]}))
        w.write(pd.DataFrame({"x": [2.0, 3.0]}))
    assert pd.read_parquet(out)["x"].tolist() == [1.0, 2.0, 3.0]


def test_seen_ids_remember_every_run_after_merges():
    seen = SeenIds()
    rng = np.random.default_rng(0)
    ids = pd.Series([f"p{i}" for i in rng.permutation(5000)])
    for part in np.array_split(np.arange(5000), 37):
        h = SeenIds.hashes(ids.iloc[part])
        assert not seen.contains(h).any()
        seen.add(h)
    assert len(seen) == 5000
    assert seen.contains(SeenIds.hashes(ids)).all()
    assert not seen.contains(SeenIds.hashes(pd.Series(["q1", "q2"]))).any()


def test_a_campaign_model_with_costs_scores_net_values_and_the_net_rules_arm(tmp_path, scorer, strong_world):
    from dataclasses import replace as swap
    from types import SimpleNamespace

    from uplift.api.scoring import score_rows
    from uplift.economics import campaign_economics
    from uplift.scoring import NET_PREFIX
    from uplift.specs.planning import CostCatalogue

    model = scorer.model
    catalogue = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
    econ = campaign_economics(catalogue, 2.0, (model.control, *model.arms), model.control)  # a cheap conversion
    priced = UpliftPyfunc(model.model, shrinkage=0.5, economics=econ)
    net_scorer = swap(scorer, model=priced)
    src = write_table(strong_world.audience.head(300), tmp_path / "audience.parquet")
    _score(src, tmp_path / "scores.parquet", net_scorer, strong_world, 100)
    out = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(out.columns) == net_scorer.columns
    assert net_scorer.columns[-5:] == ["best_arm", "best_uplift", "best_net", "segment", "persona"]
    uplift = out[[UPLIFT_PREFIX + a for a in model.arms]].to_numpy()
    cost = np.array([econ.costs[a] for a in model.arms])
    np.testing.assert_allclose(out[[NET_PREFIX + a for a in model.arms]].to_numpy(), 2.0 * uplift - cost)
    blind = _score(src, tmp_path / "blind.parquet", scorer, strong_world, 100)
    assert blind.rows_scored == 300
    blind_out = pd.read_parquet(tmp_path / "blind.parquet")
    treated = out["best_arm"] != model.control
    assert (out.loc[treated, "best_net"] > 0).all() and (out.loc[~treated, "best_net"] == 0).all()
    assert treated.sum() < (blind_out["best_arm"] != model.control).sum()  # costs leave some people untreated

    # the service's answer (POST /scores): the same rule on feature rows
    bundle = SimpleNamespace(name="uplift-registration", model=priced, version=1, control=model.control)
    keys = pd.DataFrame({"person_id": strong_world.audience["person_id"].head(50), "wave": 3, "as_of": AS_OF})
    feats = build_features(keys, strong_world.audience.head(50), strong_world.exposures, strong_world.enrolments,
                           scorer.feature_set)[model.feature_names]
    answer = score_rows(bundle, feats, shrunk=True)
    assert answer["economics"]["value"] == 2.0
    best, net = priced.decide(feats)
    assert [r["best_arm"] for r in answer["rows"]] == list(best)
    for row, (_, n) in zip(answer["rows"], net.iterrows(), strict=True):
        assert row["net_value"] == pytest.approx(n.to_dict(), abs=1e-7)
        assert row["best_net_value"] == pytest.approx(n.get(row["best_arm"], 0.0), abs=1e-7)


def test_rejects_go_where_asked_else_beside_the_scores_and_nowhere_under_strict(tmp_path):
    from uplift.scoring.job import rejects_destination

    out = tmp_path / "scores.parquet"
    assert rejects_destination(out, None, strict=False) == tmp_path / "scores.rejects.csv"
    assert rejects_destination(out, str(tmp_path / "bad.parquet"), strict=False) == tmp_path / "bad.parquet"
    assert rejects_destination(out, tmp_path / "bad.parquet", strict=True) is None
