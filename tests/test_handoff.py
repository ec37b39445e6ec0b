"""The hand-off: one file per channel whose totals are the plan's, small neighbourhoods merged, links that come
back as the same arms and cells, malformed UTM values counted and never guessed, bad declarations refused."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from uplift.allocation import plan
from uplift.data.tableio import read_table
from uplift.errors import DataError, SpecError
from uplift.features.library import age_band_of
from uplift.handoff import (
    KEY_FILE,
    MANIFEST_FILE,
    Utm,
    apportion,
    areas_from_audience,
    as_text,
    attribute,
    attribution_counts,
    cell_counts,
    cell_targeting,
    handoff_tables,
    link,
    parse_utm,
    parse_utm_url,
    print_units,
    write_handoff,
)
from uplift.segments.assign import targetable_cells
from uplift.simulate.visits import visits_from_sheets
from uplift.specs import load_spec
from uplift.specs.handoff import HandoffSpec
from uplift.specs.planning import CostCatalogue, PlanningPolicy

MIN_SIZE = 50
START = dt.date(2026, 3, 2)
# Delft's 2622 (30 people) is below the anonymity floor; so is the whole of Schipluiden (two tiny postcodes)
REGION = {"Delft": [("2611", 900), ("2613", 700), ("2622", 30)], "Rijswijk": [("2282", 600), ("2284", 500)],
          "Schipluiden": [("2636", 20), ("2637", 15)]}
SPEC = HandoffSpec(landing_url="https://www.example.org/omscholen", short_url="https://www.example.org/f/",
                   creatives={"recognition": "cr-101"})


def audience(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(m, pc) for m, nbs in REGION.items() for pc, n in nbs for _ in range(n)]
    people = pd.DataFrame(rows, columns=["municipality", "neighbourhood"])
    people.insert(0, "person_id", [f"p{i:05d}" for i in range(len(people))])
    people["age"] = rng.integers(18, 68, len(people))
    people["gender"] = rng.choice(["female", "male"], len(people))
    return people


def effects_of(people: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """A segment x arm table over the audience's targetable cells (merged below the floor, as the product does)."""
    rng = np.random.default_rng(seed)
    cells = targetable_cells(people.assign(age_band=age_band_of(people["age"])), ("age_band", "gender", "municipality"),
                             MIN_SIZE)
    sizes = (people.assign(segment=cells["segment"]).query("segment != ''")
             .groupby("segment")["person_id"].nunique().rename("size").reset_index())
    parts = []
    for message in ("recognition", "role_model"):
        for channel in ("meta", "flyer", "linkedin", "email"):
            part = sizes.assign(message=message, channel=channel, arm=f"{message}@{channel}")
            part["effect"] = rng.normal(0.004, 0.003, len(part))
            part["effect_sd"] = 0.001
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def costs() -> CostCatalogue:
    return load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)


@pytest.fixture(scope="module")
def small_costs(costs) -> CostCatalogue:
    """The shipped catalogue with minimum line sizes a region of 3,000 people can take (the shipped ones, EUR 28 an
    ad set and 250 copies a print run, are for regions of a hundred thousand)."""
    smaller = {"meta": {"min_line_spend": 0.5}, "linkedin": {"min_line_spend": 2.0}, "flyer": {"min_print_run": 10}}
    return costs.model_copy(update={"channels": {name: channel.model_copy(update=smaller.get(name, {}))
                                                 for name, channel in costs.channels.items()}})


@pytest.fixture(scope="module")
def world(small_costs):
    people = audience()
    policy = PlanningPolicy(holdout_share=0.1)
    result = plan(effects_of(people), budget=180, costs=small_costs, policy=policy, prices=False, references=False)
    areas = areas_from_audience(people)
    handoff = handoff_tables(result.cells, costs=small_costs, policy=policy, spec=SPEC, areas=areas, wave=3,
                             start=START, min_size=MIN_SIZE)
    return people, result.cells, areas, handoff, policy


# -- splitting whole units ----------------------------------------------------------------------------------------
def test_apportion_by_hand():
    assert apportion(10, np.array([1.0, 1.0, 1.0])).tolist() == [4, 3, 3]
    # 3.5, 1.75, 1.75: the two .75 remainders first
    assert apportion(7, np.array([0.5, 0.25, 0.25])).tolist() == [3, 2, 2]
    assert apportion(0, np.array([0.0, 0.0])).tolist() == [0, 0]
    with pytest.raises(DataError, match="weights that add up to 0"):
        apportion(3, np.array([0.0, 0.0]))


@settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 10**7), weights=st.lists(st.floats(0.01, 1e4), min_size=1, max_size=30))
def test_apportion_adds_up_and_rounds_each_share(total, weights):
    w = np.array(weights)
    parts = apportion(total, w)
    exact = total * w / w.sum()
    assert parts.sum() == total
    assert np.all(parts >= np.floor(exact - 1e-6)) and np.all(parts <= np.ceil(exact + 1e-6))


# -- where the people are --------------------------------------------------------------------------------------------
def test_a_neighbourhood_below_the_anonymity_floor_is_merged_never_shown(world, small_costs):
    from uplift.handoff import plan_lines

    _, _, areas, handoff, _ = world
    units = print_units(areas, ("Delft",), min_size=MIN_SIZE)
    assert [u.postcodes for u in units] == [("2611",), ("2613", "2622")]  # 2622 joins the smallest shown one
    assert all(u.people >= MIN_SIZE for u in units) and units[1].merged and units[1].code == "delft_pc_2613_2622"
    whole = print_units(areas, ("Delft", "Schipluiden"), min_size=MIN_SIZE)  # a municipality below the floor
    assert all(u.people >= MIN_SIZE for u in whole)
    assert ("2622",) not in [u.postcodes for u in whole] and ("2636", "2637") not in [u.postcodes for u in whole]
    # a print run is a planned flyer line: a municipality's (or merged municipalities') neighbourhoods, never a
    # small neighbourhood on its own
    runs = handoff.sheets["flyer_print_runs.csv"]
    assert not runs.empty and "2622" not in set(runs["postcodes"]) and "2622" not in set(handoff.key["postcodes"])
    assert set(runs["postcodes"]) <= {"2611; 2613; 2622", "2282; 2284", "2636; 2637", "2282; 2284; 2636; 2637",
                                      "2611; 2613; 2622; 2636; 2637", "2282; 2284; 2611; 2613; 2622; 2636; 2637"}
    delft = pd.DataFrame({"segment": ["age_band=25-34|gender=female|municipality=Delft"], "message": "recognition",
                          "channel": "flyer", "contacts": [500], "holdout_people": [55], "spend": [35.0]})
    line = plan_lines(delft, costs=small_costs, areas=areas, min_size=MIN_SIZE).iloc[0]
    assert line["postcodes"] == ("2611", "2613", "2622") and line["age_band"] == line["gender"] == "all"


def test_no_file_carries_a_count_of_people_of_an_area_or_a_cell(world, tmp_path):
    handoff = world[3]
    write_handoff(handoff, tmp_path / "h")
    columns = {c for f in (tmp_path / "h").glob("*.csv") for c in pd.read_csv(f).columns}
    assert not columns & {"size", "people", "residents", "audience", "audience_size"}
    text = (tmp_path / "h" / MANIFEST_FILE).read_text()
    assert "people\"" not in text.replace("holdout_people", "")


def test_merged_municipalities_are_read_against_their_siblings():
    labels = ["age_band=25-34|gender=female|municipality=Delft", "age_band=25-34|gender=female|municipality=other",
              "age_band=55-67|gender=other|municipality=other"]
    t = cell_targeting(labels, ("Delft", "Rijswijk", "Wassenaar"))
    assert t[labels[0]].municipalities == ("Delft",)
    assert t[labels[1]].municipalities == ("Rijswijk", "Wassenaar") and t[labels[1]].gender == "female"
    assert t[labels[2]].gender == "all" and t[labels[2]].municipalities == ("Delft", "Rijswijk", "Wassenaar")
    with pytest.raises(DataError, match="only targetable cells"):
        cell_targeting(["persona=heavy_work"], ("Delft",))
    with pytest.raises(DataError, match="'Leiden' is not in the areas"):
        cell_targeting(["age_band=25-34|gender=female|municipality=Leiden"], ("Delft",))


# -- the files add up to the plan -----------------------------------------------------------------------------------
def test_handoff_files_add_up_to_the_plan_to_the_cent(world, tmp_path):
    _, cells, _, handoff, _ = world
    folder = write_handoff(handoff, tmp_path / "handoff")
    funded = cells[cells["contacts"] > 0]
    plan_cents = round(funded["spend"].sum() * 100)
    sheets = {f.name: pd.read_csv(f) for f in folder.glob("*_*.csv") if f.name not in ("utm_key.csv",)}
    spend = {"meta_ad_sets.csv": "budget_eur", "linkedin_ad_sets.csv": "budget_eur",
             "flyer_print_runs.csv": "spend_eur",
             "email_mailings.csv": "spend_eur"}
    assert set(spend) <= set(sheets)  # every channel the plan funds has its file
    cents = {name: round(sheets[name][col].sum() * 100) for name, col in spend.items()}
    assert sum(cents.values()) == plan_cents
    for name in spend:  # each channel within a cent of the plan's spend on it
        assert abs(cents[name] - funded.loc[funded["channel"] == name.split("_")[0], "spend"].sum() * 100) <= 1
    contacts = sum(sheets[n]["addresses" if n.startswith("email") else "planned_contacts"].sum() for n in spend)
    assert contacts == funded["contacts"].sum()
    holdout = pd.read_csv(folder / "holdout.csv")
    assert holdout["planned_holdout_people"].sum() == funded["holdout_people"].sum()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["adds_up"] and round(manifest["plan"]["spend_eur"] * 100) == plan_cents
    assert sorted(f["file"] for f in manifest["files"]) == sorted(
        p.name for p in folder.iterdir() if p.suffix == ".csv")


def test_ad_sets_speak_the_platforms_terms(world):
    _, _, _, handoff, _ = world
    meta = handoff.sheets["meta_ad_sets.csv"]
    assert set(meta["gender"]) <= {"female", "male", "all"} and (meta["age_min"] < meta["age_max"]).all()
    assert set(meta.loc[meta["message"] == "recognition", "creative_id"]) <= {"cr-101"}
    assert (meta["end_date"] == "2026-03-29").all() and meta["not_targeted"].eq("").all()
    linkedin = handoff.sheets["linkedin_ad_sets.csv"]
    assert (linkedin["gender"] == "all").all() and (linkedin["not_targeted"] == "gender").all()
    runs = handoff.sheets["flyer_print_runs.csv"]
    assert (runs["copies"] == np.ceil(runs["planned_contacts"] / 1.6 - 1e-9)).all()
    assert runs["short_url"].str.match(r"^https://www\.example\.org/f/[0-9a-f]{8}$").all()
    for url in pd.concat([meta["url"], runs["url"]]):
        assert isinstance(parse_utm_url(url), Utm)


# -- the round trip -------------------------------------------------------------------------------------------------
def test_utm_round_trip_from_plan_to_the_same_cells(world, tmp_path):
    _, _, _, handoff, _ = world
    folder = write_handoff(handoff, tmp_path / "handoff")
    sheets = {f.name: pd.read_csv(f) for f in folder.glob("*.csv") if f.name not in ("utm_key.csv", "holdout.csv")}
    enrolments, truth = visits_from_sheets(sheets, rate=0.05, start=START, seed=7)
    assert len(enrolments) > 50
    attributed = attribute(enrolments, read_table(folder / KEY_FILE))
    assert (attributed["status"] == "attributed").all()
    merged = attributed.merge(truth, on="person_id")
    assert (merged["cell"] == merged["utm_term"]).all() and (merged["file_x"] == merged["file_y"]).all()
    assert (merged["arm"] == merged["message_y"] + "@" + merged["file_y"].str.split("_").str[0]).all()
    assert (merged["wave"] == 3).all()
    expected = truth.assign(arm=truth["message"] + "@" + truth["file"].str.split("_").str[0]).groupby(
        ["arm", "utm_term"]).size()
    counted = cell_counts(attributed).set_index(["arm", "cell"])["registrations"]
    assert counted.to_dict() == expected.to_dict()


def test_malformed_and_unknown_utm_values_are_counted_never_guessed(world):
    _, _, _, handoff, _ = world
    good = handoff.key.iloc[0]
    base = "https://www.example.org/omscholen?"
    query = (f"utm_source={good.utm_source}&utm_medium={good.utm_medium}&utm_campaign=wave-3"
             f"&utm_content={good.utm_content}&utm_term={good.utm_term}")
    urls = {
        "good": base + query,
        "none": "https://www.example.org/omscholen",
        "upper": base + query.replace(f"utm_source={good.utm_source}", f"utm_source={good.utm_source.upper()}"),
        "space": base + query.replace(f"utm_term={good.utm_term}", f"utm_term={good.utm_term}%20"),
        "twice": base + query + "&utm_term=pc_2611",
        "no term": base + query.replace(f"&utm_term={good.utm_term}", ""),
        "wave": base + query.replace("wave-3", "Wave3"),
        "zero": base + query.replace("wave-3", "wave-03"),
        "other wave": base + query.replace("wave-3", "wave-9"),
        "other term": base + query.replace(f"utm_term={good.utm_term}", "utm_term=pc_9999"),
        "other channel": base + query.replace(f"utm_source={good.utm_source}", "utm_source=tiktok"),
        "junk": "https://www.example.org/omscholen?utm_source=%ZZ&&=",
    }
    enrolments = pd.DataFrame({"person_id": list(urls), "event": "registration",
                               "occurred_at": pd.Timestamp("2026-03-05", tz="UTC"), "visit_url": list(urls.values())})
    out = attribute(enrolments, handoff.key).set_index("person_id")
    assert out.loc["good", "status"] == "attributed" and out.loc["good", "cell"] == good.utm_term
    assert out.loc["none", "status"] == "no utm"
    for name in ("upper", "space", "twice", "no term", "wave", "zero", "junk"):
        assert out.loc[name, "status"] == "malformed", name
        assert pd.isna(out.loc[name, "arm"]) and pd.isna(out.loc[name, "cell"])  # nothing guessed
    assert out.loc["twice", "reason"] == "utm_term given more than once"
    assert out.loc["no term", "reason"] == "missing utm_term"
    assert out.loc["wave", "reason"] == "utm_campaign is not wave-<n>"
    for name, reason in (("other wave", "utm_campaign names no line"), ("other term", "utm_term names no line"),
                         ("other channel", "utm_source names no line")):
        assert out.loc[name, "status"] == "unknown" and out.loc[name, "reason"].startswith(reason), name
    counts = attribution_counts(out.reset_index())
    assert counts["registrations"].sum() == len(urls)
    assert counts.groupby("status")["registrations"].sum().to_dict() == {"attributed": 1, "no utm": 1, "malformed": 7,
                                                                        "unknown": 3}


def test_utm_columns_instead_of_a_url(world):
    _, _, _, handoff, _ = world
    key = handoff.key
    rows = key.head(3)[["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"]].copy()
    rows.loc[rows.index[2], "utm_content"] = None  # a registration with four of the five values
    enrolments = rows.assign(person_id=["a", "b", "c"], event="registration",
                             occurred_at=pd.Timestamp("2026-03-05", tz="UTC"))
    out = attribute(enrolments, key)
    assert out["status"].tolist() == ["attributed", "attributed", "malformed"]
    assert out["reason"].iloc[2] == "missing utm_content"
    with pytest.raises(Exception, match="no UTM columns") as info:
        attribute(enrolments[["person_id", "event", "occurred_at"]], key, source="enrolments.csv")
    assert type(info.value).__name__ == "SchemaError" and "enrolments.csv" in str(info.value)


@settings(max_examples=80, deadline=None)
@given(source=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True),
       content=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True),
       term=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,40}", fullmatch=True), wave=st.integers(1, 999))
def test_a_link_parses_back_to_its_values(source, content, term, wave):
    utm = Utm(source=source, medium="print", wave=wave, content=content, term=term)
    assert parse_utm_url(link("https://www.example.org/x", utm)) == utm
    assert parse_utm({"utm_source": source, "utm_medium": "print", "utm_campaign": f"wave-{wave}",
                      "utm_content": content, "utm_term": term}) == utm


# -- writing ------------------------------------------------------------------------------------------------------
def test_text_cells_never_start_a_formula(tmp_path):
    frame = pd.DataFrame({"a": ["=1+1", "+cmd", "-x", "@SUM(A1)", "ok", "\t=1"], "n": [-1.5, 2, 3, 4, 5, 6]})
    safe = as_text(frame)
    assert safe["a"].tolist() == ["'=1+1", "'+cmd", "'-x", "'@SUM(A1)", "ok", "'\t=1"]
    assert safe["n"].tolist() == frame["n"].tolist()  # numbers stay numbers


def test_a_failed_write_leaves_the_previous_handoff_whole(world, tmp_path, monkeypatch):
    _, _, _, handoff, _ = world
    folder = write_handoff(handoff, tmp_path / "handoff")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = {"n": 0}
    real = Path.write_bytes

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] == 3:  # the third file of the new folder
            raise OSError("disk full")
        return real(path, data)

    monkeypatch.setattr(Path, "write_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        write_handoff(handoff, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["handoff"]  # no temporary folder left


# -- declarations --------------------------------------------------------------------------------------------------
def _catalogue(tmp_path, **flyer) -> str:
    raw = yaml.safe_load((ROOT / "serve" / "costs.yaml").read_text())
    raw["channels"]["flyer"].update(flyer)
    path = tmp_path / "costs.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("flyer, expected", [
    ({"targeting": []}, "channels.flyer.targeting: Value error, a channel that targets nothing cannot be handed over; "
                        "expected at least one of age_band, gender, municipality, neighbourhood"),
    ({"targeting": ["age_band", "postcode"]}, "channels.flyer.targeting.1: Input should be 'age_band', 'gender', "
                                              "'municipality' or 'neighbourhood'"),
    ({"targeting": ["municipality"]}, "channels.flyer: Value error, handoff: print_run is door to door per "
                                      "neighbourhood; expected 'neighbourhood' among targeting"),
])
def test_bad_channel_declarations_name_the_file_the_key_and_what_was_expected(tmp_path, flyer, expected):
    path = _catalogue(tmp_path, **flyer)
    with pytest.raises(SpecError) as info:
        load_spec(path, CostCatalogue)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid CostCatalogue") and expected in message, message


def test_a_floor_above_100_percent_names_the_file_and_the_key(tmp_path):
    raw = yaml.safe_load((ROOT / "serve" / "policy.yaml").read_text())
    raw["fairness_floors"][0]["min_share"] = 1.2
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=r"policy\.yaml: invalid PlanningPolicy: fairness_floors\.0\.min_share: "
                                        r"Input should be less than or equal to 1"):
        load_spec(path, PlanningPolicy)


def test_a_funded_channel_without_a_handoff_declaration_is_refused(world):
    _, cells, areas, _, policy = world
    bare = CostCatalogue.model_validate({"channels": {
        ch: {"cost_per_contact": 0.05, "tiers": [{"share": 0.5, "multiplier": 1.0}]}
        for ch in ("meta", "flyer", "linkedin", "email")}})
    with pytest.raises(SpecError, match=r"channels\.email: expected 'targeting'"):
        handoff_tables(cells, costs=bare, policy=policy, spec=SPEC, areas=areas, wave=3, start=START, min_size=MIN_SIZE)


def test_the_shipped_declarations_load():
    costs = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
    assert {c: d.handoff for c, d in costs.channels.items()} == {
        "meta": "ad_sets", "linkedin": "ad_sets", "flyer": "print_run", "email": "mailing"}
    spec = load_spec(ROOT / "serve" / "handoff.yaml", HandoffSpec)
    assert spec.landing_url.startswith("https://") and (ROOT / spec.region).exists()
    with pytest.raises(ValueError, match="without query string"):
        HandoffSpec(landing_url="https://www.example.org/x?utm_source=meta")


def test_every_line_is_at_its_channels_minimum_and_the_plan_runs_as_planned(world, small_costs):
    from uplift.handoff import as_run

    people, cells, areas, handoff, _ = world
    assert handoff.manifest["below_minimum"] == [] and handoff.manifest["adds_up"]
    assert {"meta", "flyer", "linkedin", "email"} <= set(cells.loc[cells["contacts"] > 0, "channel"])
    labelled = targetable_cells(people.assign(age_band=age_band_of(people["age"])),
                                ("age_band", "gender", "municipality"), MIN_SIZE)["segment"]
    sizes = people.assign(segment=labelled).groupby("segment")["person_id"].nunique().to_dict()
    run = as_run(cells, sizes, costs=small_costs, municipalities=tuple(dict.fromkeys(areas["municipality"])))
    # each cell of a line got the line's contacts in proportion to its people already: only the rounding to
    # whole contacts per cell differs (less than one contact, and its price)
    assert np.abs(run["contacts"] - cells["contacts"]).max() < 1.0
    assert np.abs(run["spend"] - cells["spend"]).max() < 0.25


def test_as_run_spreads_a_line_over_the_cells_it_cannot_tell_apart(costs):
    from uplift.handoff import as_run

    women, men = "age_band=25-34|gender=female|municipality=Delft", "age_band=25-34|gender=male|municipality=Delft"
    cells = pd.DataFrame({
        "segment": [women, men] * 3, "message": "m", "channel": ["flyer"] * 2 + ["meta"] * 2 + ["linkedin"] * 2,
        "contacts": [300, 0, 100, 0, 40, 20], "spend": [21.0, 0.0, 3.0, 0.0, 4.2, 2.1],
    })
    cells["arm"] = cells["message"] + "@" + cells["channel"]
    run = as_run(cells, {women: 600, men: 400}, costs=costs, municipalities=("Delft",))
    # the flyer reaches Delft's 25-34 women and men in proportion to their people (60:40); so does LinkedIn
    assert run["contacts"].tolist() == pytest.approx([180, 120, 100, 0, 36, 24])
    assert run["spend"].tolist() == pytest.approx([12.6, 8.4, 3.0, 0.0, 3.78, 2.52])
    assert (run["contacts"].sum() == cells["contacts"].sum()
            and run["spend"].sum() == pytest.approx(cells["spend"].sum()))


def test_names_outside_the_scheme_are_slugged_and_still_come_back(world, costs):
    from uplift.handoff.utm import utm_value

    assert utm_value("free_voucher") == "free_voucher" and utm_value("Free Voucher!") == "free-voucher"
    _, cells, areas, _, policy = world
    renamed = cells.assign(message=cells["message"].map({"recognition": "Recognition", "role_model": "Role Model"}))
    h = handoff_tables(renamed, costs=costs, policy=policy, spec=SPEC, areas=areas, wave=3, start=START,
                       min_size=MIN_SIZE)
    assert set(h.key["utm_content"]) == {"recognition", "role-model"}
    enrolments, _ = visits_from_sheets(h.sheets, rate=0.05, start=START, seed=2)
    out = attribute(enrolments, h.key)
    assert (out["status"] == "attributed").all() and set(out["message"]) == {"Recognition", "Role Model"}
    assert set(out["arm"].str.split("@").str[0]) == {"Recognition", "Role Model"}  # the plan's own names
    clash = cells.assign(message=cells["message"].map({"recognition": "Role Model", "role_model": "role-model"}))
    with pytest.raises(DataError, match="give the same UTM value 'role-model'"):
        handoff_tables(clash, costs=costs, policy=policy, spec=SPEC, areas=areas, wave=3, start=START,
                       min_size=MIN_SIZE)


def test_the_people_of_a_line_are_its_cells_people(world, costs):
    from uplift.handoff import line_people, plan_lines

    people, cells, areas, _, _ = world
    lines = plan_lines(cells, costs=costs, areas=areas, min_size=MIN_SIZE)
    members = line_people(lines, people)
    labelled = people.assign(segment=targetable_cells(people.assign(age_band=age_band_of(people["age"])),
                                                      ("age_band", "gender", "municipality"), MIN_SIZE)["segment"])
    for line in lines[lines["channel"] == "meta"].itertuples():  # one ad set per cell: exactly its people
        expected = set(labelled.loc[labelled["segment"].isin(line.segments), "person_id"])
        got = set(members.loc[(members["line"] == line.line) & (members["message"] == line.message), "person_id"])
        assert got == expected, line.line
    runs = lines[lines["channel"] == "flyer"]
    for line in runs.itertuples():  # a print run: everyone in its postcodes, of every age and gender
        got = members.loc[(members["channel"] == "flyer") & (members["line"] == line.line) &
                          (members["message"] == line.message), "person_id"]
        assert set(got) == set(people.loc[people["neighbourhood"].isin(line.postcodes), "person_id"])
        assert len(got) >= MIN_SIZE
