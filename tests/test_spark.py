"""Batch scoring on Spark (local[2]): the same scores, rejects and segment labels as the pandas path, row for row."""

from __future__ import annotations

import time

import mlflow
import pandas as pd
import pytest

from apiserver import shared_store
from uplift.data.tableio import write_table
from uplift.errors import SchemaError
from uplift.scoring import score_file

AS_OF = pd.Timestamp("2025-07-21", tz="UTC")


@pytest.fixture(scope="module")
def spark():
    from uplift.scoring.spark import spark_session

    started = time.perf_counter()
    session = spark_session(2, driver_memory="1g")
    print(f"Spark local[2] started in {time.perf_counter() - started:.1f} s")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def model(tmp_path_factory, strong_table):
    store = shared_store(tmp_path_factory, strong_table)
    with pytest.MonkeyPatch.context():
        mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
        mlflow.set_registry_uri(f"sqlite:///{store / 'mlflow.db'}")
        uri = "models:/uplift-registration/1"
        yield uri, mlflow.pyfunc.load_model(uri).unwrap_python_model()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, strong_world):
    """1,500 audience rows as text with four broken rows and one repeated id, and the history, as Parquet."""
    folder = tmp_path_factory.mktemp("spark_inputs")
    a = strong_world.audience.head(1500).astype(str).reset_index(drop=True)
    a.loc[4, "age"] = "seventeen"
    a.loc[99, "age"] = "80"
    a.loc[700, "gender"] = "unknown"
    a.loc[1200, "has_children"] = "perhaps"
    a.loc[1300, "person_id"] = a.loc[10, "person_id"]
    return (write_table(a, folder / "audience.parquet"),
            write_table(strong_world.exposures, folder / "exposures.parquet"),
            write_table(strong_world.enrolments, folder / "enrolments.parquet"))


def test_spark_scores_equal_the_pandas_path_row_for_row(tmp_path, spark, model, inputs, strong_world):
    from uplift.scoring.spark import HistoryFiles, SparkModel, score_dataset

    uri, pyfunc = model
    audience, exposures, enrolments = inputs
    pandas_run = score_file(audience, tmp_path / "pandas.parquet", scorer=pyfunc.scorer,
                            exposures=strong_world.exposures,
                            enrolments=strong_world.enrolments, as_of=AS_OF, chunk_rows=400)
    started = time.perf_counter()
    spark_run = score_dataset(spark, audience, tmp_path / "spark", model=SparkModel(uri, pyfunc.arms, pyfunc.control),
                              as_of=AS_OF, history=HistoryFiles(exposures, enrolments))
    print(f"Spark scored {spark_run.rows_read} rows in {time.perf_counter() - started:.1f} s")
    assert (spark_run.rows_read, spark_run.rows_scored, spark_run.rows_rejected) == (1500, 1495, 5)
    assert (pandas_run.rows_scored, pandas_run.rows_rejected) == (1495, 5)

    expected = pd.read_parquet(tmp_path / "pandas.parquet").sort_values("person_id", ignore_index=True)
    got = pd.read_parquet(tmp_path / "spark")
    got["best_arm"] = got["best_arm"].astype(str)
    got = got[list(expected.columns)].sort_values("person_id", ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)
    assert expected["segment"].ne("").any() and expected["persona"].ne("none").any()  # labels compared, not blanks
    arms = {p.name for p in (tmp_path / "spark").iterdir() if p.is_dir()}
    assert arms == {f"best_arm={a}" for a in expected["best_arm"].unique()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left

    pd.testing.assert_frame_equal(pd.read_csv(spark_run.rejects, dtype=str), pd.read_csv(pandas_run.rejects, dtype=str))
    assert pd.read_csv(spark_run.rejects)["row"].tolist() == [5, 100, 701, 1201, 1301]


def test_spark_strict_fails_on_an_invalid_row_and_keeps_the_previous_output(tmp_path, spark, model, inputs):
    from uplift.scoring.spark import SparkModel, score_dataset

    uri, pyfunc = model
    out = tmp_path / "scores"
    out.mkdir()
    (out / "previous.parquet").write_bytes(b"previous scores")
    with pytest.raises(SchemaError, match=r"5 invalid row\(s\).*\n.*audience.parquet row 5, column 'age'"):
        score_dataset(spark, inputs[0], out, model=SparkModel(uri, pyfunc.arms), as_of=AS_OF, strict=True)
    assert [p.name for p in out.iterdir()] == ["previous.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"]
