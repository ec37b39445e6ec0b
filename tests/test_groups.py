"""Priority groups (serve/groups.yaml) and each segment's composition: shares of distinct people,
counted from the audience, never released where they rest on few people."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.errors import SpecError
from uplift.pipeline import load_priority_groups, load_segment_spec
from uplift.segments.composition import (
    PriorityGroups,
    group_members,
    released_composition,
    segment_composition,
    with_composition,
)
from uplift.segments.table import segment_members
from uplift.specs import load_spec
from uplift.specs.groups import GroupSpec
from uplift.specs.segments import PersonaRule, SegmentSpec


def people() -> pd.DataFrame:
    """Two cells of (gender x municipality): Delft women (6 people, 2 with a migration background, one of them
    seen in two waves) and Leiden men (4 people, 3 with a migration background, in the poorer neighbourhood 2222)."""
    rows = [("d1", 34, "female", "Delft", "1111", 1.0), ("d2", 51, "female", "Delft", "1111", 1.0),
            ("d3", 23, "female", "Delft", "1111", 0.0), ("d4", 45, "female", "Delft", "1111", 0.0),
            ("d5", 62, "female", "Delft", "1111", 0.0), ("d6", 38, "female", "Delft", "1111", 0.0),
            ("d1", 34, "female", "Delft", "1111", 1.0),  # d1 again, in a later wave: one person
            ("l1", 44, "male", "Leiden", "2222", 1.0), ("l2", 29, "male", "Leiden", "2222", 1.0),
            ("l3", 55, "male", "Leiden", "2222", 1.0), ("l4", 40, "male", "Leiden", "3333", 0.0)]
    return pd.DataFrame(rows, columns=["person_id", "age", "gender", "municipality", "neighbourhood",
                                       "migration_background"])


def declared(**extra) -> PriorityGroups:
    spec = GroupSpec.model_validate({"deprivation_from": "regions.yaml", "groups": [
        {"name": "migration_background", "rule": {"migration_background": True}},
        {"name": "age_45_plus", "rule": {"age_min": 45}},
        {"name": "poorer_neighbourhoods", "rule": {"deprivation_min": 0.6}},
    ]})
    return PriorityGroups(spec=spec, deprivation={"1111": 0.2, "2222": 0.8, "3333": 0.5}, source="groups.yaml", **extra)


SPEC = SegmentSpec(dimensions=("gender", "municipality"), min_size=2,
                   personas=(PersonaRule(name="older", description="", rule={"age_min": 45}),))


def test_each_segments_share_of_a_group_counts_distinct_people_by_hand():
    rows = people()
    members = segment_members(rows, SPEC)
    shares = segment_composition(rows, {"targetable": members["segment"].to_numpy(),
                                        "persona": members["persona_segment"].to_numpy()}, declared())
    shares = shares.set_index("segment")
    delft, leiden = "gender=female|municipality=Delft", "gender=male|municipality=Leiden"
    assert shares.loc[delft, "group__migration_background"] == pytest.approx(2 / 6)  # d1 counted once
    assert shares.loc[leiden, "group__migration_background"] == pytest.approx(3 / 4)
    assert shares.loc[delft, "group__age_45_plus"] == pytest.approx(3 / 6)
    assert shares.loc[leiden, "group__poorer_neighbourhoods"] == pytest.approx(3 / 4)  # 2222 at 0.8; 3333 at 0.5
    assert shares.loc[delft, "group__poorer_neighbourhoods"] == 0.0
    # the persona segment (45 and over: d2, d4, d5, l3) is all in the 45-plus group, half with a migration background
    assert shares.loc["persona=older", "group__age_45_plus"] == 1.0
    assert shares.loc["persona=older", "group__migration_background"] == pytest.approx(2 / 4)


def test_with_composition_adds_a_column_per_group_and_keeps_the_tables_rows():
    rows = people()
    labels = segment_members(rows, SPEC)
    table = pd.DataFrame({"segment": list(labels["segment"].unique())[::-1] + ["persona=older"], "arm": "m@meta"})
    out = with_composition(table, rows, SPEC, declared())
    assert list(out["segment"]) == list(table["segment"])
    assert [c for c in out.columns if c.startswith("group__")] == [
        "group__migration_background", "group__age_45_plus", "group__poorer_neighbourhoods"]


def test_a_share_resting_on_fewer_people_than_the_floor_is_not_released():
    table = pd.DataFrame({"segment": ["a", "b", "c"], "size": [60, 60, 200],
                          "group__women": [3 / 60, 55 / 60, 0.5]})
    released = released_composition(table, floor=10)
    # 3 women (a) or 5 others (b) would be disclosed; 100 and 100 in c may be shown
    assert np.isnan(released["group__women"][:2]).all() and released["group__women"][2] == 0.5
    assert table["group__women"][0] == 3 / 60  # the planner's copy is untouched


def test_a_group_rule_over_a_missing_attribute_names_the_file_the_group_and_the_key():
    rows = people().drop(columns="migration_background")
    with pytest.raises(SpecError, match=r"groups\.yaml: groups\[0\] 'migration_background' rule key "
                                        r"'migration_background': expected the audience column "
                                        r"'migration_background', which the rows do not have"):
        group_members(rows, declared())


def test_a_neighbourhood_without_a_deprivation_score_is_named():
    groups = declared()
    groups = PriorityGroups(spec=groups.spec, deprivation={"1111": 0.2}, source="groups.yaml")
    with pytest.raises(SpecError, match=r"groups\[2\] 'poorer_neighbourhoods' rule key 'deprivation_min': "
                                        r"neighbourhood\(s\) '2222', '3333' have no deprivation score"):
        group_members(people(), groups)


@pytest.mark.parametrize(("text", "match"), [
    ("groups:\n  - {name: faith, rule: {religion: [x]}}\n",
     r"groups\.0\.rule: Value error, unknown key\(s\) 'religion'; expected audience attributes: age_min"),
    ("groups:\n  - {name: poorer, rule: {deprivation_min: 0.6}}\n",
     r"expected 'deprivation_from' naming a region declaration"),
    ("groups:\n  - {name: women, rule: {gender: [woman]}}\n",
     r"groups\.0\.rule: Value error, gender: \['woman'\] not valid; expected some of: female, male, other"),
    ("groups:\n  - {name: everyone, rule: {}}\n", r"a rule needs at least one key"),
    ("groups:\n  - {name: Women, rule: {gender: [female]}}\n", r"groups\.0\.name: Value error, name 'Women'"),
])
def test_a_bad_group_declaration_names_the_file_the_key_and_what_was_expected(tmp_path, text, match):
    path = tmp_path / "groups.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=rf"groups\.yaml: invalid GroupSpec: .*{match}"):
        load_spec(path, GroupSpec)


def test_the_shipped_groups_load_with_every_neighbourhoods_deprivation():
    groups = load_priority_groups()
    assert groups is not None
    assert {g.name for g in groups.spec.groups} >= {"women", "age_45_plus", "age_50_plus", "migration_background",
                                                    "poorer_neighbourhoods"}
    assert groups.deprivation["2525"] == 0.95  # Schilderswijk


def test_composition_of_a_simulated_world_matches_the_audience(strong_table):
    rows = strong_table.frame
    spec = load_segment_spec()
    groups = load_priority_groups()
    members = segment_members(rows, spec)
    shares = segment_composition(rows, {"targetable": members["segment"].to_numpy(),
                                        "persona": members["persona_segment"].to_numpy()}, groups).set_index("segment")
    female = [s for s in shares.index if "gender=female" in s]
    male = [s for s in shares.index if "gender=male" in s]
    assert (shares.loc[female, "group__women"] == 1.0).all() and (shares.loc[male, "group__women"] == 0.0).all()
    assert (shares.loc["persona=heavy_work", "group__women"] == 0.0)  # a persona of men
    # over all targetable people, the segments' shares weighted by their people give the audience's share
    people = rows.assign(segment=members["segment"].to_numpy()).drop_duplicates(["segment", "person_id"])
    people = people[people["segment"] != ""]
    expected = float((people["migration_background"] > 0.5).mean())
    size = people.groupby("segment").size()
    weighted = float((shares.loc[size.index, "group__migration_background"] * size).sum() / size.sum())
    assert weighted == pytest.approx(expected, abs=1e-12)
