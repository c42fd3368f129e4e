"""The job state machine, written once: pure functions, no I/O, no clock of their own.

::

    queued   --claim-->   running --finish--> succeeded | failed | cancelled
    queued   --cancel-->  cancelled, at once
    running  --cancel-->  running with a cancel requested: the worker stops within an
                          epoch, then finishes "cancelled"
    running  --requeue--> queued: a worker shutting down; its attempt is not counted
    running  --lease expired--> queued; failed once max_attempts are used; cancelled if
                          a cancel was requested
    finished --delete-->  gone (a queued or running job cannot be deleted)
    submit with an Idempotency-Key already used: the same job (same body) or a conflict

Each rule reads a record and returns a :class:`Transition`: the change to write and the
:class:`Fence` it expects (status, worker and attempt); a claim is a change that the
backend applies to whichever job is oldest in the queue. The backends apply it atomically or
not at all, so a decision made on a stale read is refused, never applied. A worker's every
write is fenced by its lease: once its lease was reaped and the job claimed again (a new
attempt), nothing the old worker sends is written. That, with one attempt per claim, is why
no job runs to completion twice, even when a worker is killed with -9.

The user-facing messages of these outcomes live here too, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .records import (
    FINISHED,
    Change,
    Fence,
    Inserted,
    JobConflict,
    JobRecord,
    Lease,
    QueueFull,
    Status,
    Transition,
)

CANCELLED_QUEUED = "cancelled before it started"
CANCEL_REQUESTED = "cancel requested; the worker stops at the end of this epoch"


def lost_lease(job: JobRecord) -> str:
    return f"worker {job.worker} stopped responding (its lease expired) during attempt {job.attempts}"


def out_of_attempts(job: JobRecord, max_attempts: int) -> str:
    return (
        f"{lost_lease(job)}, the last of {max_attempts} allowed (MXCONV_JOB_MAX_ATTEMPTS). "
        "The worker may have run out of memory: try a smaller sample or batch size, then resubmit"
    )


def shut_down(worker: str, epoch: int, attempt: int, checkpoint_epoch: int = 0) -> str:
    then = (
        f"it resumes from its checkpoint after epoch {checkpoint_epoch}"
        if checkpoint_epoch
        else "the job starts over"
    )
    return f"re-queued: worker {worker} shut down at epoch {epoch} of attempt {attempt}; {then}"


def internal_error(exc: BaseException) -> str:
    return f"internal error in the job worker ({type(exc).__name__}); the worker log has details"


# -- submit ----------------------------------------------------------------------------


def new_job(
    job_id: str,
    spec: Mapping[str, Any],
    *,
    epochs: int,
    now: float,
    idempotency_key: str | None = None,
    digest: str | None = None,
) -> JobRecord:
    return JobRecord(
        id=job_id,
        status="queued",
        spec=dict(spec),
        epochs=int(epochs),
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        digest=digest,
    )


def admitted(record: JobRecord, inserted: Inserted, max_queued: int | None) -> tuple[JobRecord, bool]:
    """The outcome of a create-if-absent: the new job and True; for a key already used with
    the same body, its job and False. QueueFull, or JobConflict for a key reused on another body."""
    if inserted.outcome == "full":
        raise QueueFull(inserted.queued, int(max_queued or 0))
    if inserted.outcome == "created":
        return record, True
    existing = inserted.existing
    assert existing is not None
    if record.digest is not None and existing.digest not in (None, record.digest):
        raise JobConflict(
            f"Idempotency-Key {record.idempotency_key!r} was already used for a different job "
            f"({existing.id}); use a new key for a new job"
        )
    return existing, False


# -- the API side ----------------------------------------------------------------------


def cancel(job: JobRecord, now: float) -> Transition | None:
    """A queued job is cancelled at once; a running one is asked to stop. None: already asked."""
    if job.status in FINISHED:
        raise JobConflict(f"job {job.id} has already finished ({job.status}); there is nothing to cancel")
    if job.status == "queued":
        fields = {
            "status": "cancelled",
            "cancel_requested_at": now,
            "finished_at": now,
            "updated_at": now,
            "message": CANCELLED_QUEUED,
        }
        return Transition(Fence.of(job), Change(fields))
    if job.cancel_requested_at is not None:
        return None
    fields = {"cancel_requested_at": now, "updated_at": now, "message": CANCEL_REQUESTED}
    return Transition(Fence.of(job, cancel_requested=False), Change(fields))


def deletable(job: JobRecord) -> Fence:
    """Only a finished job may be deleted; the fence the removal expects."""
    if job.status not in FINISHED:
        raise JobConflict(
            f"job {job.id} is {job.status}; only finished jobs can be deleted (cancel it first)"
        )
    return Fence.of(job)


# -- the worker side -------------------------------------------------------------------


def claim(worker: str, now: float, lease_seconds: float) -> Change:
    """What taking the oldest queued job does to it (the backend picks the job and applies
    this atomically): running, one more attempt, a fresh lease; the last attempt's progress
    goes, but for the history up to its checkpoint, where a network job resumes."""
    fields = {
        "status": "running",
        "worker": worker,
        "lease_expires": now + lease_seconds,
        "started_at": now,
        "updated_at": now,
        "epoch": 0,
        "loss": None,
        "elapsed": 0.0,
        "snapshot": None,
    }
    return Change(fields, add={"attempts": 1}, trim_history=True)


def lease_of(job: JobRecord) -> Lease:
    assert job.status == "running" and job.worker is not None
    return Lease(job.id, job.worker, job.attempts)


def progress(
    lease: Lease,
    now: float,
    lease_seconds: float,
    *,
    epoch: int | None = None,
    loss: float | None = None,
    elapsed: float | None = None,
    new_losses: Mapping[int, float] | None = None,
    new_metrics: Mapping[str, Mapping[int, float]] | None = None,
    snapshot: Mapping[str, Any] | None = None,
    checkpoint: Mapping[str, Any] | None = None,
) -> Transition:
    """Renew the lease; record what is given (what is not given keeps its value). With a
    ``checkpoint`` (its JSON part, with the ``epoch`` it was saved after) the job's last
    checkpoint moves there; its arrays go with the same write."""
    given = {"epoch": epoch, "loss": loss, "elapsed": elapsed, "snapshot": snapshot}
    fields: dict[str, Any] = {"lease_expires": now + lease_seconds, "updated_at": now}
    fields.update({k: v for k, v in given.items() if v is not None})
    if checkpoint is not None:
        fields.update(checkpoint=dict(checkpoint), checkpoint_epoch=int(checkpoint["epoch"]))
    losses = {int(e): float(v) for e, v in (new_losses or {}).items()}
    metrics = {
        str(name): {int(e): float(v) for e, v in series.items()}
        for name, series in (new_metrics or {}).items()
        if series
    }
    return Transition(Fence.held(lease), Change(fields, losses=losses, metrics=metrics))


def finish(
    lease: Lease,
    status: Status,
    now: float,
    *,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> Transition:
    if status not in FINISHED:
        raise ValueError(f"finish() takes a final status, not {status!r}")
    fields = {
        "status": status,
        "finished_at": now,
        "updated_at": now,
        "lease_expires": None,
        "result": None if result is None else dict(result),
        "error": error,
    }
    return Transition(Fence.held(lease), Change(fields))


def requeue(lease: Lease, now: float, reason: str) -> Transition:
    """Give the job back (a worker shutting down); the attempt it used is not counted."""
    fields = {
        "status": "queued",
        "worker": None,
        "lease_expires": None,
        "updated_at": now,
        "attempts": lease.attempt - 1,
        "message": reason,
    }
    return Transition(Fence.held(lease), Change(fields))


def expire(job: JobRecord, now: float, max_attempts: int) -> Transition | None:
    """A running job whose lease ran out: re-queued, failed once ``max_attempts`` are used,
    or cancelled if a cancel was asked. None while the lease holds."""
    if job.status != "running" or job.lease_expires is None or job.lease_expires >= now:
        return None
    asked = job.cancel_requested_at is not None
    fence = Fence.of(job, cancel_requested=asked, expired_by=now)
    done = {"finished_at": now, "updated_at": now, "lease_expires": None}
    if asked:
        fields: dict[str, Any] = {"status": "cancelled", **done, "message": f"cancelled; {lost_lease(job)}"}
    elif job.attempts >= max_attempts:
        fields = {"status": "failed", **done, "error": out_of_attempts(job, max_attempts)}
    else:
        fields = {
            "status": "queued",
            "worker": None,
            "lease_expires": None,
            "updated_at": now,
            "message": f"re-queued: {lost_lease(job)}",
        }
    return Transition(fence, Change(fields))


def apply(job: JobRecord, change: Change) -> JobRecord:
    """The record after ``change`` (what a backend's write gives; for the pure tests)."""
    added = {name: getattr(job, name) + n for name, n in change.add.items()}
    return replace(job, **dict(change.fields), **added)
