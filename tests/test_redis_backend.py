"""What the Redis job backend adds beyond the store contract (test_job_store_contract.py runs
that on Redis too): durability across a Redis restart, key prefixes, worker figures, readiness."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from mxconv_server.app import create_app
from mxconv_server.jobs import open_store
from mxconv_server.jobs.redis_store import RedisJobStore, split_url

from . import redis_server

SPEC = {"layer": {"out_channels": 1, "kernel_size": [1, 2]}}
ARRAYS = {"x": np.arange(36, dtype=np.float32).reshape(6, 6), "y": np.zeros((6, 5), dtype=np.float32)}


def test_url_prefix_is_split_off() -> None:
    assert split_url("redis://h:1/2") == ("redis://h:1/2", "mxconv:")
    assert split_url("redis://h:1/2?prefix=a:&socket_timeout=3") == ("redis://h:1/2?socket_timeout=3", "a:")


def test_records_survive_a_redis_restart(tmp_path: Path) -> None:
    server = redis_server.start(tmp_path / "redis")
    try:
        store = open_store(server.url)
        record, _ = store.create(SPEC, ARRAYS, epochs=3)
        claimed = store.claim("w", 30)
        assert claimed is not None
        weight = np.array([[[[1.0, -1.0]]]], dtype=np.float32)
        assert store.finish(claimed[1], "succeeded", result={"final_loss": 0.0}, arrays={"weight": weight})
        queued, _ = store.create(SPEC, ARRAYS, epochs=3)
        store.close()
        server.stop()  # SIGTERM: the append-only file is written out
        server.start()
        store = open_store(server.url)
        got = store.get(record.id)
        assert got is not None and got.status == "succeeded" and got.result == {"final_loss": 0.0}
        assert np.array_equal(store.arrays(record.id)["weight"], weight)
        assert store.count("queued") == 1 and store.claim("w2", 30)[0].id == queued.id  # type: ignore[index]
    finally:
        server.stop()


def test_prefixes_keep_deployments_apart() -> None:
    base = redis_server.shared().url
    a = open_store(f"{base}?prefix=a-{uuid.uuid4().hex}:")
    b = open_store(f"{base}?prefix=b-{uuid.uuid4().hex}:")
    job, _ = a.create(SPEC, ARRAYS, epochs=3)
    assert b.get(job.id) is None and b.count("queued") == 0 and b.claim("w", 30) is None
    assert a.count("queued") == 1


def test_worker_heartbeats_include_idle_workers() -> None:
    store = open_store(redis_server.fresh_url())
    assert isinstance(store, RedisJobStore)
    assert store.claim("idle-worker", 30) is None  # polling an empty queue still says "alive"
    store.create(SPEC, ARRAYS, epochs=3)
    _, lease = store.claim("busy-worker", 30)  # type: ignore[misc]
    assert store.heartbeat(lease, 30, epoch=1) == "ok"
    beats = store.worker_heartbeats()
    assert set(beats) == {"idle-worker", "busy-worker"}
    assert all(abs(t - time.time()) < 60 for t in beats.values())


def test_ready_follows_redis(tmp_path: Path) -> None:
    server = redis_server.start(tmp_path / "redis")
    try:
        app = create_app({"data_dir": tmp_path / "data", "jobs_url": server.url})
        client = app.test_client()
        resp = client.get("/v1/health/ready")
        assert resp.status_code == 200 and resp.get_json()["checks"]["jobs"] == "ok"
        server.stop()
        resp = client.get("/v1/health/ready")
        assert resp.status_code == 503 and resp.get_json()["checks"]["jobs"].startswith("failed")
    finally:
        server.stop()


def test_unknown_scheme_names_redis() -> None:
    with pytest.raises(ValueError, match="redis"):
        open_store("mongodb://x")
