"""The registry: one registered model per use, and a gate that needs evidence.

Hand-made pairs of models on randomised rows with a known truth (the gate's decision), then the MLflow
side on small experiment files (names, refusals and their reasons, moves by hand, the older store).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from conftest import HILLSTROM, ROOT
from uplift.data.trainingtable import PROPENSITY_PREFIX, FeatureColumn, TrainingTable
from uplift.errors import DataError, ModelNotFoundError, SpecError
from uplift.specs.planning import CostCatalogue, PlanningPolicy
from uplift.specs.segments import SegmentSpec
from uplift.tracking.evidence import PlanningInputs, Split, decide, plan_evidence, policy_evidence, shared_heldout
from uplift.tracking.uses import ModelUse, campaign_use, experiment_use

ARMS = ("control", "a", "b")


# -- names by use ---------------------------------------------------------------------------
def test_names_follow_the_use():
    assert campaign_use("registration").registered_name == "uplift-registration"
    assert experiment_use("hillstrom", "visit").registered_name == "uplift-hillstrom-visit"
    assert experiment_use("My Trial", "bought_2w").registered_name == "uplift-my-trial-bought-2w"
    use = experiment_use("hillstrom", "visit")
    assert ModelUse.from_tags(use.tags()) == use and ModelUse.from_tags({}) is None
    with pytest.raises(SpecError, match="mapping"):
        ModelUse("experiment", "visit")


def test_the_default_served_model_is_the_default_feature_sets_campaign_model():
    from uplift.api.settings import ServiceSettings
    from uplift.config import DEFAULT_CAMPAIGN_MODEL, Settings
    from uplift.pipeline import load_feature_set

    event = load_feature_set("default").outcome.event
    assert campaign_use(event).registered_name == DEFAULT_CAMPAIGN_MODEL == "uplift-registration"
    assert Settings().registered_model == DEFAULT_CAMPAIGN_MODEL
    assert ServiceSettings.model_fields["registered_model"].default == DEFAULT_CAMPAIGN_MODEL
    assert yaml.safe_load((ROOT / "serve" / "service.yaml").read_text())["registered_model"] == DEFAULT_CAMPAIGN_MODEL


# -- the gate on a hand-made pair of targeting policies -------------------------------------
# x = 0, 1, 2 in equal shares, each arm with probability 1/3. Conversion rates:
#   control 0.10 everywhere; a: 0.30 / 0.10 / 0.20; b: 0.10 / 0.30 / 0.20 (x = 0 / 1 / 2)
# "best" gives a to x=0, b to x=1, a to x=2 (value 0.80/3 = 0.2667); "worst" b, a, control (0.10)
# "twin" is "best" but gives b to x=2, where a and b convert alike: the same true value.
RATES = {"control": (0.10, 0.10, 0.10), "a": (0.30, 0.10, 0.20), "b": (0.10, 0.30, 0.20)}
POLICIES = {"best": ("a", "b", "a"), "twin": ("a", "b", "b"), "worst": ("b", "a", "control")}


class HandModel:
    """A targeting policy by stratum, with the interface the gate reads of a registered model."""

    def __init__(self, policy: str, features: tuple[str, ...] = ("x",)) -> None:
        self.choice = np.array(POLICIES[policy], dtype=object)
        self.feature_names = list(features)
        self.arms = ("a", "b")
        self.control = "control"

    def recommend(self, frame: pd.DataFrame) -> np.ndarray:
        return self.choice[frame["x"].to_numpy()]


def _hand_rows(seed: int, n: int) -> TrainingTable:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, n)
    arm = np.array(ARMS, dtype=object)[rng.integers(0, 3, n)]
    rate = np.select([arm == a for a in ARMS], [np.array(RATES[a])[x] for a in ARMS])
    frame = pd.DataFrame({"person_id": [f"p{i}" for i in range(n)], "wave": 1, "arm": arm,
                          "outcome": (rng.uniform(size=n) < rate).astype(np.int64), "x": x,
                          **{f"{PROPENSITY_PREFIX}{a}": np.full(n, 1 / 3) for a in ARMS}})
    return TrainingTable(frame=frame, features=(FeatureColumn("x", "numeric"),), arms=ARMS, control="control",
                         outcome="y", source="hand-made")


def _policy_decision(rows: TrainingTable, challenger: str, champion: str):
    evidence = policy_evidence(rows, HandModel(challenger), HandModel(champion), confidence=0.95, same_data=True)
    return decide(evidence, margin=0.0, alias="champion", champion="v1")


def test_a_clearly_better_policy_is_promoted():
    decision = _policy_decision(_hand_rows(1, 6000), "best", "worst")
    e = decision.evidence
    assert decision.promoted and decision.reason.endswith("> margin 0: promoted")
    assert e.gain.value == pytest.approx(1000 * (0.8 / 3 - 0.1), abs=3 * e.gain.se)  # +167 per 1,000 people
    assert e.gain.value == pytest.approx(e.challenger.value - e.champion.value, abs=1e-9)
    assert ("challenger " in decision.reason and "champion v1 " in decision.reason
            and "'y' per 1,000 people" in decision.reason)


def test_a_difference_of_noise_is_not_promoted():
    # the twin's true gain over the best is 0: promoted only when the noise happens to clear the one-sided
    # 95% bound, about 5% of the time (binomial sd at 100 seeds: 2.2 points)
    promoted = [_policy_decision(_hand_rows(seed, 3000), "twin", "best").promoted for seed in range(100)]
    assert sum(promoted) <= 10
    decision = _policy_decision(_hand_rows(0, 3000), "twin", "best")
    assert not decision.promoted and decision.reason.endswith("is not above margin 0: champion stays at v1")


def test_a_policy_compared_with_itself_gains_exactly_nothing():
    decision = _policy_decision(_hand_rows(2, 2000), "best", "best")
    assert decision.evidence.gain.value == 0.0 and decision.evidence.gain.se == 0.0 and not decision.promoted


def test_the_margin_is_on_the_lower_bound():
    rows = _hand_rows(1, 6000)
    evidence = policy_evidence(rows, HandModel("best"), HandModel("worst"), confidence=0.95, same_data=True)
    lower = evidence.gain.lo
    assert decide(evidence, margin=lower - 1, alias="champion", champion="v1").promoted
    assert not decide(evidence, margin=lower + 1, alias="champion", champion="v1").promoted


def test_a_champion_that_cannot_score_these_rows_is_named():
    rows = _hand_rows(3, 500)
    with pytest.raises(DataError, match=r"the champion needs feature column\(s\) \['x2'\]"):
        policy_evidence(rows, HandModel("best"), HandModel("best", features=("x", "x2")), confidence=0.95,
                        same_data=False)


def test_shared_heldout_rows_are_held_out_by_both_splits():
    rows = _hand_rows(4, 4000)
    mine, theirs = Split(0, 0.3), Split(7, 0.3)
    same, note = shared_heldout(rows, mine, mine)
    assert same.sum() == mine.heldout(rows.frame["person_id"]).sum() and "held-out rows" in note
    both, note = shared_heldout(rows, mine, theirs)
    ids = rows.frame["person_id"]
    np.testing.assert_array_equal(both, mine.heldout(ids) & theirs.heldout(ids))
    assert 0.05 < both.mean() < 0.15 and "both splits hold out" in note  # about 0.3 x 0.3 of the rows
    assert Split.from_tags(mine.tags()) == mine and Split.from_tags({}) is None


# -- the gate on a hand-made pair of campaign plans -------------------------------------------
# Five cells (age band x gender, one municipality), 1,200 people each, one wave; arms holdout and two
# messages on meta with probability 1/3 each. The holdout converts at 0.05; m1 adds 0.15 for women,
# m2 for men; in the fifth cell (gender other) both add 0.10. A segment table that knows this plans
# m1 for women and m2 for men; the swapped one the other way round, adding nothing.
CELLS = [("25-34", "female"), ("25-34", "male"), ("45-54", "female"), ("45-54", "male"), ("25-34", "other")]
PLAN_ARMS = ("holdout", "m1@meta", "m2@meta")
SPEC = SegmentSpec.model_validate({"name": "hand", "dimensions": ["age_band", "gender", "municipality"],
                                   "min_size": 50})
POLICY = PlanningPolicy(holdout_share=0.0)


def _true_effect(gender: str, arm: str) -> float:
    if gender == "other":
        return 0.10
    return 0.15 if (arm == "m1@meta") == (gender == "female") else 0.0


def _campaign_rows(seed: int, per_cell: int = 1200) -> TrainingTable:
    rng = np.random.default_rng(seed)
    parts = []
    for k, (band, gender) in enumerate(CELLS):
        arm = np.array(PLAN_ARMS, dtype=object)[rng.integers(0, 3, per_cell)]
        rate = 0.05 + np.array([0.0 if a == "holdout" else _true_effect(gender, a) for a in arm])
        parts.append(pd.DataFrame({"person_id": [f"c{k}-{i}" for i in range(per_cell)], "wave": 1, "arm": arm,
                                   "outcome": (rng.uniform(size=per_cell) < rate).astype(np.int64),
                                   "age_band": band, "gender": gender, "municipality": "Delft"}))
    frame = pd.concat(parts, ignore_index=True)
    for a in PLAN_ARMS:
        frame[f"{PROPENSITY_PREFIX}{a}"] = 1 / 3
    return TrainingTable(frame=frame, features=(FeatureColumn("gender", "categorical"),), arms=PLAN_ARMS,
                         control="holdout", outcome="registration", source="hand-made")


def _segment_table(effect, per_cell: int = 1200) -> pd.DataFrame:
    rows = []
    for band, gender in CELLS:
        for arm in PLAN_ARMS[1:]:
            e = effect(gender, arm)
            rows.append({"segment": f"age_band={band}|gender={gender}|municipality=Delft", "kind": "targetable",
                         "size": per_cell, "arm": arm, "message": arm.split("@")[0], "channel": "meta",
                         "base_rate": 0.05, "effect": e, "effect_sd": 0.01, "lo": e - 0.013, "hi": e + 0.013,
                         "age_band": band, "gender": gender})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def costs():
    from uplift.specs import load_spec

    return load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)


def _plan_decision(rows, challenger, champion, costs):
    evidence = plan_evidence(rows, challenger, champion, planning=PlanningInputs(SPEC, costs, POLICY), budget=1_000,
                             confidence=0.95, same_data=True)
    return decide(evidence, margin=0.0, alias="champion", champion="v1")


def _true_conversions(table: pd.DataFrame, costs) -> float:
    """What the plan of ``table`` truly adds: its contacts times the true effects."""
    from uplift.allocation import plan

    cells = plan(table, budget=1_000, costs=costs, policy=POLICY, references=False).cells
    gender = cells["segment"].str.extract(r"gender=(\w+)")[0]
    return float(sum(c * _true_effect(g, a) for c, g, a in zip(cells["contacts"], gender, cells["arm"], strict=True)))


def test_a_clearly_better_plan_is_promoted(costs):
    knows = _segment_table(_true_effect)
    swapped = _segment_table(lambda g, a: _true_effect(g, "m2@meta" if a == "m1@meta" else "m1@meta"))
    decision = _plan_decision(_campaign_rows(5), knows, swapped, costs)
    e = decision.evidence
    assert decision.promoted, decision.reason
    good, bad = _true_conversions(knows, costs), _true_conversions(swapped, costs)
    assert good > 300 and bad < good / 3
    assert e.challenger.value == pytest.approx(good, abs=3 * e.challenger.se)
    assert e.champion.value == pytest.approx(bad, abs=3 * e.champion.se)
    assert e.gain.value == pytest.approx(good - bad, abs=3 * e.gain.se) and e.gain.se < 0.2 * (good - bad)
    assert (e.metric == "incremental conversions of the EUR 1,000 plan"
            and e.notes[0].endswith("100% of its contacts valued here"))
    assert e.notes[0].startswith("the challenger's plan spends EUR ") and e.notes[1].startswith("the champion's plan")


def test_plans_that_differ_only_where_the_arms_convert_alike_are_not_promoted(costs):
    # both tables know the truth but break the tie of the fifth cell differently: a true gain of 0, promoted
    # only when the noise clears the one-sided 95% bound (P(3 or more of 8) = 0.6% at 5% each)
    leans_m1 = _segment_table(lambda g, a: _true_effect(g, a) + (0.001 if g == "other" and a == "m1@meta" else 0))
    leans_m2 = _segment_table(lambda g, a: _true_effect(g, a) + (0.001 if g == "other" and a == "m2@meta" else 0))
    assert _true_conversions(leans_m1, costs) == pytest.approx(_true_conversions(leans_m2, costs))
    decisions = [_plan_decision(_campaign_rows(seed), leans_m2, leans_m1, costs) for seed in range(10, 18)]
    assert sum(d.promoted for d in decisions) <= 2
    kept = [d for d in decisions if not d.promoted]
    assert all(d.reason.endswith("is not above margin 0: champion stays at v1") for d in kept)
    assert all(d.evidence.gain.se > 0 and d.evidence.gain.value != 0 for d in decisions)  # the plans do differ


# -- the MLflow side, on a small experiment file -----------------------------------------------
SMALL = {"name": "pooled_tiny", "learner": "pooled", "cv": {"folds": 2, "test_share": 0.3, "seed": 0},
         "lightgbm": {"n_estimators": 20, "learning_rate": 0.1, "num_leaves": 5, "min_child_samples": 50, "n_jobs": 1}}


def _experiment(folder: Path, seed: int, features: dict[str, str], n: int = 3000) -> TrainingTable:
    """A randomised three-arm experiment file (a helps when f1 > 0.5, b otherwise) and its mapping ``synth``."""
    from uplift.adapters import ColumnMapping, load_experiment_csv

    rng = np.random.default_rng(seed)
    grp = rng.choice(["none", "a", "b"], n)
    f1 = rng.uniform(size=n)
    rate = 0.1 + 0.25 * ((grp == "a") & (f1 > 0.5)) + 0.25 * ((grp == "b") & (f1 <= 0.5))
    frame = pd.DataFrame({"id": [f"s{seed}-{i}" for i in range(n)], "grp": grp, "f1": f1,
                          "f2": rng.choice(["u", "v"], n), "y": (rng.uniform(size=n) < rate).astype(int)})
    csv = folder / f"synth-{seed}.csv"
    frame.to_csv(csv, index=False)
    mapping = ColumnMapping(name="synth", treatment="grp", control="none", outcomes=("y",), features=features,
                            id_column="id")
    return load_experiment_csv(csv, mapping)


@pytest.fixture(scope="module")
def experiment_store(tmp_path_factory):
    """v1 of ``uplift-synth-y`` on features f1, f2; v2 on another file of the same mapping without f2."""
    from uplift.config import Settings
    from uplift.pipeline import train_and_log

    folder = tmp_path_factory.mktemp("registry")
    spec = folder / "tiny.yaml"
    spec.write_text(yaml.safe_dump(SMALL))
    settings = Settings(workdir=folder, experiment_name="registry")
    use = experiment_use("synth", "y")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        first = train_and_log(spec, _experiment(folder, 1, {"f1": "numeric", "f2": "categorical"}), settings=settings,
                              data_source="synth 1", use=use)
        second = train_and_log(spec, _experiment(folder, 2, {"f1": "numeric"}), settings=settings,
                               data_source="synth 2", use=use)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return folder, uri, first, second


@pytest.fixture()
def registry(experiment_store):
    folder, uri, first, second = experiment_store
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, registry_uri=uri)


def test_an_experiment_model_has_its_own_name_and_champion(experiment_store, registry):
    _, _, first, second = experiment_store
    assert first.registered_model == second.registered_model == "uplift-synth-y"
    assert first.promoted and first.reason.startswith("no champion yet; value of the targeting policy on the ")
    assert registry.get_registered_model("uplift-synth-y").tags["uplift.use"] == "experiment"
    assert [m.name for m in registry.search_registered_models()] == ["uplift-synth-y"]  # no campaign model touched


def test_a_challenger_on_other_data_the_champion_cannot_score_is_refused_with_the_reason(experiment_store, registry):
    _, _, first, second = experiment_store
    assert not second.promoted
    assert second.reason.startswith("not compared with champion v1 (trained on other data: digest ")
    assert "the champion needs feature column(s) ['f2'] that this table does not have" in second.reason
    assert second.reason.endswith("champion stays at v1")
    assert int(registry.get_model_version_by_alias("uplift-synth-y", "champion").version) == 1
    tags = registry.get_model_version("uplift-synth-y", "2").tags
    assert tags["gate.decision"] == "not promoted" and "gate.gain" not in tags and tags["gate.reason"] == second.reason


def test_models_lists_versions_aliases_and_reasons(experiment_store, registry):
    from uplift.tracking.registry import model_versions

    table = model_versions(registry)
    assert list(table["version"]) == [2, 1] and list(table["aliases"]) == ["", "champion"]
    assert table["use"].iloc[0] == "experiment model (mapping synth, outcome y)"
    assert list(table["reason"]) == [experiment_store[3].reason, experiment_store[2].reason]
    with pytest.raises(ModelNotFoundError, match="no model 'nope' in this store; it has 'uplift-synth-y'"):
        model_versions(registry, "nope")


def test_what_serves_plans_refuses_an_experiment_model_and_explains_an_older_store(experiment_store, registry):
    from uplift.api.modelstore import check_served_model
    from uplift.api.settings import load_service_settings
    from uplift.tracking.registry import campaign_version, promote_by_hand, unservable_reason

    folder = experiment_store[0]
    with pytest.raises(ModelNotFoundError, match="'uplift-synth-y' is an experiment model .* serve campaign models"):
        campaign_version(registry, "uplift-synth-y", "champion")
    settings = load_service_settings(workdir=folder, registered_model="uplift-synth-y")
    with pytest.raises(SpecError, match="registered_model 'uplift-synth-y': 'uplift-synth-y' is an experiment model"):
        check_served_model(settings)
    check_served_model(load_service_settings(workdir=folder))  # nothing registered under that name yet: no refusal

    # a store from before names by use: 'uplift', its champion an experiment version
    registry.create_registered_model("uplift")
    old = registry.copy_model_version("models:/uplift-synth-y/1", "uplift")
    registry.set_registered_model_alias("uplift", "champion", old.version)
    with pytest.raises(ModelNotFoundError) as missing:
        campaign_version(registry, "uplift-registration", "champion")
    assert ("no model 'uplift-registration' in this store; it has 'uplift' "
            "(registered before models were named by use)" in str(missing.value)
            and "UPLIFT_REGISTERED_MODEL=uplift" in str(missing.value))
    assert "has no segment table" in unservable_reason(registry, "uplift", "champion")
    with pytest.raises(ModelNotFoundError, match="uplift v1 .* has no segment table"):
        promote_by_hand(registry, "uplift", "1", alias="champion", reason="back to the campaign")


def _experiment_file(folder: Path) -> tuple[Path, Path, str, str]:
    """A slice of Hillstrom with its mapping, or (without hillstrom.csv) a synthetic randomised file and mapping."""
    if HILLSTROM.exists():
        path = folder / "hillstrom-slice.csv"
        pd.read_csv(HILLSTROM, nrows=6000).to_csv(path, index=False)
        return path, ROOT / "features" / "datasets" / "hillstrom.yaml", "visit", "uplift-hillstrom-visit"
    rng = np.random.default_rng(0)
    n = 6000
    grp = rng.choice(["none", "a", "b"], n)
    f1 = rng.uniform(size=n)
    rate = 0.1 + 0.2 * ((grp == "a") & (f1 > 0.5)) + 0.2 * ((grp == "b") & (f1 <= 0.5))
    path = folder / "synthetic.csv"
    pd.DataFrame({"grp": grp, "f1": f1, "y": (rng.uniform(size=n) < rate).astype(int)}).to_csv(path, index=False)
    mapping = folder / "synthetic.yaml"
    mapping.write_text(yaml.safe_dump({"name": "synthetic", "treatment": "grp", "control": "none", "outcomes": ["y"],
                                       "features": {"f1": "numeric"}}))
    return path, mapping, "y", "uplift-synthetic-y"


def _uplift(*args: str, code: int = 0, **env: str) -> str:
    """``uplift ARGS`` in this process (settings re-read, ``env`` set for the call); its output."""
    from typer.testing import CliRunner

    from uplift.cli import app
    from uplift.config import get_settings

    get_settings.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        result = CliRunner().invoke(app, list(args))
    get_settings.cache_clear()
    assert result.exit_code == code, f"uplift {' '.join(args)}: {result.output}\n{result.exception!r}"
    return " ".join(result.output.split())


def test_the_demo_then_an_experiment_file_leave_the_campaign_champion_and_its_plan_alone(workdir):
    tmp_path = workdir
    out = _uplift("run", "--people", "6000", "--waves", "2", "--seed", "3", "--model", "pooled_lightgbm")
    assert ("uplift-registration v1 promoted: no champion yet" in out
            and "uplift-registration@champion = version 1" in out)
    assert out.endswith("then open http://127.0.0.1:8000/ui/ and sign in with that token.")  # the demo ends there
    # ... with what a planner needs: the best segments per message, a plan beside the references, its hand-off
    assert "the best segments of each message" in out and "Totals beside the reference plans" in out
    assert "Qini coefficient per arm" not in out  # the modelling tables only with --details
    assert (tmp_path / "out" / "plan.csv").exists() and (tmp_path / "out" / "handoff" / "manifest.json").exists()
    plan = ("plan", "--budget", "5000", "--set", "fairness_floors=[]")
    _uplift(*plan, "--out", "out/before.csv")

    csv, mapping, outcome, name = _experiment_file(tmp_path)
    spec = tmp_path / "small.yaml"
    spec.write_text(yaml.safe_dump(SMALL))
    out = _uplift("train", str(spec), "--experiment-csv", str(csv), "--mapping", str(mapping), "--outcome", outcome)
    assert f"{name} v1 promoted: no champion yet; value of the targeting policy on the " in out

    # the campaign's champion, and so its plan, are untouched
    _uplift(*plan, "--out", "out/after.csv")
    assert (tmp_path / "out" / "after.csv").read_bytes() == (tmp_path / "out" / "before.csv").read_bytes()
    listing = _uplift("models")
    assert "uplift-registration: campaign model (outcome registration)" in listing
    assert f"{name}: experiment model" in listing and listing.count("champion") >= 2

    # what serves plans refuses the experiment model by name, and says why
    with pytest.raises(ModelNotFoundError, match=f"'{name}' is an experiment model"):  # main() prints it, exits 2
        from typer.testing import CliRunner

        from uplift.cli import app
        from uplift.config import get_settings

        get_settings.cache_clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("UPLIFT_REGISTERED_MODEL", name)
            raise CliRunner().invoke(app, list(plan)).exception
    get_settings.cache_clear()
    served = _uplift("serve", "--port", "0", code=2, UPLIFT_SERVICE_WORKDIR=str(tmp_path),
                     UPLIFT_SERVICE_REGISTERED_MODEL=name)
    assert f"refusing to start: registered_model '{name}': '{name}' is an experiment model" in served

    # an alias moved by hand says so
    moved = _uplift("promote", "uplift-registration", "1", "--reason", "pinned for the audit")
    assert "uplift-registration@champion = v1 (was v1), by hand: pinned for the audit" in moved
    assert "manual" in _uplift("models", "uplift-registration")
