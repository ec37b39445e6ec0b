"""Adapters from real randomised experiments to the training table."""

from uplift.adapters.experiment_csv import ColumnMapping, MappingEconomics, load_experiment_csv

__all__ = ["ColumnMapping", "MappingEconomics", "load_experiment_csv"]
