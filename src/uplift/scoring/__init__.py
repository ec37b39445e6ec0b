"""Batch scoring of a whole audience in chunks: validation with rejects, features, uplift per arm, segments."""

from uplift.scoring.chunks import Chunk, count_rows, file_digest, iter_chunks
from uplift.scoring.job import ScoreSummary, default_rejects_path, score_file
from uplift.scoring.labels import SegmentLabeler
from uplift.scoring.rows import REJECT_COLUMNS, RowCheck, SeenIds, validate_rows
from uplift.scoring.score import (
    NET_PREFIX,
    UPLIFT_PREFIX,
    Scorer,
    effect_columns,
    model_feature_set,
    score_chunk,
    score_columns,
    score_features,
)
from uplift.scoring.writer import ChunkWriter

__all__ = [
    "Chunk",
    "ChunkWriter",
    "REJECT_COLUMNS",
    "RowCheck",
    "ScoreSummary",
    "Scorer",
    "SeenIds",
    "SegmentLabeler",
    "NET_PREFIX",
    "UPLIFT_PREFIX",
    "count_rows",
    "default_rejects_path",
    "effect_columns",
    "file_digest",
    "iter_chunks",
    "model_feature_set",
    "score_chunk",
    "score_columns",
    "score_features",
    "score_file",
    "validate_rows",
]
