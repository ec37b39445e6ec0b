"""CPU-bound request work (scores, new plans, budget curves) in worker processes, so requests in flight use every core.

One Python process runs one request's Python code at a time (the GIL): with two requests in
flight the second waits for the first, however many cores there are. Several uvicorn workers do
not fix that, because a keep-alive connection stays with the worker that accepted it. A
:class:`ComputePool` belongs to one model bundle: its processes are spawned with a copy of the
bundle and the planner's defaults, take the next task whoever is free (a request-level queue),
and each runs LightGBM on one OpenMP thread (the processes are the parallelism; two OpenMP
threads per process on two busy cores were measured slower). The HTTP side stays in the server
process: parsing the head, the token, the body limit, the plan cache and the plan store.

A pool never makes a request fail: a pool that is closed (its bundle was swapped out while the
request was in flight) or broken (a worker died) hands the work back, and the caller computes it
in its own thread, as a service without a pool does; a broken pool is replaced for the next
requests.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

__all__ = ["ComputePool", "Unavailable"]

log = logging.getLogger("uplift.api")

T = TypeVar("T")

_STATE: dict[str, Any] = {}
"""In a worker process: the bundle and the planner it serves (set once by :func:`_init`)."""


class Unavailable(Exception):
    """The pool cannot take the task (closed or broken): compute it in the caller's thread."""


# -- in the worker processes ------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM when the server process dies, even if it was killed."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:  # pragma: no cover - no libc by that name
            pass


def _init(payload: bytes) -> None:
    _die_with_parent()
    from uplift.quiet import install

    install()  # before the payload imports the model's libraries
    bundle, costs, policy, min_segment_size, prepared_bytes, by_neighbourhood = pickle.loads(payload)
    from threadpoolctl import threadpool_limits

    from uplift.api.planning import PlanService

    planner = PlanService(costs=costs, policy=policy, min_segment_size=min_segment_size, cache_size=0,
                          prepared_bytes=prepared_bytes, flyers_by_neighbourhood=by_neighbourhood)
    threadpool_limits(1)  # LightGBM's OpenMP: one thread per process
    _STATE.update(bundle=bundle, planner=planner)
    try:  # build the model's lazily kept structures (e.g. the pooled booster's compiled forest) now
        from uplift.api.scoring import rows_to_frame

        frame = rows_to_frame([{name: None for name, _ in bundle.features}], bundle.features)
        bundle.model.effects(frame, shrunk=False, checked=True)
    except Exception:  # pragma: no cover - a warm-up failure only costs the first request its time
        log.exception("compute worker warm-up failed")
    # The bundle (model, segment tables) lives as long as the worker. Without this, the worker's first
    # full garbage collection walks all of it inside some request, ~80 requests in: a one-off stall of
    # 150-180 ms per worker, measured on the service benchmark's world. Frozen objects are never walked.
    gc.collect()
    gc.freeze()


def _pid(pause: float) -> int:
    time.sleep(pause)
    return os.getpid()


def _score_task(raw: bytes, max_rows: int) -> bytes:
    from uplift.api.routes.scores import score_body

    return score_body(raw, _STATE["bundle"], max_rows)


def _plan_task(request) -> Any:
    return _STATE["planner"].compute(_STATE["bundle"], request)


def _curve_task(request, points: int) -> dict:
    return _STATE["planner"].compute_curve(_STATE["bundle"], request, points)


TASKS: dict[str, Callable[..., Any]] = {"score": _score_task, "plan": _plan_task, "curve": _curve_task}


# -- in the server process --------------------------------------------------------------------
class ComputePool:
    """``processes`` worker processes serving ``bundle`` (spawned, not forked: the server has threads).

    Parameters
    ----------
    bundle : the model bundle the workers get a copy of (its ``compute`` field is not copied).
    planner : the :class:`uplift.api.planning.PlanService` whose defaults new plans start from.
    processes : how many workers.
    """

    def __init__(self, bundle, planner, processes: int) -> None:
        import dataclasses

        if processes < 1:
            raise ValueError(f"processes: expected at least 1, got {processes}")
        self.processes = int(processes)
        self.label = f"{bundle.name} v{bundle.version}"
        # the planner's defaults, not its caches: results are cached once, in the server process
        self._payload = pickle.dumps((dataclasses.replace(bundle, compute=None), planner.costs, planner.policy,
                                      planner.min_segment_size, planner.prepared_bytes,
                                      planner.flyers_by_neighbourhood))
        self._lock = threading.Lock()
        self._closed = False
        self._executor = self._new_executor()
        # which executor runs each pending task: a task that fails because its executor broke
        # replaces that executor, once, and never the fresh one another request already started
        self._executors: dict[cf.Future, cf.ProcessPoolExecutor] = {}

    def _new_executor(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init, initargs=(self._payload,),
        )

    def start(self, timeout: float = 120.0) -> list[int]:
        """Spawn every worker and wait until each has loaded the bundle; returns their process ids."""
        seen: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < self.processes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"compute pool for {self.label}: {len(seen)} of {self.processes} workers up")
            # tasks that pause land on different workers once they are up
            futures = [self._executor.submit(_pid, 0.05) for _ in range(self.processes)]
            seen |= {f.result(timeout=timeout) for f in futures}
        return sorted(seen)

    def submit(self, task: str, *args: Any) -> cf.Future:
        """Queue ``task`` (a name in :data:`TASKS`); :class:`Unavailable` if the pool is closed or broken.

        Wait for the future with :meth:`result` (or use :meth:`run` / :meth:`arun`): that settles
        what the pool keeps for it and replaces the workers if they died meanwhile.
        """
        with self._lock:
            if self._closed:
                raise Unavailable(f"compute pool for {self.label} is closed")
            executor = self._executor
            try:
                future = executor.submit(TASKS[task], *args)
            except BrokenProcessPool as exc:
                self._replace(executor, exc)
                raise Unavailable(str(exc)) from None
            except RuntimeError as exc:  # shut down (the interpreter is exiting)
                raise Unavailable(str(exc)) from None
            self._executors[future] = executor
            return future

    def result(self, future: cf.Future) -> Any:
        """The task's result, its own exception, or :class:`Unavailable` when its worker died."""
        broke = None
        try:
            return future.result()
        except BrokenProcessPool as exc:
            broke = exc
            raise Unavailable(str(exc)) from None
        finally:
            self._settle(future, broke)

    def _settle(self, future: cf.Future, broke: BaseException | None) -> None:
        """Forget ``future``'s executor; if the task failed because that executor broke (``broke``),
        replace it unless it is no longer the current one."""
        with self._lock:
            executor = self._executors.pop(future, None)
            if broke is not None:
                self._replace(executor, broke)

    def run(self, task: str, *args: Any, local: Callable[[], T]) -> T:
        """Run ``task`` in a worker and wait for it; ``local()`` in this thread if the pool cannot."""
        try:
            return self.result(self.submit(task, *args))
        except Unavailable:
            return local()

    async def arun(self, task: str, *args: Any, local: Callable[[], T]) -> T:
        """:meth:`run` for the event loop: awaits the worker, or runs ``local`` in the thread pool."""
        import asyncio

        from starlette.concurrency import run_in_threadpool

        try:
            future = self.submit(task, *args)
            broke = None
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool as exc:
                broke = exc
                raise Unavailable(str(exc)) from None
            finally:
                self._settle(future, broke)
        except Unavailable:
            return await run_in_threadpool(local)

    def _replace(self, broken: cf.ProcessPoolExecutor | None, exc: BaseException) -> None:
        """A worker of ``broken`` died (an executor is broken for good): unless another request has
        already replaced it, start a fresh executor for the next requests. Call with the lock held."""
        if self._closed or broken is None or broken is not self._executor:
            return
        log.error("compute pool for %s broke (%s); starting new workers", self.label, exc)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()

    def close(self, *, wait: bool = True) -> None:
        """Stop taking tasks; the queued ones finish, then the workers exit (``wait``: block until then)."""
        with self._lock:
            self._closed = True
            executor = self._executor
        if wait:
            executor.shutdown(wait=True)
        else:
            threading.Thread(target=executor.shutdown, name="uplift-compute-close", daemon=True).start()
