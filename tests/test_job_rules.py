"""The job state machine (mxconv_server.jobs.rules) on its own: pure, no store, no clock."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from mxconv_server.jobs import rules
from mxconv_server.jobs.records import (
    FINISHED,
    Change,
    Fence,
    Inserted,
    JobConflict,
    JobRecord,
    Lease,
    QueueFull,
    Transition,
)

NOW = 1_000_000.0


def queued(**kw: object) -> JobRecord:
    return replace(rules.new_job("j1", {"epochs": 3}, epochs=3, now=NOW), **kw)  # type: ignore[arg-type]


def running(worker: str = "w", attempts: int = 1, lease_expires: float = NOW + 10, **kw: object) -> JobRecord:
    job = queued(status="running", worker=worker, attempts=attempts, lease_expires=lease_expires)
    return replace(job, **kw)  # type: ignore[arg-type]


def write(job: JobRecord, t: Transition | None) -> JobRecord | None:
    """What a backend's compare-and-set does: apply only if the fence admits the job."""
    if t is None or not t.fence.admits(job):
        return None
    return rules.apply(job, t.change)


def test_new_job_is_queued_with_no_attempts() -> None:
    job = rules.new_job("j1", {"a": 1}, epochs=4, now=NOW, idempotency_key="k", digest="d")
    assert (job.status, job.attempts, job.epochs, job.created_at, job.updated_at) == (
        "queued",
        0,
        4,
        NOW,
        NOW,
    )
    assert (job.idempotency_key, job.digest, job.worker, job.lease_expires) == ("k", "d", None, None)


def claimed(job: JobRecord, worker: str, now: float = NOW) -> JobRecord | None:
    """What a backend's claim-oldest does to the job it picks (only a queued one)."""
    return rules.apply(job, rules.claim(worker, now, 10)) if job.status == "queued" else None


def test_claim_starts_an_attempt_with_a_lease() -> None:
    change = rules.claim("w", NOW, 10)
    assert dict(change.add) == {"attempts": 1} and change.trim_history
    f = change.fields
    assert (f["status"], f["worker"], f["lease_expires"], f["started_at"], f["updated_at"]) == (
        "running",
        "w",
        NOW + 10,
        NOW,
        NOW,
    )
    assert (f["epoch"], f["loss"], f["elapsed"], f["snapshot"]) == (0, None, 0.0, None)
    after = claimed(queued(attempts=1, epoch=7, loss=0.5, snapshot={"weight": [1.0]}), "w")
    assert after is not None and rules.lease_of(after) == Lease("j1", "w", 2)
    assert (after.epoch, after.loss, after.snapshot) == (0, None, None)


def test_progress_sets_only_what_is_given_and_renews_the_lease() -> None:
    lease = Lease("j1", "w", 1)
    t = rules.progress(lease, NOW + 5, 10, epoch=2, new_losses={1: 0.9, 2: 0.5})
    assert t.fence == Fence("running", "w", 1)
    assert dict(t.change.fields) == {"lease_expires": NOW + 15, "updated_at": NOW + 5, "epoch": 2}
    assert dict(t.change.losses) == {1: 0.9, 2: 0.5} and not t.change.trim_history
    snap = rules.progress(lease, NOW, 10, snapshot={"weight": [1.0]}, loss=0.25, elapsed=1.0)
    assert {"snapshot", "loss", "elapsed"} <= set(snap.change.fields)
    assert "checkpoint" not in snap.change.fields and not snap.change.metrics


def test_a_checkpoint_moves_the_checkpoint_epoch_with_the_progress() -> None:
    lease = Lease("j1", "w", 1)
    t = rules.progress(
        lease, NOW, 10, epoch=20, new_metrics={"val_loss": {20: 0.5}, "accuracy": {}},
        checkpoint={"epoch": 20, "arrays": ["p/0.weight"]},
    )  # fmt: skip
    assert t.change.fields["checkpoint_epoch"] == 20 and t.change.fields["checkpoint"]["epoch"] == 20
    assert dict(t.change.metrics) == {"val_loss": {20: 0.5}}  # an empty series writes nothing
    after = rules.apply(queued(status="running", worker="w", attempts=1), t.change)
    assert after.checkpoint_epoch == 20


def test_shutting_down_says_whether_the_job_resumes() -> None:
    assert rules.shut_down("w", 7, 1).endswith("the job starts over")
    assert rules.shut_down("w", 57, 1, checkpoint_epoch=50).endswith(
        "resumes from its checkpoint after epoch 50"
    )


def test_finish_takes_a_final_status_and_clears_the_lease() -> None:
    lease = Lease("j1", "w", 1)
    t = rules.finish(lease, "succeeded", NOW, result={"final_loss": 0.1})
    assert t.fence == Fence("running", "w", 1)
    assert t.change.fields["lease_expires"] is None and t.change.fields["result"] == {"final_loss": 0.1}
    assert rules.finish(lease, "failed", NOW, error="why").change.fields["error"] == "why"
    for status in ("running", "queued"):
        with pytest.raises(ValueError, match="final status"):
            rules.finish(lease, status, NOW)  # type: ignore[arg-type]


def test_requeue_gives_the_attempt_back() -> None:
    t = rules.requeue(Lease("j1", "w", 2), NOW, "bye")
    assert t.fence == Fence("running", "w", 2)
    f = t.change.fields
    assert (f["status"], f["worker"], f["lease_expires"], f["attempts"], f["message"]) == (
        "queued",
        None,
        None,
        1,
        "bye",
    )
    assert "worker w shut down at epoch 4 of attempt 2" in rules.shut_down("w", 4, 2)


def test_cancel() -> None:
    t = rules.cancel(queued(), NOW)
    assert t is not None and t.change.fields["status"] == "cancelled"
    assert t.change.fields["message"] == rules.CANCELLED_QUEUED and t.change.fields["finished_at"] == NOW
    t = rules.cancel(running(), NOW)
    assert t is not None and "status" not in t.change.fields
    assert t.fence.cancel_requested is False and t.change.fields["message"] == rules.CANCEL_REQUESTED
    assert rules.cancel(running(cancel_requested_at=NOW - 1), NOW) is None  # asked already
    for status in sorted(FINISHED):
        with pytest.raises(
            JobConflict, match=rf"has already finished \({status}\); there is nothing to cancel"
        ):
            rules.cancel(queued(status=status), NOW)


def test_only_finished_jobs_are_deletable() -> None:
    for status in ("queued", "running"):
        with pytest.raises(JobConflict, match="only finished jobs can be deleted"):
            rules.deletable(queued(status=status))
    assert rules.deletable(queued(status="failed", worker="w", attempts=2)) == Fence("failed", "w", 2)


def test_expire() -> None:
    assert rules.expire(running(lease_expires=NOW + 1), NOW, 3) is None  # still held
    assert rules.expire(running(lease_expires=NOW), NOW, 3) is None  # expires at, not before
    assert rules.expire(queued(), NOW, 3) is None
    t = rules.expire(running(worker="dead", lease_expires=NOW - 1), NOW, 3)
    assert t is not None and t.fence == Fence("running", "dead", 1, cancel_requested=False, expired_by=NOW)
    f = t.change.fields
    assert f["status"] == "queued" and f["worker"] is None and "dead" in f["message"]
    assert "re-queued" in f["message"] and "attempts" not in f  # the next claim counts the attempt
    t = rules.expire(running(attempts=3, lease_expires=NOW - 1), NOW, 3)
    assert t is not None and t.change.fields["status"] == "failed" and t.change.fields["finished_at"] == NOW
    assert "MXCONV_JOB_MAX_ATTEMPTS" in t.change.fields["error"] and "3" in t.change.fields["error"]
    t = rules.expire(running(attempts=3, lease_expires=NOW - 1, cancel_requested_at=NOW - 5), NOW, 3)
    assert t is not None and t.change.fields["status"] == "cancelled" and t.fence.cancel_requested is True


def test_a_reap_decided_before_a_renewal_or_a_cancel_does_not_apply() -> None:
    job = running(lease_expires=NOW - 1)
    reap = rules.expire(job, NOW, 3)
    renewed = write(job, rules.progress(Lease("j1", "w", 1), NOW, 10))
    assert renewed is not None and write(renewed, reap) is None
    asked = write(job, rules.cancel(job, NOW))
    assert asked is not None and write(asked, reap) is None


def test_admitted() -> None:
    record = rules.new_job("new", {}, epochs=1, now=NOW, idempotency_key="k", digest="d1")
    assert rules.admitted(record, Inserted("created"), None) == (record, True)
    same = replace(record, id="old")
    assert rules.admitted(record, Inserted("exists", existing=same), None) == (same, False)
    with pytest.raises(JobConflict, match="'k' was already used for a different job \\(old\\)"):
        rules.admitted(record, Inserted("exists", existing=replace(same, digest="d2")), None)
    with pytest.raises(QueueFull) as e:
        rules.admitted(record, Inserted("full", queued=5), 5)
    assert (e.value.queued, e.value.limit) == (5, 5)


def test_changes_name_real_fields_only() -> None:
    with pytest.raises(ValueError, match="nope"):
        Change({"nope": 1})
    with pytest.raises(ValueError, match="id"):
        Change({"id": "other"})
    with pytest.raises(ValueError, match="status"):
        Change({}, add={"status": 1})  # only integer fields can be added to
    with pytest.raises(ValueError, match="attempts"):
        Change({"attempts": 2}, add={"attempts": 1})


def test_fence_admits() -> None:
    job = running(cancel_requested_at=None, lease_expires=NOW)
    assert Fence("running", "w", 1).admits(job)
    assert not Fence("running", "w", 2).admits(job)
    assert not Fence("running", "v", 1).admits(job)
    assert not Fence("queued", "w", 1).admits(job)
    assert Fence("running", "w", 1, cancel_requested=False).admits(job)
    assert not Fence("running", "w", 1, cancel_requested=True).admits(job)
    assert Fence("running", "w", 1, expired_by=NOW + 1).admits(job)
    assert not Fence("running", "w", 1, expired_by=NOW).admits(job)


def test_random_interleavings_never_finish_a_job_twice() -> None:
    """Two workers, a reaper, a canceller and a clock in random order, applying the rules as a
    backend would: only the latest claim's lease ever writes, and nothing moves a finished job."""
    rng = random.Random(16)
    finished_runs = 0
    for _ in range(3000):
        job, now = queued(), NOW
        leases: dict[str, Lease] = {}
        current: Lease | None = None  # the lease of the latest claim, while it holds the job
        for _ in range(25):
            who = rng.choice(["a", "b"])
            op = rng.choice(["claim", "beat", "finish", "requeue", "reap", "cancel", "tick"])
            t: Transition | None = None
            lease = leases.get(who)
            if op == "claim":
                after = claimed(job, who, now)
                if after is not None:
                    current = leases[who] = rules.lease_of(after)
                    job = after
                continue
            if op == "beat" and lease:
                t = rules.progress(lease, now, 10, epoch=1)
            elif op == "finish" and lease:
                t = rules.finish(lease, rng.choice(["succeeded", "failed", "cancelled"]), now)
            elif op == "requeue" and lease:
                t = rules.requeue(lease, now, "bye")
            elif op == "reap":
                t = rules.expire(job, now, 2)
            elif op == "cancel" and not job.finished:
                t = rules.cancel(job, now)
            elif op == "tick":
                now += rng.choice([1.0, 6.0, 11.0])
            after = write(job, t)
            if after is None:
                continue
            assert not job.finished  # nothing is written to a finished job
            if op in ("beat", "finish", "requeue"):
                assert lease == current  # a stale lease never writes
            if after.status != "running":
                current = None
            job = after
        finished_runs += job.finished
    assert finished_runs > 500  # the walk reaches the end states often enough to mean something
