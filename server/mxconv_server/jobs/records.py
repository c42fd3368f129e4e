"""The job system's data: records, leases, the store's errors, and what a conditional write
expects (:class:`Fence`) and changes (:class:`Change`). Plain data, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
#: What a fenced write answers: "lost" (the fence was not met, nothing was written), "cancel"
#: (written, and a cancel is asked for) or "ok". A worker's heartbeat passes it on.
Heartbeat = Literal["ok", "cancel", "lost"]


class JobStoreError(Exception):
    """Base of the store's errors."""


class JobNotFound(JobStoreError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class JobConflict(JobStoreError):
    """The job's state forbids the operation (cancel a finished job, delete a running one)."""


class QueueFull(JobStoreError):
    def __init__(self, queued: int, limit: int) -> None:
        super().__init__(f"{queued} jobs are already waiting, the limit is {limit}")
        self.queued = queued
        self.limit = limit


class StoreUnavailable(JobStoreError):
    """The store cannot be used right now (down, read-only, full, locked too long): an outage,
    not a bug. Each backend turns its own errors into this one; ``check`` tells an operator
    what to look at."""

    def __init__(self, cause: BaseException | str, check: str) -> None:
        text = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(text)
        self.check = check


@dataclass(frozen=True)
class Lease:
    """A worker's hold on one running job; the attempt number fences out stale holders."""

    job_id: str
    worker: str
    attempt: int


@dataclass
class JobRecord:
    id: str
    status: Status
    spec: dict[str, Any]  # the job spec without its arrays (they are stored apart)
    epochs: int
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested_at: float | None = None
    attempts: int = 0
    worker: str | None = None
    lease_expires: float | None = None
    epoch: int = 0
    loss: float | None = None
    elapsed: float | None = None  # seconds of training in the current (or last) attempt
    # The latest weights of a small layer while it trains ({"weight": [...], "bias": [...]}),
    # so a watcher sees the kernel being learned, not only at the end.
    snapshot: dict[str, Any] | None = None
    result: dict[str, Any] | None = None  # scalars; learned arrays are stored apart
    # A network job's last checkpoint: what it holds besides its arrays (stored apart, as
    # "checkpoint/<name>"), and the epoch it was saved after; a new attempt resumes there.
    checkpoint: dict[str, Any] | None = None
    checkpoint_epoch: int = 0
    error: str | None = None  # why it failed, in words a user can act on
    message: str | None = None  # the latest note: re-queued after a worker died, ...
    idempotency_key: str | None = None
    digest: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


#: Every stored field of a record, in order; backends store these and nothing else.
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(JobRecord))
#: Fields held as JSON text, the integer ones and the text ones (the rest are floats).
JSON_FIELDS = frozenset({"spec", "snapshot", "result", "checkpoint"})
INT_FIELDS = frozenset({"epochs", "attempts", "epoch", "checkpoint_epoch"})
TEXT_FIELDS = frozenset({"id", "status", "worker", "error", "message", "idempotency_key", "digest"})
_SETTABLE = frozenset(FIELDS) - {"id"}


@dataclass(frozen=True)
class Fence:
    """What a conditional write expects of the job; it applies only if all of it holds.

    ``status``, ``worker`` and ``attempt`` always count (``worker=None``: no worker). A
    cancel request is part of the running state, so a write decided on "no cancel asked" can
    say so; ``expired_by`` asks that the lease ran out before that time (a lease renewed in
    the meantime is not reaped)."""

    status: Status
    worker: str | None
    attempt: int
    cancel_requested: bool | None = None
    expired_by: float | None = None

    @classmethod
    def of(cls, job: JobRecord, **kw: Any) -> Fence:
        return cls(job.status, job.worker, job.attempts, **kw)

    @classmethod
    def held(cls, lease: Lease) -> Fence:
        return cls("running", lease.worker, lease.attempt)

    def admits(self, job: JobRecord) -> bool:
        """The same test the backends make atomically (kept here for the pure tests)."""
        if (job.status, job.worker, job.attempts) != (self.status, self.worker, self.attempt):
            return False
        if (
            self.cancel_requested is not None
            and (job.cancel_requested_at is not None) != self.cancel_requested
        ):
            return False
        return self.expired_by is None or (
            job.lease_expires is not None and job.lease_expires < self.expired_by
        )


@dataclass(frozen=True)
class Change:
    """What a conditional write sets: record fields (None clears one), integer fields to add
    to (``add``), and the histories: ``trim_history`` first drops the loss and metric history
    after the record's ``checkpoint_epoch`` (all of it when there is no checkpoint), then
    ``losses`` adds epoch -> loss and ``metrics`` adds name -> epoch -> value."""

    fields: Mapping[str, Any]
    add: Mapping[str, int] = field(default_factory=dict)
    trim_history: bool = False
    losses: Mapping[int, float] = field(default_factory=dict)
    metrics: Mapping[str, Mapping[int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.fields.keys() <= _SETTABLE and self.add.keys() <= INT_FIELDS - self.fields.keys()):
            bad = (self.fields.keys() - _SETTABLE) | (self.add.keys() - (INT_FIELDS - self.fields.keys()))
            raise ValueError(f"a change cannot set {sorted(bad)}")


@dataclass(frozen=True)
class Transition:
    """One rule's outcome: the write to make, and what it expects of the job."""

    fence: Fence
    change: Change


@dataclass(frozen=True)
class Inserted:
    """What a create-if-absent did: ``created``, found the key's job (``exists``), or
    refused because ``queued`` jobs already wait (``full``)."""

    outcome: Literal["created", "exists", "full"]
    existing: JobRecord | None = None
    queued: int = 0
