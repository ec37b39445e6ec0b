"""An attacker holding everything the service answers tries to get back a count below the disclosure threshold.

Two services over the small model the API tests train: the shipped policy (threshold 10, segments of
at least 200 people) and a raised one (threshold 40, every segment of the model: of at least 50 people,
so that many people cells are small too). The attacker calls every GET
endpoint, the segments with every filter, creates and reads plans, and tries each way a small count
comes back: read directly; subtracted from a total it is assumed to know (a segment's people over its
arms and holdout; an arm's people, and converters, over the segments) given the released sibling
cells; a released rate times a released count (converters, and the people who did not convert). The
same attack on the unprotected table, and on one protected without secondary suppression, finds what
it looks for, so the attack can fail. The run's MLflow artifacts get the same treatment.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from apiserver import (
    AUTH,
    MIN_SIZE,
    SHARED_SETTINGS,
    running_server,
    shared_internal_segments,
    shared_server,
    shared_store,
    train_version,
)
from uplift.disclosure import disclose
from uplift.segments.release import RAW_COLUMNS, attribute_columns, released_segments, segment_release
from uplift.specs.disclosure import DisclosurePolicy, load_disclosure_policy

RAISED = DisclosurePolicy(threshold=40, rounding_base=5)
RAISED_FLOOR = 50  # the segment spec's anonymity floor: the service shows every segment of the model
COUNTS = ("size", "people_treated", "people_control")


@pytest.fixture(scope="module", params=["shipped", "raised"])
def service(request, tmp_path_factory, strong_table):
    """(client, internal segment table shown at the service's floor, policy, store) of a running service."""
    if request.param == "shipped":
        base = shared_server(request, tmp_path_factory, strong_table, **SHARED_SETTINGS)
        store = shared_store(tmp_path_factory, strong_table)
        internal = shared_internal_segments(tmp_path_factory, strong_table)
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
            yield client, internal, MIN_SIZE, load_disclosure_policy(), store
        return
    store = tmp_path_factory.mktemp("raised_store")
    # the counts are the data's, whatever the model: a few trees do, and plans compute in the request thread
    trained = train_version(store, strong_table, disclosure=RAISED,
                            lightgbm={"n_estimators": 5, "learning_rate": 0.1, "num_leaves": 7,
                                      "min_child_samples": 100, "n_jobs": 1})
    policy_file = store / "disclosure.yaml"
    policy_file.write_text(f"threshold: {RAISED.threshold}\nrounding_base: {RAISED.rounding_base}\n")
    settings = {**SHARED_SETTINGS, "min_segment_size": RAISED_FLOOR, "compute_processes": 0}
    with running_server(store, disclosure=str(policy_file), **settings) as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
            yield client, trained.segments, RAISED_FLOOR, RAISED, store


# -- what the attacker collects ----------------------------------------------------------------------
def _pages(api: httpx.Client, **params) -> list[dict]:
    items, offset = [], 0
    while True:
        body = api.get("/segments", params={**params, "limit": 1000, "offset": offset}).json()
        items += body["items"]
        offset += 1000
        if offset >= body["total"]:
            assert len(items) == body["total"]
            return items


def harvest(api: httpx.Client) -> tuple[pd.DataFrame, list[dict]]:
    """Every segment row the API shows (checked identical under every filter) and every other body."""
    bodies = [api.get(path).json() for path in ("/health", "/model", "/plans")]
    model = bodies[1]
    everything = _pages(api)
    seen = {(i["segment"], i["arm"]): i for i in everything}
    frame = pd.DataFrame(everything)
    messages, channels = sorted(set(frame["message"])), sorted(set(frame["channel"]))
    labels = sorted({part for label in frame["segment"] for part in label.split("|")})
    filters = [{"kind": k} for k in ("targetable", "persona")] + [{"arm": a} for a in model["arms"]]
    filters += [{"message": m} for m in messages] + [{"channel": c} for c in channels]
    filters += [{"segment": label} for label in labels]
    filters += [{"min_effect": float(q)} for q in frame["effect"].quantile([0.1, 0.5, 0.9])]
    filters += [{"kind": k, "arm": a, "min_effect": 0.0} for k in ("targetable", "persona") for a in model["arms"]]
    for params in filters:
        for item in _pages(api, **params):
            assert item == seen[(item["segment"], item["arm"])], f"filter {params} shows another figure"
    for kind in ("targetable", "persona"):
        plan = api.post("/plans", json={"budget": 5000, "kind": kind, "policy": {"fairness_floors": []}}).json()
        bodies += [plan, api.get(f"/plans/{plan['id']}").json()]
    bodies.append(api.get("/plans").json())
    return frame, bodies


# -- the attack --------------------------------------------------------------------------------------
def _small_cell(people: pd.Series, converters: pd.Series, threshold: int) -> pd.Series:
    return (people < threshold) | (converters < threshold) | (people - converters < threshold)


def _truth(internal: pd.DataFrame) -> pd.DataFrame:
    return internal[["segment", "kind", "arm", "size", "people_treated", "converters_treated", "people_control",
                     "converters_control"]].rename(
        columns=lambda c: c if c in ("segment", "kind", "arm") else f"{c}_true")


def _subtraction(cells: pd.DataFrame, value: str, hidden: str, threshold: int, what: str,
                 complement: str | None = None) -> list[str]:
    """Within one margin (``cells``: one row per cell), what the known total minus the released cells gives."""
    shut = cells[hidden].to_numpy(bool)
    if not shut.any() or shut.all():
        return []
    got = float(cells[value].to_numpy(float)[shut].sum())
    other = float(cells[complement].to_numpy(float)[shut].sum()) if complement else np.inf
    return [f"{what}: the hidden cells hold {got:g} (complement {other:g})"] if min(got, other) < threshold else []


def recoveries(released: pd.DataFrame, internal: pd.DataFrame, threshold: int) -> list[str]:
    """Every count below ``threshold`` the attack gets back from ``released`` (segment rows as the API or the
    released table shows them), judged against ``internal`` (the full segment table)."""
    truth = _truth(internal)
    m = released.merge(truth, on=["segment", "kind", "arm"], how="left", validate="one_to_one")
    found = []
    for c in COUNTS:  # read directly
        small = m[c].notna() & (m[f"{c}_true"] < threshold)
        found += [f"{r.segment}/{r.arm}: {c} shown, {getattr(r, c + '_true')} people" for r in m[small].itertuples()]
    control = _small_cell(m["people_control_true"], m["converters_control_true"], threshold)
    treated = _small_cell(m["people_treated_true"], m["converters_treated_true"], threshold)
    shown = {c: m[c].notna() for c in ("base_rate", "observed")}  # rate x count = converters, and the rest
    found += [f"{r.segment}/{r.arm}: base_rate over a small holdout cell"
              for r in m[shown["base_rate"] & control].itertuples()]
    found += [f"{r.segment}/{r.arm}: observed over a small cell"
              for r in m[shown["observed"] & (control | treated)].itertuples()]
    # subtraction from totals the attacker is assumed to know exactly
    for segment, rows in m.groupby("segment"):
        cells = pd.concat([
            pd.DataFrame({"v": rows["people_treated_true"], "h": rows["people_treated"].isna()}),
            pd.DataFrame({"v": rows["people_control_true"].iloc[:1], "h": rows["people_control"].isna().iloc[:1]}),
        ])
        found += _subtraction(cells, "v", "h", threshold, f"{segment}: people over its arms")
    full = truth.merge(m[["segment", "arm", *COUNTS, "base_rate", "observed"]], on=["segment", "arm"], how="left")
    full["treated_rate_known"] = full["base_rate"].notna() & full["observed"].notna() & full["people_treated"].notna()
    full["control_rate_known"] = full["base_rate"].notna() & full["people_control"].notna()
    for (kind, arm), rows in full.groupby(["kind", "arm"]):
        rows = rows.assign(ht=rows["people_treated"].isna(), hc=rows["people_control"].isna(),
                           xt=~rows["treated_rate_known"], xc=~rows["control_rate_known"],
                           nt=rows["people_treated_true"] - rows["converters_treated_true"],
                           nc=rows["people_control_true"] - rows["converters_control_true"])
        found += _subtraction(rows, "people_treated_true", "ht", threshold, f"{kind}/{arm}: people over the segments")
        found += _subtraction(rows, "people_control_true", "hc", threshold, f"{kind}: holdout people over the segments")
        found += _subtraction(rows, "converters_treated_true", "xt", threshold, f"{kind}/{arm}: converters", "nt")
        found += _subtraction(rows, "converters_control_true", "xc", threshold, f"{kind}: holdout converters", "nc")
    return found


def _unprotected(internal: pd.DataFrame, floor: int) -> pd.DataFrame:
    """The table as it was released before the policy: exact counts, every raw figure."""
    return internal[internal["size"] >= floor][["segment", "kind", "arm", *COUNTS, "base_rate", "observed"]]


# -- the tests ---------------------------------------------------------------------------------------
def test_the_attack_gets_nothing_back_from_everything_the_api_answers(service):
    api, internal, floor, policy, _ = service
    shown, bodies = harvest(api)
    assert recoveries(shown, internal, policy.threshold) == []
    for c in COUNTS:
        values = shown[c].dropna().to_numpy(float)
        assert (values >= policy.threshold).all() and (values % policy.rounding_base == 0).all()
    assert set(shown["segment"]) == set(internal.loc[internal["size"] >= floor, "segment"])
    assert not any(str(k).startswith("n_") for k in bodies[1]["metrics"])  # the model's metrics pool everyone
    for plan in (b for b in bodies if "cells" in b):  # plans: planned contacts over released segments only
        assert {c["segment"] for c in plan["cells"]} <= set(shown["segment"])
    withheld = shown["base_rate"].isna()
    assert withheld.any() and all(w for w in shown.loc[withheld, "withheld"])  # the attack had small cells to aim at


def test_the_attack_finds_small_counts_where_nothing_protects_them(service):
    _, internal, floor, policy, _ = service
    naive = recoveries(_unprotected(internal, floor), internal, policy.threshold)
    assert any("base_rate over a small holdout cell" in f for f in naive)
    if policy.threshold == RAISED.threshold:  # here people cells are small too, and subtraction pays
        assert any("people_control shown" in f or "people_treated shown" in f for f in naive)
        release = segment_release(attribute_columns(internal)).model_copy(update={"margins": ()})
        primary_only = disclose(internal, release, policy)
        primary_only = primary_only[primary_only["segment"].isin(internal.loc[internal["size"] >= floor, "segment"])]
        assert any("hidden cells hold" in f for f in recoveries(primary_only, internal, policy.threshold))


def test_the_runs_artifacts_release_no_small_counts(service):
    _, internal, _, policy, store = service
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    version = client.get_model_version_by_alias("uplift-registration", "champion")
    params = client.get_run(version.run_id).data.params
    assert int(params["disclosure_threshold"]) == policy.threshold
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(client.download_artifacts(version.run_id, "", tmp))
        planner = pd.read_parquet(root / "segments" / "segments.parquet")
        assert not set(RAW_COLUMNS) & set(planner.columns)  # the planner's table: model estimates only
        released = pd.read_parquet(root / "segments" / "released.parquet")
        pd.testing.assert_frame_equal(released, released_segments(internal, policy))
        assert recoveries(released, internal, policy.threshold) == []
        for path in (root / "tables").glob("*.csv"):
            table = pd.read_csv(path)
            for column in (c for c in table.columns if str(c).startswith("n_")):
                values = table[column].dropna().to_numpy(float)
                assert (values >= policy.threshold).all() and (values % policy.rounding_base == 0).all(), path.name
