"""The job store contract, run against every backend.

A new backend (Redis, issue 6) adds one entry to ``BACKENDS`` below: a function that, given
pytest's tmp_path, returns an ``open()`` callable giving a fresh handle on the SAME store
(so the tests can reopen it and race several handles against each other).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mxconv_server.jobs import JobConflict, JobNotFound, JobStore, QueueFull, open_store
from mxconv_server.jobs.store import from_npy, to_npy


def _sqlite(tmp_path: Path) -> Callable[[], JobStore]:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return lambda: open_store(url)


def _redis(tmp_path: Path) -> Callable[[], JobStore]:
    from . import redis_server

    url = redis_server.fresh_url()  # a real redis-server (skipped without one, failed in CI)
    return lambda: open_store(url)


BACKENDS: dict[str, Callable[[Path], Callable[[], JobStore]]] = {"sqlite": _sqlite, "redis": _redis}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], JobStore]:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(opener: Callable[[], JobStore], clock: Clock) -> JobStore:
    s = opener()
    s.clock = clock  # type: ignore[method-assign]
    return s


SPEC = {"layer": {"out_channels": 1, "kernel_size": [1, 2]}, "epochs": 10}


def _arrays() -> dict[str, np.ndarray]:
    return {"x": np.arange(36, dtype=np.float32).reshape(6, 6), "y": np.ones((6, 5), dtype=np.float64)}


def _new(store: JobStore, **kw: object) -> str:
    record, created = store.create(SPEC, _arrays(), epochs=10, **kw)  # type: ignore[arg-type]
    assert created
    return record.id


def test_create_get_and_arrays_round_trip(store: JobStore) -> None:
    record, created = store.create(SPEC, _arrays(), epochs=10)
    assert created and record.status == "queued" and record.attempts == 0
    got = store.get(record.id)
    assert got is not None and got.spec == SPEC and got.epochs == 10 and got.created_at == 1_000_000.0
    arrays = store.arrays(record.id)
    for name, arr in _arrays().items():
        assert arrays[name].dtype == arr.dtype and np.array_equal(arrays[name], arr)
    assert set(store.arrays(record.id, ["x"])) == {"x"}
    assert store.get("nope") is None


def test_arrays_are_never_pickled() -> None:
    with pytest.raises(ValueError):
        to_npy(np.array([{"a": 1}], dtype=object))
    assert np.array_equal(from_npy(to_npy(np.eye(2))), np.eye(2))


def test_list_is_newest_first_paginated_and_filtered(store: JobStore, clock: Clock) -> None:
    ids = []
    for _ in range(5):
        ids.append(_new(store))
        clock.now += 1
    page, total = store.list(limit=2)
    assert total == 5 and [r.id for r in page] == ids[::-1][:2]
    page, _ = store.list(limit=2, offset=4)
    assert [r.id for r in page] == [ids[0]]
    claimed = store.claim("w", 10)
    assert claimed is not None and claimed[0].id == ids[0]  # FIFO
    running, total = store.list(status="running")
    assert total == 1 and running[0].id == ids[0]
    assert store.count("queued") == 4 and store.count("running") == 1


def test_queue_limit_is_atomic(store: JobStore) -> None:
    _new(store, max_queued=2)
    _new(store, max_queued=2)
    with pytest.raises(QueueFull) as e:
        store.create(SPEC, _arrays(), epochs=10, max_queued=2)
    assert e.value.queued == 2 and e.value.limit == 2
    assert store.claim("w", 10) is not None  # one leaves the queue: room again
    _new(store, max_queued=2)


def test_idempotency_key(store: JobStore) -> None:
    first, created = store.create(SPEC, _arrays(), epochs=10, idempotency_key="k1", digest="d1")
    again, created_again = store.create(SPEC, _arrays(), epochs=10, idempotency_key="k1", digest="d1")
    assert created and not created_again and again.id == first.id
    with pytest.raises(JobConflict):
        store.create(SPEC, _arrays(), epochs=10, idempotency_key="k1", digest="other")
    assert store.count("queued") == 1


def test_claim_heartbeat_finish(store: JobStore, clock: Clock) -> None:
    assert store.claim("w", 10) is None
    job_id = _new(store)
    claimed = store.claim("w", 10)
    assert claimed is not None
    record, lease = claimed
    assert record.status == "running" and record.attempts == 1 and record.worker == "w"
    assert record.lease_expires == clock.now + 10 and record.started_at == clock.now
    assert store.claim("w2", 10) is None
    clock.now += 5
    assert store.heartbeat(lease, 10, epoch=2, loss=0.5, elapsed=1.5, new_losses={1: 0.9, 2: 0.5}) == "ok"
    assert store.heartbeat(lease, 10, new_losses={3: 0.25}) == "ok"
    got = store.get(job_id)
    assert got is not None and (got.epoch, got.loss, got.elapsed) == (2, 0.5, 1.5)
    assert got.lease_expires == clock.now + 10
    assert store.losses(job_id) == [0.9, 0.5, 0.25]
    assert got.snapshot is None
    assert store.heartbeat(lease, 10, epoch=3, snapshot={"weight": [[[[0.5, -0.5]]]], "bias": [0.1]}) == "ok"
    got = store.get(job_id)
    assert got is not None and got.snapshot == {"weight": [[[[0.5, -0.5]]]], "bias": [0.1]}
    assert store.heartbeat(lease, 10, epoch=4) == "ok"  # no snapshot this time: the last one stays
    assert store.get(job_id).snapshot == {"weight": [[[[0.5, -0.5]]]], "bias": [0.1]}  # type: ignore[union-attr]
    w = np.array([[[[1.0, -1.0]]]], dtype=np.float32)
    assert store.finish(lease, "succeeded", result={"final_loss": 0.25}, arrays={"weight": w})
    got = store.get(job_id)
    assert got is not None and got.status == "succeeded" and got.finished
    assert got.result == {"final_loss": 0.25} and got.finished_at == clock.now
    assert np.array_equal(store.arrays(job_id)["weight"], w)
    assert store.heartbeat(lease, 10) == "lost"  # finished: no longer held
    with pytest.raises(ValueError):
        store.finish(lease, "running")


def test_concurrent_claims_never_share_a_job(opener: Callable[[], JobStore]) -> None:
    ids = {_new(opener()) for _ in range(24)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        own = opener()  # own handle, as a separate worker process would have
        while (got := own.claim(name, 30)) is not None:
            with lock:
                claimed.append(got[0].id)
        own.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_expired_lease_is_requeued_and_fences_the_old_worker(store: JobStore, clock: Clock) -> None:
    job_id = _new(store)
    claimed = store.claim("dead", 10)
    assert claimed is not None
    _, old = claimed
    store.heartbeat(old, 10, epoch=1, new_losses={1: 1.0}, snapshot={"weight": [1.0]})
    clock.now += 9
    assert store.reap(max_attempts=2) == []  # still within its lease
    clock.now += 2
    assert store.reap(max_attempts=2) == [job_id]
    got = store.get(job_id)
    assert got is not None and got.status == "queued" and got.message and "dead" in got.message
    again = store.claim("alive", 10)
    assert again is not None
    record, new = again
    assert record.attempts == 2 and new.attempt == 2 and store.losses(job_id) == []
    assert record.snapshot is None  # the dead attempt's weights are not the new attempt's
    # The old worker wakes up: every write it tries is refused.
    assert store.heartbeat(old, 10, epoch=5) == "lost"
    assert not store.finish(old, "succeeded", result={})
    assert not store.requeue(old, "bye")
    assert store.finish(new, "succeeded", result={"ok": True})


def test_lease_expiry_after_max_attempts_fails_with_a_reason(store: JobStore, clock: Clock) -> None:
    job_id = _new(store)
    for _ in range(2):
        assert store.claim("w", 10) is not None
        clock.now += 11
        assert store.reap(max_attempts=2) == [job_id]
    got = store.get(job_id)
    assert got is not None and got.status == "failed" and got.finished_at == clock.now
    assert got.error and "lease expired" in got.error and "2" in got.error


def test_cancel(store: JobStore, clock: Clock) -> None:
    queued = _new(store)
    running = _new(store)
    # queued: cancelled at once
    assert store.cancel(queued).status == "cancelled"
    with pytest.raises(JobConflict):
        store.cancel(queued)
    with pytest.raises(JobNotFound):
        store.cancel("nope")
    # running: asked to stop; the worker hears it on its next heartbeat
    claimed = store.claim("w", 10)
    assert claimed is not None and claimed[0].id == running
    record = store.cancel(running)
    assert record.status == "running" and record.cancel_requested_at == clock.now
    assert store.heartbeat(claimed[1], 10, epoch=1) == "cancel"
    assert store.finish(claimed[1], "cancelled")
    got = store.get(running)
    assert got is not None and got.status == "cancelled"


def test_reaping_a_cancelled_job_cancels_it(store: JobStore, clock: Clock) -> None:
    job_id = _new(store)
    assert store.claim("w", 10) is not None
    store.cancel(job_id)
    clock.now += 11
    store.reap(max_attempts=3)
    got = store.get(job_id)
    assert got is not None and got.status == "cancelled"


def test_delete_only_finished(store: JobStore) -> None:
    job_id = _new(store)
    with pytest.raises(JobConflict):
        store.delete(job_id)
    store.cancel(job_id)
    store.delete(job_id)
    assert store.get(job_id) is None and store.arrays(job_id) == {}
    with pytest.raises(JobNotFound):
        store.delete(job_id)


def test_requeue_on_shutdown_does_not_use_an_attempt(store: JobStore) -> None:
    job_id = _new(store)
    claimed = store.claim("w", 10)
    assert claimed is not None
    assert store.requeue(claimed[1], "worker shutting down")
    got = store.get(job_id)
    assert got is not None and got.status == "queued" and got.attempts == 0
    assert got.message == "worker shutting down"


def test_records_survive_reopening(opener: Callable[[], JobStore]) -> None:
    first = opener()
    job_id = _new(first)
    claimed = first.claim("w", 10)
    assert claimed is not None
    first.finish(claimed[1], "succeeded", result={"final_loss": 0.1}, arrays={"weight": np.ones(2)})
    first.close()
    second = opener()
    got = second.get(job_id)
    assert got is not None and got.status == "succeeded" and got.result == {"final_loss": 0.1}
    assert np.array_equal(second.arrays(job_id)["weight"], np.ones(2))
    second.ping()


def test_sqlite_store_made_before_a_column_existed_gains_it(tmp_path: Path) -> None:
    """A store file from an older release opens, gains the new columns, and keeps its jobs."""
    import sqlite3

    from mxconv_server.jobs.sqlite import ADDED_COLUMNS, SqliteJobStore

    path = tmp_path / "old.sqlite3"
    store = SqliteJobStore(path)
    job_id = _new(store)
    store.close()
    with sqlite3.connect(path) as db:
        for name, _ in ADDED_COLUMNS:
            db.execute(f"ALTER TABLE jobs DROP COLUMN {name}")
    reopened = SqliteJobStore(path)
    claimed = reopened.claim("w", 10)
    assert claimed is not None and claimed[0].id == job_id
    assert reopened.heartbeat(claimed[1], 10, epoch=1, snapshot={"weight": [1.0]}) == "ok"
    assert reopened.get(job_id).snapshot == {"weight": [1.0]}  # type: ignore[union-attr]


# -- checkpoints (network jobs) -------------------------------------------------------------


def _weights(value: float) -> dict[str, np.ndarray]:
    return {"p/0.weight": np.full((2, 3), value, dtype=np.float32), "s/0.weight/0": np.zeros(6, np.float32)}


def test_a_checkpoint_is_written_with_its_progress_and_read_back(store: JobStore, clock: Clock) -> None:
    job_id = _new(store)
    claimed = store.claim("w", 10)
    assert claimed is not None and store.checkpoint(job_id) is None
    lease = claimed[1]
    assert (
        store.heartbeat(
            lease, 10, epoch=2, new_losses={1: 0.9, 2: 0.8}, new_metrics={"val_loss": {1: 1.5, 2: 1.25}}
        )
        == "ok"
    )
    answer = store.heartbeat(
        lease, 10, epoch=3, new_losses={3: 0.7}, new_metrics={"val_loss": {3: 1.0}, "accuracy": {3: 0.5}},
        checkpoint=({"epoch": 3, "elapsed": 1.5, "optimizer": {"num_update": 9}}, _weights(1.0)),
    )  # fmt: skip
    assert answer == "ok"
    meta, arrays = store.checkpoint(job_id)  # type: ignore[misc]
    assert meta["epoch"] == 3 and meta["optimizer"] == {"num_update": 9} and meta["saved_at"] == clock.now
    assert meta["arrays"] == sorted(_weights(1.0)) and set(arrays) == set(_weights(1.0))
    assert np.array_equal(arrays["p/0.weight"], _weights(1.0)["p/0.weight"])
    got = store.get(job_id)
    assert got is not None and got.checkpoint_epoch == 3 and got.epoch == 3
    assert store.losses(job_id) == [0.9, 0.8, 0.7]
    assert store.history(job_id) == {"val_loss": [1.5, 1.25, 1.0], "accuracy": [0.5]}
    # the next checkpoint replaces it, arrays and all
    store.heartbeat(lease, 10, epoch=4, checkpoint=({"epoch": 4}, _weights(2.0)))
    meta, arrays = store.checkpoint(job_id)  # type: ignore[misc]
    assert meta["epoch"] == 4 and float(arrays["p/0.weight"][0, 0]) == 2.0
    assert set(store.arrays(job_id, ["x", "y"])) == {"x", "y"}  # only what is asked for


def test_history_is_in_epoch_order_past_nine(store: JobStore) -> None:
    job_id = _new(store)
    claimed = store.claim("w", 10)
    assert claimed is not None
    store.heartbeat(claimed[1], 10, new_metrics={"acc": {10: 0.10, 2: 0.02, 1: 0.01}})
    assert store.history(job_id) == {"acc": [0.01, 0.02, 0.10]}


def test_a_new_attempt_keeps_the_history_up_to_the_checkpoint(store: JobStore, clock: Clock) -> None:
    job_id = _new(store)
    claimed = store.claim("dead", 10)
    assert claimed is not None
    old = claimed[1]
    for epoch in range(1, 7):  # a checkpoint after epoch 4, then two more epochs
        ckpt = ({"epoch": epoch}, _weights(float(epoch))) if epoch == 4 else None
        metrics = {"val_loss": {epoch: 10.0 + epoch}}
        assert store.heartbeat(old, 10, epoch=epoch, new_losses={epoch: float(epoch)}, new_metrics=metrics,
                               checkpoint=ckpt) == "ok"  # fmt: skip
    clock.now += 11
    assert store.reap(max_attempts=3) == [job_id]
    again = store.claim("alive", 10)
    assert again is not None and again[0].attempts == 2 and again[0].checkpoint_epoch == 4
    assert store.losses(job_id) == [1.0, 2.0, 3.0, 4.0]  # continuous up to the checkpoint
    assert store.history(job_id) == {"val_loss": [11.0, 12.0, 13.0, 14.0]}
    meta, arrays = store.checkpoint(job_id)  # type: ignore[misc]
    assert meta["epoch"] == 4 and float(arrays["p/0.weight"][0, 0]) == 4.0
    # The dead worker wakes up: its checkpoint is refused like any other write.
    assert store.heartbeat(old, 10, epoch=9, checkpoint=({"epoch": 9}, _weights(9.0))) == "lost"
    assert store.checkpoint(job_id)[0]["epoch"] == 4  # type: ignore[index]
    # The new attempt goes on from epoch 5.
    new = again[1]
    assert store.heartbeat(new, 10, epoch=5, new_losses={5: 5.5}, new_metrics={"val_loss": {5: 15.5}}) == "ok"
    assert store.losses(job_id) == [1.0, 2.0, 3.0, 4.0, 5.5]
    # Without any checkpoint a new attempt starts with no history at all (as before).
    other = _new(store)
    first = store.claim("w", 10)
    assert first is not None and first[0].id == other
    store.heartbeat(first[1], 10, epoch=1, new_losses={1: 1.0}, new_metrics={"val_loss": {1: 1.0}})
    assert store.requeue(first[1], "bye")
    assert store.claim("w", 10) is not None
    assert store.losses(other) == [] and store.history(other) == {}


def test_a_cancelled_job_keeps_its_last_checkpoint_and_delete_removes_it(store: JobStore) -> None:
    job_id = _new(store)
    claimed = store.claim("w", 10)
    assert claimed is not None
    store.heartbeat(claimed[1], 10, epoch=10, new_metrics={"accuracy": {10: 0.9}},
                    checkpoint=({"epoch": 10}, _weights(3.0)))  # fmt: skip
    store.cancel(job_id)
    assert store.finish(claimed[1], "cancelled")
    got = store.get(job_id)
    assert got is not None and got.status == "cancelled" and got.checkpoint_epoch == 10
    meta, arrays = store.checkpoint(job_id)  # type: ignore[misc]
    assert meta["epoch"] == 10 and float(arrays["p/0.weight"][1, 2]) == 3.0
    store.delete(job_id)
    assert store.checkpoint(job_id) is None and store.history(job_id) == {} and store.arrays(job_id) == {}
