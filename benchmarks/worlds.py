"""A simulated world's history as the product sees it, with its truth beside it, built once and kept.

The decision benchmarks spend nearly all their time before the segment table: simulating the world,
building the training table and validating the pooled model (cross-fitted predictions for every
row). :func:`capture_world` does that part; :class:`WorldData` keeps what the estimator and the
scoring need (the rows, their out-of-sample predictions and folds, and every row's true outcome
probability under every arm), and can be written to a folder and read back, so that the estimator
can be judged on many worlds without refitting the model (``benchmarks.family --cache DIR``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.targeting import with_threads
from uplift.data.trainingtable import TrainingTable
from uplift.errors import DataError
from uplift.specs.region import RegionSpec

__all__ = ["segment_table", "WorldData", "capture_world", "world_region"]

_FORMAT = 1
"""Version of the folder layout :meth:`WorldData.save` writes."""


@dataclass(frozen=True)
class WorldData:
    """One world's rows with their out-of-sample predictions, and the truth for scoring.

    Attributes
    ----------
    name : e.g. ``haaglanden-1`` or ``family-101`` (region and seed).
    region : the simulated region (for the fitted true form).
    rows : the training table in the order of the predictions (:meth:`ValidationReport.out_of_sample`).
    predictions : out-of-sample predicted uplift, one column per treatment arm.
    folds, heldout : per row the cross-fitting fold whose model predicted it, and the held-out fold.
    true_p : per row the simulator's true probability of the outcome under every arm (control too).
    truth_persona : per row the latent persona (scoring only; no estimator reads it).
    """

    name: str
    region: RegionSpec = field(repr=False)
    rows: TrainingTable = field(repr=False)
    predictions: pd.DataFrame = field(repr=False)
    folds: np.ndarray = field(repr=False)
    heldout: int
    true_p: pd.DataFrame = field(repr=False)
    truth_persona: np.ndarray = field(repr=False)

    def save(self, folder: Path) -> Path:
        """Write the world to ``folder`` (created; files replaced atomically one by one)."""
        from uplift.data.tableio import write_table

        folder.mkdir(parents=True, exist_ok=True)
        self.rows.save(folder / "rows.parquet")
        extra = pd.DataFrame({"fold": self.folds, "truth_persona": self.truth_persona})
        write_table(pd.concat([self.predictions.add_prefix("pred__"), self.true_p.add_prefix("true__"),
                               extra], axis=1), folder / "scores.parquet")
        meta = {"format": _FORMAT, "name": self.name, "heldout": int(self.heldout),
                "predicted_arms": list(self.predictions.columns), "true_arms": list(self.true_p.columns),
                "region": self.region.model_dump(mode="json")}
        tmp = folder / "world.json.tmp"
        tmp.write_text(json.dumps(meta))
        tmp.replace(folder / "world.json")
        return folder

    @classmethod
    def load(cls, folder: Path) -> WorldData:
        """Read a world written by :meth:`save`."""
        meta_path = folder / "world.json"
        if not meta_path.exists():
            raise DataError(f"{folder}: no world.json (not a world written by WorldData.save)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != _FORMAT:
            raise DataError(f"{meta_path}: format {meta.get('format')!r}, expected {_FORMAT}")
        scores = pd.read_parquet(folder / "scores.parquet")
        rows = TrainingTable.load(folder / "rows.parquet")
        predictions = scores[[f"pred__{a}" for a in meta["predicted_arms"]]]
        predictions.columns = meta["predicted_arms"]
        true_p = scores[[f"true__{a}" for a in meta["true_arms"]]]
        true_p.columns = meta["true_arms"]
        return cls(name=meta["name"], region=RegionSpec.model_validate(meta["region"]), rows=rows,
                   predictions=predictions.reset_index(drop=True), folds=scores["fold"].to_numpy(int),
                   heldout=int(meta["heldout"]), true_p=true_p.reset_index(drop=True),
                   truth_persona=scores["truth_persona"].to_numpy(object))


def segment_table(world: WorldData, segment_spec) -> pd.DataFrame:
    """The world's segment table as training builds it: out-of-sample estimates with each segment's share of
    the priority groups of ``serve/groups.yaml``, counted with the world's own neighbourhoods' deprivation."""
    import warnings

    from uplift.errors import MissingAttributesWarning
    from uplift.pipeline import load_priority_groups
    from uplift.segments import build_segment_table
    from uplift.segments.composition import with_composition

    segments = build_segment_table(world.rows, world.predictions, segment_spec, folds=world.folds,
                                   heldout_fold=world.heldout)
    groups = load_priority_groups(region=world.region)
    if groups is None:
        return segments
    with warnings.catch_warnings():  # a poor-data world counts fewer groups; its floors then do not apply
        warnings.simplefilter("ignore", MissingAttributesWarning)
        return with_composition(segments, world.rows.frame, segment_spec, groups)


def world_region(root: Path, region: str) -> RegionSpec:
    """``haaglanden`` (the demo region), a region YAML path, or ``random:SEED`` drawn from the family."""
    from uplift.simulate.generate import RANDOM_PREFIX, generate_region
    from uplift.specs import load_spec
    from uplift.specs.family import FamilySpec

    if region == "haaglanden":
        return load_spec(root / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    if region.startswith(RANDOM_PREFIX):
        family = load_spec(root / "features" / "regions" / "family.yaml", FamilySpec)
        return generate_region(family, int(region.removeprefix(RANDOM_PREFIX)))
    return load_spec(Path(region), RegionSpec)


def capture_world(
    region: RegionSpec, *, name: str, people: int, waves: int, seed: int, root: Path, folds: int = 5,
    threads: int = 1, messages: tuple[str, ...] | None = None, channels: tuple[str, ...] | None = None,
    say=lambda _m: None,
) -> WorldData:
    """Simulate ``region``, build the training table and validate the pooled model as ``uplift train`` does.

    ``folds`` overrides the model spec's cross-validation folds; ``messages`` / ``channels`` keep a
    subset of the region's (tiny test worlds).
    """
    from uplift.data.vocabulary import split_arm
    from uplift.features import build_training_table
    from uplift.modeling.truthcheck import true_outcome_probabilities
    from uplift.modeling.validation import validate_model
    from uplift.pipeline import load_feature_set
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.model import ModelSpec

    if messages or channels:
        region = region.subset(messages=list(messages or region.messages), channels=list(channels or region.channels))
    say(f"{name}: simulate {people:,} people x {waves} waves")
    world = simulate(region, people=people, waves=waves, seed=seed)
    arms = [a for a in world.arms if a != world.control]
    feature_set = load_feature_set(str(root / "features" / "default.yaml"))
    feature_set = feature_set.model_copy(update={
        "messages": tuple(dict.fromkeys(split_arm(a)[0] for a in arms)),
        "channels": tuple(dict.fromkeys(split_arm(a)[1] for a in arms)),
    })
    table = build_training_table(world.audience, world.exposures, world.enrolments, feature_set, source=name)
    spec = load_spec(root / "models" / "pooled_lightgbm.yaml", ModelSpec)
    spec = with_threads(spec.model_copy(update={"cv": spec.cv.model_copy(update={"folds": folds})}), threads)
    say(f"{name}: validate the pooled model on {len(table.frame):,} person-waves")
    report = validate_model(spec, table)
    rows, predictions = report.out_of_sample()
    fold, heldout = report.out_of_sample_folds()
    true_p = true_outcome_probabilities(rows.frame[["person_id", "wave"]], world.truth, rows.arms,
                                        feature_set.outcome.event)
    persona = rows.frame[["person_id"]].astype(str).merge(
        world.truth[["person_id", "persona"]].drop_duplicates("person_id").astype({"person_id": str}),
        on="person_id", how="left")["persona"].to_numpy(object)
    return WorldData(name=name, region=region, rows=rows, predictions=predictions.reset_index(drop=True),
                     folds=np.asarray(fold), heldout=int(heldout), true_p=true_p.reset_index(drop=True),
                     truth_persona=persona)
