"""Memory of prepared plans: the resident memory of one process preparing plans for new policies, one after another.

Run ``.venv/bin/python -m benchmarks.bench_prepared_memory --workdir DIR [--policies 40 --prepared-mb 256]`` over a
store with a champion, e.g. the soak benchmark's (``python -m benchmarks.bench_soak --workdir DIR``). Each plan is
over the soak's request shape (``channels: [meta, flyer]``) with its own ``holdout_share``, so each prepares anew
(:class:`uplift.api.planning.PlanService`, the service's code, no result cache). Prints every 8 plans the process's
``VmRSS``, how many prepared plans it keeps, and the arrays the newest holds.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, required=True, help="folder with mlflow.db and a champion")
    p.add_argument("--policies", type=int, default=40)
    p.add_argument("--prepared-mb", type=int, default=256, help="the service's prepared_plans_mb")
    args = p.parse_args(argv)

    import mlflow
    from mlflow import MlflowClient

    from uplift.api.modelstore import registry_loader
    from uplift.api.planning import PlanService
    from uplift.api.schemas import PlanRequest
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    uri = f"sqlite:///{args.workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias("uplift", "champion").version
    bundle = registry_loader(client, "uplift", "champion", min_segment_size=50)(str(version))
    service = PlanService(costs=load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue),
                          policy=load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy), min_segment_size=50,
                          cache_size=0, prepared_bytes=args.prepared_mb * 2**20)
    print(f"model loaded: {_rss_mb():.0f} MB")
    print("| plans prepared | RSS MB | kept | newest's arrays MB |\n|---:|---:|---:|---:|")
    for k in range(1, args.policies + 1):
        service.compute(bundle, PlanRequest(budget=1_600, channels=["meta", "flyer"],
                                            policy={"holdout_share": 0.1 + 1e-6 * k}))
        if k % 8 == 0:
            gc.collect()
            newest = next(reversed(service._prepared.values()))
            print(f"| {k} | {_rss_mb():.0f} | {len(service._prepared)} | {newest.nbytes / 2**20:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
