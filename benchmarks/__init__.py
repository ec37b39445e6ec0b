"""The evidence benchmarks: targeting on real data, plans against the oracle, speed and memory
(``python -m benchmarks``)."""

__all__: list[str] = []
