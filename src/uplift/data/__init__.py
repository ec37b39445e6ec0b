"""The data layer: the three inputs' contracts and the training table every learner reads.

``vocabulary`` (funnel events, attribute levels, arm names), ``contracts`` (the pandera contracts of the
audience, exposures and enrolments, and ``validate``), ``tableio`` (Parquet/CSV read and atomic write),
``inputs`` (locating, reading and checking the three input files) and ``trainingtable`` (the training table,
its persistence and digest). Import from the modules themselves; this package re-exports nothing.
"""
