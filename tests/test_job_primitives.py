"""The backends' atomic primitives under the races the contract tests cannot stage in order,
and each backend's outages as the one StoreUnavailable. Run on every backend of the contract."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from mxconv_server.jobs import JobStore, Lease, StoreUnavailable, open_store, rules

from .test_job_store_contract import BACKENDS, SPEC, Clock, _arrays, _new


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    s = BACKENDS[request.param](tmp_path)()
    s.clock = Clock()  # type: ignore[method-assign]
    return s


def _now(store: JobStore) -> float:
    return store.clock()


def _advance(store: JobStore, seconds: float) -> None:
    store.clock.now += seconds  # type: ignore[attr-defined]


def test_a_reap_read_before_a_renewal_is_refused(store: JobStore) -> None:
    job_id = _new(store)
    claimed = store.claim("slow", 10)
    assert claimed is not None
    _advance(store, 11)
    [expired] = store._expired(_now(store))
    decided = rules.expire(expired, _now(store), 3)
    assert decided is not None
    assert store.heartbeat(claimed[1], 10, epoch=1) == "ok"  # the worker was late, not dead
    assert not store._apply(job_id, decided)
    got = store.get(job_id)
    assert got is not None and got.status == "running" and got.worker == "slow"
    assert store.reap(max_attempts=3) == []


def test_a_reap_read_before_a_cancel_is_refused_then_cancels(store: JobStore) -> None:
    job_id = _new(store)
    assert store.claim("w", 10) is not None
    _advance(store, 11)
    [expired] = store._expired(_now(store))
    decided = rules.expire(expired, _now(store), 3)  # re-queue: no cancel was asked then
    store.cancel(job_id)
    assert decided is not None and not store._apply(job_id, decided)
    assert store.reap(max_attempts=3) == [job_id]
    got = store.get(job_id)
    assert got is not None and got.status == "cancelled" and got.message and "cancelled;" in got.message


def test_fenced_writes_answer_lost_ok_or_cancel(store: JobStore) -> None:
    job_id = _new(store)
    claimed = store.claim("w", 10)
    assert claimed is not None
    beat = rules.progress(claimed[1], _now(store), 10, epoch=1)
    assert store._cas(job_id, beat.fence, beat.change) == "ok"
    store.cancel(job_id)
    assert store._cas(job_id, beat.fence, beat.change) == "cancel"
    stale = rules.progress(Lease(job_id, "w", 2), _now(store), 10, epoch=9)
    assert store._cas(job_id, stale.fence, stale.change) == "lost"
    assert store._cas("nope", beat.fence, beat.change) == "lost"
    got = store.get(job_id)
    assert got is not None and got.epoch == 1


def test_claim_takes_the_oldest_queued_job_only(store: JobStore) -> None:
    first, second, third = _new(store), _new(store), _new(store)
    store.cancel(first)
    claimed = store.claim("w", 10)
    assert claimed is not None and claimed[0].id == second and claimed[0].attempts == 1
    _advance(store, 11)
    assert store.reap(3) == [second]  # back in the queue, ahead of the third by age
    again = store.claim("w2", 10)
    assert again is not None and again[0].id == second and again[0].attempts == 2
    assert store.count("queued") == 1 and store.claim("w3", 10)[0].id == third  # type: ignore[index]


def test_a_stale_lease_cannot_delete_or_write_arrays(store: JobStore) -> None:
    job_id = _new(store)
    claimed = store.claim("w", 10)
    assert claimed is not None
    stale = claimed[1]
    _advance(store, 11)
    assert store.reap(3) == [job_id]
    assert store.claim("w2", 10) is not None
    assert not store.finish(stale, "succeeded", arrays={"weight": np.ones((1, 1, 1, 2))})
    assert "weight" not in store.arrays(job_id)


def test_arrays_come_back_through_the_wire_codec(store: JobStore) -> None:
    record, _ = store.create(SPEC, _arrays(), epochs=10)
    x = store.arrays(record.id)["x"]
    assert x.dtype == np.float32 and not x.flags.writeable  # a view of the stored bytes, no copy
    with pytest.raises(ValueError):  # the codec's dtypes only: nothing else goes in
        store.create(SPEC, {"x": np.arange(3)}, epochs=1)


def test_sqlite_outages_are_store_unavailable(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    job_id = _new(store)
    ro = sqlite3.connect(f"file:{tmp_path / 'jobs.sqlite3'}?mode=ro", uri=True, isolation_level=None)
    ro.row_factory = sqlite3.Row
    store._local.conn = ro  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailable, match="readonly") as e:
        store.create(SPEC, _arrays(), epochs=1)
    assert "MXCONV_DATA_DIR" in e.value.check and isinstance(e.value.__cause__, sqlite3.OperationalError)
    assert store.get(job_id) is not None  # reads still work
    with pytest.raises(StoreUnavailable, match="readonly"):
        store.ping()
    # A statement SQLite cannot parse is a bug, not an outage (Python 3.11+ says which it is).
    with pytest.raises(sqlite3.OperationalError) as bad:
        ro.execute("SELEC 1")
    if sys.version_info >= (3, 11):
        assert store._outage(bad.value) is None


def test_sqlite_unopenable_path_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises((StoreUnavailable, OSError)):
        open_store(f"sqlite:///{tmp_path / 'file' / 'jobs.sqlite3'}")  # a file where a dir should be
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite:///{tmp_path / 'dir.sqlite3'}")  # a directory where the file should be


def test_redis_outages_are_store_unavailable(tmp_path: Path) -> None:
    from . import redis_server

    server = redis_server.start(tmp_path / "redis")
    try:
        store = open_store(server.url)
        job_id = _new(store)
        server.stop()
        for call in (lambda: store.get(job_id), store.ping, lambda: store.claim("w", 10)):
            with pytest.raises(StoreUnavailable) as e:
                call()
            assert "MXCONV_JOBS_URL" in e.value.check and "ConnectionError" in str(e.value)
    finally:
        server.stop()


def test_not_every_error_is_an_outage(store: JobStore) -> None:
    assert store._outage(KeyError("a bug")) is None and store._outage(ValueError("a bug")) is None
