"""The job store contract: every backend (embedded SQLite here, Redis later) implements it.

The store *is* the queue. A job record holds the spec (JSON) and its arrays (``.npy`` bytes,
never pickle); workers claim queued jobs atomically and hold a lease they renew while they
work. A worker that dies stops renewing, and :meth:`JobStore.reap` re-queues its job (or
fails it after ``max_attempts``). Every write a worker makes names its :class:`Lease`, so a
worker whose lease was taken over can no longer touch the job: two workers never run the
same job to completion, and a late writer is told it lost the job.

Backends take every timestamp and lease deadline from ``self.clock`` (seconds since the
epoch), which the contract tests replace to move time forward.
"""

from __future__ import annotations

import io
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .records import (
    FINISHED,
    STATUSES,
    Heartbeat,
    JobConflict,
    JobNotFound,
    JobRecord,
    JobStoreError,
    Lease,
    QueueFull,
    Status,
    StoreUnavailable,
)

__all__ = [
    "FINISHED",
    "STATUSES",
    "Heartbeat",
    "JobConflict",
    "JobNotFound",
    "JobRecord",
    "JobStore",
    "JobStoreError",
    "Lease",
    "QueueFull",
    "Status",
    "StoreUnavailable",
    "from_npy",
    "to_npy",
]


def to_npy(arr: npt.NDArray[Any]) -> bytes:
    """An array as ``.npy`` bytes. Object arrays are refused: nothing is ever pickled."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def from_npy(data: bytes) -> npt.NDArray[Any]:
    return np.load(io.BytesIO(data), allow_pickle=False)  # type: ignore[no-any-return]


class JobStore(ABC):
    """Durable job records plus the queue over them. Backends subclass this; the contract
    tests (tests/test_job_store_contract.py) run against every backend."""

    clock: Callable[[], float] = staticmethod(time.time)  # type: ignore[assignment]

    # -- the API side ------------------------------------------------------------------

    @abstractmethod
    def create(
        self,
        spec: Mapping[str, Any],
        arrays: Mapping[str, npt.NDArray[Any]],
        *,
        epochs: int,
        max_queued: int | None = None,
        idempotency_key: str | None = None,
        digest: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a new queued job; returns it and True. With an ``idempotency_key`` already
        used, returns that job and False (JobConflict if its ``digest`` differs). Raises
        QueueFull, atomically, when ``max_queued`` jobs already wait."""

    @abstractmethod
    def get(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    def list(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[JobRecord], int]:
        """Newest first; returns one page and the total matching."""

    @abstractmethod
    def count(self, status: str) -> int: ...

    @abstractmethod
    def losses(self, job_id: str) -> list[float]:
        """The loss of every epoch of the current (or last) attempt, in order."""

    @abstractmethod
    def arrays(self, job_id: str, names: Iterable[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        """Stored arrays by name: the inputs (x, y, initial_weight ...) and results (weight, bias)."""

    @abstractmethod
    def cancel(self, job_id: str) -> JobRecord:
        """A queued job is cancelled at once; a running one is asked to stop (its worker sees
        it at the next heartbeat). JobNotFound, or JobConflict when already finished."""

    @abstractmethod
    def delete(self, job_id: str) -> None:
        """Remove a finished job and its arrays. JobNotFound, or JobConflict if not finished."""

    @abstractmethod
    def ping(self) -> None:
        """Raise unless the backend answers and takes writes (readiness)."""

    # -- the worker side ---------------------------------------------------------------

    @abstractmethod
    def claim(self, worker: str, lease_seconds: float) -> tuple[JobRecord, Lease] | None:
        """Atomically take the oldest queued job: running, attempts + 1, a fresh lease, the
        previous attempt's loss history cleared. None when nothing is queued."""

    @abstractmethod
    def heartbeat(
        self,
        lease: Lease,
        lease_seconds: float,
        *,
        epoch: int | None = None,
        loss: float | None = None,
        elapsed: float | None = None,
        new_losses: Mapping[int, float] | None = None,
        snapshot: Mapping[str, Any] | None = None,
    ) -> Heartbeat:
        """Renew the lease and record progress (``new_losses``: epoch -> loss; ``snapshot``:
        the layer's current weights as JSON-able lists). Says "cancel" when a cancel was asked
        for, "lost" when this lease no longer holds the job."""

    @abstractmethod
    def finish(
        self,
        lease: Lease,
        status: Status,
        *,
        result: Mapping[str, Any] | None = None,
        arrays: Mapping[str, npt.NDArray[Any]] | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome; False (and nothing written) if the lease no longer holds."""

    @abstractmethod
    def requeue(self, lease: Lease, reason: str) -> bool:
        """Give a job back to the queue (a worker shutting down); False if the lease is lost."""

    @abstractmethod
    def reap(self, max_attempts: int) -> list[str]:
        """Running jobs whose lease expired: re-queued, or failed with a reason once they
        have used ``max_attempts`` (cancelled, if a cancel was asked). Returns their ids."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
