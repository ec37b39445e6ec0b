"""Shared fixtures: small seeded campaign worlds built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/handmade.py, tests/allocation_worlds.py

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level folder of the repository, not part of the package
    sys.path.insert(1, str(ROOT))
_PRISTINE_MLFLOW_ENV = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
HILLSTROM = Path(os.environ.get("UPLIFT_HILLSTROM_CSV", ROOT.parent / "shared" / "data" / "hillstrom.csv"))


@pytest.fixture(autouse=True)
def _isolated_mlflow():
    """MLflow keeps its tracking and registry URIs in process globals and environment variables (inherited by
    subprocesses); put both back as they were when the session started after every test, so no test (nor a
    module-scoped fixture) leaves its store behind for the next one."""
    import mlflow

    yield
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for key, value in _PRISTINE_MLFLOW_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A fresh work folder (MLflow store, outputs) for in-process commands; settings re-read around the test."""
    from uplift.config import get_settings

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("UPLIFT_WORKDIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def region():
    from uplift.specs import load_spec
    from uplift.specs.region import RegionSpec

    return load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)


@pytest.fixture(scope="session")
def strong_region(region):
    """2 messages x 1 channel, a 10x baseline (the region of :func:`strong_world`)."""
    spec = region.subset(messages=["heavy_work_future", "fresh_start"], channels=["meta"])
    return spec.updated(baseline=spec.baseline.model_copy(update={"registration": 0.018}))


@pytest.fixture(scope="session")
def strong_world(strong_region):
    """2 messages x 1 channel, a 10x baseline: strong, learnable heterogeneity in a few seconds."""
    from uplift.simulate import simulate

    return simulate(strong_region, people=40_000, waves=2, seed=11)


def feature_set_for(world, **update):
    """The default feature set restricted to a world's messages and channels."""
    from uplift.data.vocabulary import split_arm
    from uplift.pipeline import load_feature_set

    arms = [a for a in world.arms if a != world.control]
    messages = tuple(dict.fromkeys(split_arm(a)[0] for a in arms))
    channels = tuple(dict.fromkeys(split_arm(a)[1] for a in arms))
    spec = load_feature_set(str(ROOT / "features" / "default.yaml"))
    return spec.model_copy(update={"messages": messages, "channels": channels, **update})


@pytest.fixture(scope="session")
def strong_table(strong_world):
    from uplift.features import build_training_table

    w = strong_world
    return build_training_table(w.audience, w.exposures, w.enrolments, feature_set_for(w), source="strong world")


@pytest.fixture(scope="module")
def costs():
    """The shipped cost catalogue (serve/costs.yaml)."""
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue

    return load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)


@pytest.fixture(scope="module")
def open_policy():
    """No rules beyond reach and holdout: the LP is a pure value maximisation."""
    from uplift.specs.planning import PlanningPolicy

    return PlanningPolicy(holdout_share=0.1, exploration_share=0.0)


def kind_effects(groups, n_groups, *, y, arm, propensity, predictions, control, persona_mix=None,
                 group_attributes=None, folds=None, heldout_fold=None, **method):
    """:func:`uplift.segments.segment_effects` of these rows with an effect method of ``method``'s fields."""
    from uplift.segments import KindRows, segment_effects
    from uplift.specs.segments import EffectMethod

    rows = KindRows(groups, n_groups, y=y, arm=arm, propensity=propensity, predictions=predictions, control=control,
                    folds=folds, heldout_fold=heldout_fold)
    return segment_effects(rows, EffectMethod(**method), persona_mix=persona_mix, group_attributes=group_attributes)
