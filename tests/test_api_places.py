"""The service plans flyers per print unit: a training run logs its places table, a targetable plan over the model
answers the print runs it buys, and the hand-off hands each over as one print run, to the cent.

Over the page world (tests/browser.py: meta and flyer, one real server per session); an older model without places
is that model's bundle without its table, planned in this process.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from apiserver import AUTH, MODEL, ROOT
from browser import PAGE_SETTINGS, page_costs, page_server

BODY = {"budget": 4000, "policy": {"exploration_share": 0.0}, "include_references": False}


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    """(base URL, store folder) of a server over the page world's store that plans flyers per print unit."""
    from apiserver import running_server

    _, store = page_server(request, tmp_path_factory)
    with running_server(store, costs=page_costs(store), flyers_by_neighbourhood=True, **PAGE_SETTINGS) as base:
        yield base, store


@pytest.fixture(scope="module")
def api(served):
    with httpx.Client(base_url=served[0], headers=AUTH, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def bundle(served):
    """The page model's bundle, loaded here as the service loads it."""
    import mlflow

    from uplift.api.modelstore import registry_loader

    uri = f"sqlite:///{served[1] / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias(MODEL, "champion").version
    return registry_loader(client, MODEL, "champion", min_segment_size=PAGE_SETTINGS["min_segment_size"])(str(version))


@pytest.fixture(scope="module")
def plan(api):
    r = api.post("/plans", json=BODY)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_training_run_logs_its_targetable_segments_places(bundle):
    from uplift.allocation.unitrows import PLACE_COLUMNS
    from uplift.pipeline import load_segment_spec
    from uplift.specs.disclosure import load_disclosure_policy

    places = bundle.places
    assert places is not None and list(places.columns[:len(PLACE_COLUMNS)]) == list(PLACE_COLUMNS)
    targetable = set(bundle.segments_of("targetable")["segment"])
    assert targetable <= set(places["segment"])  # every served cell has its places
    assert places["unit"].str.startswith("pc_").all() and (places["people"] > 0).all()
    # a print unit holds at least the segment floor's and the threshold's people of the training rows (here every
    # one of them is in a targetable cell: 49 units of 231 to 889 people)
    per_unit = places.groupby("unit")["people"].sum()
    floor = max(load_segment_spec().min_size, load_disclosure_policy(None).threshold)
    assert per_unit.min() >= floor and len(per_unit) > 10
    assert places.groupby("unit")["municipality"].nunique().max() == 1  # a unit never spans municipalities


def test_a_plan_answers_its_print_runs_which_add_up_to_its_flyer_cells(plan):
    lines = pd.DataFrame(plan["unit_lines"])
    cells = pd.DataFrame(plan["cells"])
    flyer = cells[cells["channel"] == "flyer"]
    assert len(flyer) and len(lines) and set(lines["channel"]) == {"flyer"}
    assert lines["contacts"].sum() == flyer["contacts"].sum()
    assert lines["holdout_people"].sum() == flyer["holdout_people"].sum()
    assert round(lines["spend"].sum(), 2) == round(flyer["spend"].sum(), 2)  # to the cent
    for message, runs in lines.groupby("message"):
        assert runs["contacts"].sum() == flyer.loc[flyer["message"] == message, "contacts"].sum()
    assert (lines["copies"] >= lines["contacts"] / 1.6 - 1e-9).all()  # serve/costs.yaml: 1.6 people a copy
    assert lines.duplicated(["message", "unit"]).sum() == 0
    assert all(len(p) >= 1 and all(len(c) == 4 for c in p) for p in lines["postcodes"])
    assert all(set(s) <= set(flyer["segment"]) for s in lines["segments"])
    assert not any("per municipality" in n for n in plan["notes"])


def test_the_handoff_prints_the_planned_runs_to_the_cent(api, plan):
    r = api.post(f"/plans/{plan['id']}/handoff", json={"wave": 3, "start": "2026-03-02"})
    assert r.status_code == 200, r.text
    files = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(files.read("manifest.json"))
    assert manifest["adds_up"]
    assert manifest["plan"]["spend_eur"] == round(pd.DataFrame(plan["cells"])["spend"].sum(), 2)
    runs = pd.read_csv(io.BytesIO(files.read("flyer_print_runs.csv")), dtype={"utm_term": str})
    lines = pd.DataFrame(plan["unit_lines"])
    got = runs.set_index(["message", "utm_term"]).sort_index()
    want = lines.set_index(["message", "unit"]).sort_index()
    assert list(got.index) == list(want.index)
    assert got["planned_contacts"].tolist() == want["contacts"].tolist()
    assert got["spend_eur"].tolist() == pytest.approx(want["spend"].tolist(), abs=1e-9)  # to the cent
    assert all(all(pc in str(sheet) for pc in planned)
               for sheet, planned in zip(got["postcodes"], want["postcodes"], strict=True))
    assert round(runs["spend_eur"].sum(), 2) == round(lines["spend"].sum(), 2)


def test_the_plan_page_lists_the_print_runs_with_the_answers_numbers(plan):
    from datetime import UTC, datetime

    from uplift.api.routes.pages import plan_context
    from uplift.api.web.numbers import count, eur
    from uplift.api.web.render import render
    from uplift.api.web.sessions import Session

    html = render("plan.html", session=Session("anna", "d", "csrf-token", datetime.now(UTC)),
                  **plan_context(plan, {}, current_version=plan["model_version"]))
    table = html[html.index('id="print-runs"'):]
    table = table[:table.index("</table>")]
    rows = table[table.index("<tbody>"):].split("<tr>")[1:]
    assert len(rows) == len(plan["unit_lines"])
    for row, line in zip(rows, plan["unit_lines"], strict=True):  # in the answer's order
        unit = row.split('<th scope="row">', 1)[1].split("</th>", 1)[0]
        cells = [c.split(">", 1)[1] for c in row.split("</th>", 1)[1].split("</td>")[:-1]]
        assert [unit, *cells] == [line["unit"], line["municipality"], ", ".join(line["postcodes"]), line["message"],
                                  line["channel"], count(line["contacts"]), count(line["copies"]),
                                  count(line["holdout_people"]), eur(line["spend"], cents=True)]


def test_a_model_without_places_plans_municipality_lines_and_says_so(bundle, served):
    from uplift.api.planning import NO_PLACES_NOTE, PlanService
    from uplift.api.schemas import PlanRequest
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    service = PlanService(costs=load_spec(page_costs(served[1]), CostCatalogue),
                          policy=load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy),
                          min_segment_size=PAGE_SETTINGS["min_segment_size"], cache_size=0,
                          flyers_by_neighbourhood=True)
    request = PlanRequest.model_validate(BODY)
    older = dataclasses.replace(bundle, places=None)
    body = json.loads("{" + service.compute(older, request).fragment + "}")
    assert "unit_lines" not in body
    assert NO_PLACES_NOTE.format(version=bundle.version) in body["notes"]
    flyer = [c for c in body["cells"] if c["channel"] == "flyer"]
    assert flyer  # still plans flyers, as municipality lines
    split = json.loads("{" + service.compute(bundle, request).fragment + "}")
    assert split["unit_lines"] and NO_PLACES_NOTE.format(version=bundle.version) not in split["notes"]
    assert round(sum(r["spend"] for r in split["unit_lines"]), 2) == round(
        sum(c["spend"] for c in split["cells"] if c["channel"] == "flyer"), 2)
    off = PlanService(costs=service.costs, policy=service.policy, min_segment_size=service.min_segment_size,
                      cache_size=0)  # the service's default: flyers per municipality, whatever the model saved
    plain = json.loads("{" + off.compute(bundle, request).fragment + "}")
    assert "unit_lines" not in plain and not any("per municipality" in n for n in plain["notes"])
