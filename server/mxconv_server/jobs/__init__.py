"""Training jobs: the state rules (rules.py), the job store contract over a backend's atomic
primitives (store.py), the backends, and the worker that runs jobs.

``open_store(url)`` picks the backend by the URL's scheme (MXCONV_JOBS_URL): ``sqlite:///``
is the embedded default. A backend registers itself in ``BACKENDS`` by scheme, as a
``"module:Class"`` path imported on first use, and subclasses :class:`JobStore`. Whatever
the backend, an outage is raised as :class:`StoreUnavailable`.
"""

from __future__ import annotations

import importlib
from typing import Any

from .records import (
    FINISHED,
    STATUSES,
    JobConflict,
    JobNotFound,
    JobRecord,
    JobStoreError,
    Lease,
    QueueFull,
    StoreUnavailable,
)
from .store import JobStore

#: URL scheme -> "module:Class" of a JobStore with a ``from_url(url)`` classmethod.
BACKENDS: dict[str, str] = {
    "sqlite": "mxconv_server.jobs.sqlite:SqliteJobStore",
    "redis": "mxconv_server.jobs.redis_store:RedisJobStore",
    "rediss": "mxconv_server.jobs.redis_store:RedisJobStore",
}


def open_store(url: str) -> JobStore:
    scheme = url.partition(":")[0]
    target = BACKENDS.get(scheme)
    if target is None:
        raise ValueError(f"MXCONV_JOBS_URL={url!r}: unknown scheme {scheme!r}; use one of {sorted(BACKENDS)}")
    module, _, name = target.partition(":")
    cls: Any = getattr(importlib.import_module(module), name)
    return cls.from_url(url)  # type: ignore[no-any-return]


__all__ = [
    "BACKENDS",
    "FINISHED",
    "STATUSES",
    "JobConflict",
    "JobNotFound",
    "JobRecord",
    "JobStore",
    "JobStoreError",
    "Lease",
    "QueueFull",
    "StoreUnavailable",
    "open_store",
]
