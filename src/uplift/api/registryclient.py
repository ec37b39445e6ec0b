"""An MLflow client made on first use, so a registry that cannot be opened at start-up is not fatal.

``MlflowClient(uri)`` opens a SQLite registry at once: an unreadable or corrupt ``mlflow.db`` makes
it raise. The service starts anyway (``/health`` down, model endpoints 503, stored plans readable):
the model store's resolver and loader use this client, whose first call that succeeds creates the
real one; until then every call raises, the store reports why, and the next poll tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LazyClient", "lazy_mlflow_client"]


class LazyClient:
    """Forwards attribute access to the client ``make()`` returns, calling ``make`` until it succeeds."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True once the real client exists."""
        return self._client is not None

    def __getattr__(self, name: str) -> Any:
        if name in ("_make", "_client", "_lock"):  # not set yet (e.g. during copying): no recursion
            raise AttributeError(name)
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()  # raises while the registry cannot be opened
                client = self._client
        return getattr(client, name)


def lazy_mlflow_client(uri: str) -> LazyClient:
    """A :class:`LazyClient` over ``MlflowClient(tracking_uri=uri, registry_uri=uri)``."""

    def make():
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    return LazyClient(make)
