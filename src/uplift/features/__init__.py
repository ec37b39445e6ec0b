"""Point-in-time features: one small function per feature, joined as of each wave's assignment."""

from uplift.features.build import arms_of, build_features, build_training_table, feature_columns
from uplift.features.library import FEATURES

__all__ = ["FEATURES", "arms_of", "build_features", "build_training_table", "feature_columns"]
