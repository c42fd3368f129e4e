"""The job store: the contract every backend keeps, written once over a few atomic primitives.

The store *is* the queue. A job record holds the spec (JSON) and its arrays (``.npy`` bytes
from :mod:`mxconv.tensors`, never pickle); workers claim queued jobs and hold a lease they
renew while they work. A worker that dies stops renewing, and :meth:`JobStore.reap`
re-queues its job (or fails it after ``max_attempts``). What each operation does to a job is
decided in :mod:`.rules`; this class reads, asks the rules, and writes with a backend's
compare-and-set, retrying on a fresh read when another write got there first.

A backend (sqlite.py, redis_store.py) implements only the ``_`` primitives below: reads,
create-if-absent, claim-oldest (a change applied to the oldest queued job), the expired
leases, a compare-and-set fenced on status, worker and attempt, a fenced removal, and blob
storage. It names the errors that mean an outage in :meth:`_outage`, and every public
method turns them into one :class:`StoreUnavailable`.

Why not huey or rq (both read for this): huey takes a task off its queue as it starts it,
with no lease and no acknowledgement, so a worker killed with -9 loses its task, and a
revoke cannot stop a running one at an epoch; rq needs a Redis server (no embedded default)
and records a result without checking that the worker still holds the job, so a worker
whose job was given up as abandoned can still finish it. Neither fences a late worker out.
Speed is no reason to switch either (benchmarks/job_queues.py, this 2-core machine,
microseconds per job, median of 9 rounds of 500; submit, then claim + one progress write +
finish): SQLite 143 and 184 here, 368 and 510 for huey's SQLite storage; Redis 285 and 761
here, 123 and 344 for huey (no progress write, no lease), 412 and 4,659 for rq.

Timestamps and lease deadlines come from ``self.clock`` (seconds since the epoch), which the
contract tests replace to move time forward.
"""

from __future__ import annotations

import builtins  # ``list`` is a JobStore method, so its annotations say builtins.list
import functools
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import numpy.typing as npt
from mxconv.tensors import from_npy, to_npy

from . import rules
from .records import (
    FINISHED,
    STATUSES,
    Change,
    Fence,
    Heartbeat,
    Inserted,
    JobConflict,
    JobNotFound,
    JobRecord,
    JobStoreError,
    Lease,
    QueueFull,
    Status,
    StoreUnavailable,
    Transition,
)

#: Blob names of a checkpoint's arrays start with this; a finished network's weights with MODEL_PREFIX.
CHECKPOINT_PREFIX = "checkpoint/"
MODEL_PREFIX = "model/"

#: How often an operation re-reads and retries after losing a race; each loss means another
#: write to the same job succeeded, so running out of tries means something is wrong.
RETRIES = 64

F = TypeVar("F", bound=Callable[..., Any])


def guarded(method: F) -> F:
    """Turn the backend's outage errors into StoreUnavailable; let everything else through."""

    @functools.wraps(method)
    def wrapper(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except JobStoreError:
            raise
        except Exception as e:
            outage = self._outage(e)
            if outage is None:
                raise
            raise outage from e

    return cast(F, wrapper)


class JobStore(ABC):
    """Durable job records plus the queue over them. The contract tests
    (tests/test_job_store_contract.py) run against every backend."""

    clock: Callable[[], float] = staticmethod(time.time)

    # -- the primitives a backend implements -------------------------------------------

    @abstractmethod
    def _outage(self, error: Exception) -> StoreUnavailable | None:
        """``error`` as a StoreUnavailable when it means the store is down or cannot write."""

    @abstractmethod
    def _get(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    def _list(self, status: str | None, limit: int, offset: int) -> tuple[list[JobRecord], int]: ...

    @abstractmethod
    def _count(self, status: str) -> int: ...

    @abstractmethod
    def _losses(self, job_id: str) -> list[float]: ...

    @abstractmethod
    def _history(self, job_id: str) -> dict[str, list[float]]:
        """The metric histories (``Change.metrics``): name -> values in epoch order."""

    @abstractmethod
    def _blobs(self, job_id: str, names: set[str] | None) -> dict[str, bytes]:
        """The job's blobs by name; with ``names``, only those (reading no others)."""

    @abstractmethod
    def _insert(self, record: JobRecord, blobs: Mapping[str, bytes], max_queued: int | None) -> Inserted:
        """Atomically: if ``record.idempotency_key`` is taken, that job (exists); else, if
        ``max_queued`` jobs wait, full; else store ``record`` and its blobs (created)."""

    @abstractmethod
    def _claim_oldest(self, worker: str, now: float, change: Change) -> JobRecord | None:
        """Atomically take the oldest queued job and apply ``change`` to it; its record as it
        now is, or None if nothing is queued (``worker`` polls: a backend may note it alive)."""

    @abstractmethod
    def _expired(self, now: float) -> builtins.list[JobRecord]:
        """Running jobs whose lease ran out before ``now``."""

    @abstractmethod
    def _cas(
        self, job_id: str, fence: Fence, change: Change, blobs: Mapping[str, bytes] | None = None
    ) -> Heartbeat:
        """Atomically: if the job meets ``fence``, apply ``change`` (and store ``blobs``) and
        say "ok", or "cancel" when a cancel is asked for it; else write nothing: "lost"."""

    @abstractmethod
    def _remove(self, job_id: str, fence: Fence) -> bool:
        """Atomically delete the job, its arrays and losses if it meets ``fence``."""

    @abstractmethod
    def _ping(self) -> None:
        """Raise unless the backend answers and takes writes."""

    def _close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    def _apply(self, job_id: str, transition: Transition, blobs: Mapping[str, bytes] | None = None) -> bool:
        return self._cas(job_id, transition.fence, transition.change, blobs) != "lost"

    # -- the API side ------------------------------------------------------------------

    @guarded
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
        blobs = {name: to_npy(arr) for name, arr in arrays.items()}
        record = rules.new_job(
            uuid.uuid4().hex,
            spec,
            epochs=epochs,
            now=self.clock(),
            idempotency_key=idempotency_key,
            digest=digest,
        )
        return rules.admitted(record, self._insert(record, blobs, max_queued), max_queued)

    @guarded
    def get(self, job_id: str) -> JobRecord | None:
        return self._get(job_id)

    @guarded
    def list(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[JobRecord], int]:
        """Newest first; returns one page and the total matching."""
        return self._list(status, limit, offset)

    @guarded
    def count(self, status: str) -> int:
        return self._count(status)

    @guarded
    def losses(self, job_id: str) -> builtins.list[float]:
        """The loss of every epoch of the current (or last) attempt, in order."""
        return self._losses(job_id)

    @guarded
    def history(self, job_id: str) -> dict[str, builtins.list[float]]:
        """A network job's other histories (accuracy, val_loss, val_accuracy ...): name ->
        one value per epoch, in order, kept across attempts as the loss history is."""
        return self._history(job_id)

    @guarded
    def arrays(self, job_id: str, names: Iterable[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        """Stored arrays by name: the inputs (x, y, initial_weight ...), results (weight, bias;
        a network's ``model/<param>``) and the last checkpoint's (``checkpoint/<name>``)."""
        wanted = None if names is None else set(names)
        return {name: from_npy(data) for name, data in self._blobs(job_id, wanted).items()}

    @guarded
    def checkpoint(self, job_id: str) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]] | None:
        """The job's last checkpoint: its JSON part (``epoch``, ``arrays``: the names of its
        arrays ...) and its arrays by those names; None if it has none (or is gone)."""
        job = self._get(job_id)
        if job is None or job.checkpoint is None:
            return None
        names = [str(n) for n in job.checkpoint.get("arrays", [])]
        blobs = self._blobs(job_id, {CHECKPOINT_PREFIX + n for n in names})
        return dict(job.checkpoint), {n: from_npy(blobs[CHECKPOINT_PREFIX + n]) for n in names}

    @guarded
    def cancel(self, job_id: str) -> JobRecord:
        """A queued job is cancelled at once; a running one is asked to stop (its worker sees
        it at the next heartbeat). JobNotFound, or JobConflict when already finished."""
        for _ in range(RETRIES):
            job = self._get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            transition = rules.cancel(job, self.clock())
            if transition is None:
                return job
            if self._apply(job_id, transition):
                after = self._get(job_id)
                if after is None:  # deleted at once by someone else
                    raise JobNotFound(job_id)
                return after
        raise RuntimeError(f"job {job_id}: cancel lost {RETRIES} races in a row")

    @guarded
    def delete(self, job_id: str) -> None:
        """Remove a finished job and its arrays. JobNotFound, or JobConflict if not finished."""
        for _ in range(RETRIES):
            job = self._get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            if self._remove(job_id, rules.deletable(job)):
                return
        raise RuntimeError(f"job {job_id}: delete lost {RETRIES} races in a row")

    @guarded
    def ping(self) -> None:
        """Raise unless the backend answers and takes writes (readiness)."""
        self._ping()

    def close(self) -> None:
        """Release connections."""
        self._close()

    # -- the worker side ---------------------------------------------------------------

    @guarded
    def claim(self, worker: str, lease_seconds: float) -> tuple[JobRecord, Lease] | None:
        """Take the oldest queued job: running, attempts + 1, a fresh lease, the previous
        attempt's loss history cleared. None when nothing is queued."""
        now = self.clock()
        job = self._claim_oldest(worker, now, rules.claim(worker, now, lease_seconds))
        return None if job is None else (job, rules.lease_of(job))

    @guarded
    def heartbeat(
        self,
        lease: Lease,
        lease_seconds: float,
        *,
        epoch: int | None = None,
        loss: float | None = None,
        elapsed: float | None = None,
        new_losses: Mapping[int, float] | None = None,
        new_metrics: Mapping[str, Mapping[int, float]] | None = None,
        snapshot: Mapping[str, Any] | None = None,
        checkpoint: tuple[Mapping[str, Any], Mapping[str, npt.NDArray[Any]]] | None = None,
    ) -> Heartbeat:
        """Renew the lease and record progress (``new_losses``: epoch -> loss; ``new_metrics``:
        name -> epoch -> value; ``snapshot``: the layer's current weights as JSON-able lists).
        With ``checkpoint`` (its JSON part, holding the ``epoch`` it was saved after, and its
        arrays), the job's last checkpoint is replaced in the same atomic write: a new attempt
        resumes from it, with the histories up to its epoch. Says "cancel" when a cancel was
        asked for, "lost" when this lease no longer holds the job (nothing is written then)."""
        meta, blobs = None, None
        if checkpoint is not None:
            meta = {**checkpoint[0], "arrays": sorted(checkpoint[1]), "saved_at": self.clock()}
            blobs = {CHECKPOINT_PREFIX + name: to_npy(arr) for name, arr in checkpoint[1].items()}
        transition = rules.progress(
            lease,
            self.clock(),
            lease_seconds,
            epoch=epoch,
            loss=loss,
            elapsed=elapsed,
            new_losses=new_losses,
            new_metrics=new_metrics,
            snapshot=snapshot,
            checkpoint=meta,
        )
        return self._cas(lease.job_id, transition.fence, transition.change, blobs)

    @guarded
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
        transition = rules.finish(lease, status, self.clock(), result=result, error=error)
        blobs = {name: to_npy(arr) for name, arr in (arrays or {}).items()}
        return self._apply(lease.job_id, transition, blobs)

    @guarded
    def requeue(self, lease: Lease, reason: str) -> bool:
        """Give a job back to the queue (a worker shutting down); False if the lease is lost."""
        return self._apply(lease.job_id, rules.requeue(lease, self.clock(), reason))

    @guarded
    def reap(self, max_attempts: int) -> builtins.list[str]:
        """Running jobs whose lease expired: re-queued, or failed with a reason once they
        have used ``max_attempts`` (cancelled, if a cancel was asked). Returns their ids.
        A job that changed since it was read (renewed, finished, cancel asked) is left for
        the next pass, which decides on what it is then."""
        now = self.clock()
        reaped = []
        for job in self._expired(now):
            transition = rules.expire(job, now, max_attempts)
            if transition is not None and self._apply(job.id, transition):
                reaped.append(job.id)
        return reaped


__all__ = [
    "CHECKPOINT_PREFIX",
    "FINISHED",
    "MODEL_PREFIX",
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
