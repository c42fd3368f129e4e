"""Job store faults against a real `mxconv serve` (API + job workers, SQLite in MXCONV_DATA_DIR).
Each test prints what it observed. Redis faults live with the Redis backend's tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from .conftest import LiveServer, start_server
from .test_faults import message, observe, wait_for

STRIPES = np.ones((6, 6))
STRIPES[:, 2:4] = 0
EDGES = STRIPES[:, :-1] - STRIPES[:, 1:]


def job_body(epochs: int) -> dict[str, Any]:
    return {
        "x": STRIPES.tolist(),
        "y": EDGES.tolist(),
        "layer": {"kernel_size": [1, 2], "bias": False},
        "epochs": epochs,
        "learning_rate": 0.03,
    }


def submit(server: LiveServer, epochs: int) -> requests.Response:
    return requests.post(server.url + "/v1/jobs", json=job_body(epochs), timeout=30)


def statuses(server: LiveServer, ids: list[str]) -> dict[str, str]:
    out = {}
    for job_id in ids:
        r = requests.get(f"{server.url}/v1/jobs/{job_id}?history=false", timeout=30)
        out[job_id] = r.json()["status"] if r.status_code == 200 else f"HTTP {r.status_code}"
    return out


def all_done(server: LiveServer, ids: list[str]) -> bool:
    return all(s in ("succeeded", "failed", "cancelled") for s in statuses(server, ids).values())


# -- SIGTERM loses nothing -----------------------------------------------------------------


@pytest.mark.timeout(240)
def test_sigterm_loses_nothing_from_the_job_store(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    ids: list[str] = []
    try:
        # one long job that will be running at the signal, and several queued behind it
        for epochs in (3000, 20, 20, 20, 20):
            r = submit(server, epochs)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        assert wait_for(lambda: statuses(server, ids[:1])[ids[0]] == "running", 60) is not None
        time.sleep(0.5)
        before = statuses(server, ids)
        t0 = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(60)
        stopped_in = time.monotonic() - t0
    finally:
        server.stop()
    log = server.log()
    server2 = start_server(tmp_path)  # same MXCONV_DATA_DIR
    try:
        after_restart = statuses(server2, ids)
        finished_in = wait_for(lambda: all_done(server2, ids), 120, 0.5)
        final = statuses(server2, ids)
        first = requests.get(f"{server2.url}/v1/jobs/{ids[0]}?history=false", timeout=30).json()
        total = requests.get(server2.url + "/v1/jobs?limit=500", timeout=30).json()["total"]
    finally:
        server2.stop()
    observe(
        "SIGTERM to `mxconv serve` with 1 job running and 4 queued, then a restart on the same data dir",
        before=list(before.values()),
        exit_code=code,
        stopped_in_s=round(stopped_in, 2),
        requeue_log=[message(ln)[:160] for ln in log.splitlines() if "re-queued" in ln],
        after_restart=list(after_restart.values()),
        final=list(final.values()),
        all_finished_in_s=None if finished_in is None else round(finished_in, 1),
        running_job_attempts=first.get("attempts"),
        jobs_in_store=total,
    )
    assert code == 0
    assert set(after_restart) == set(ids) and not any(s.startswith("HTTP") for s in after_restart.values())
    assert finished_in is not None and set(final.values()) == {"succeeded"}, final
    assert total == len(ids)


# -- read-only and full data directory -----------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "8m", *, read_only: bool = False) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the data dir needs root")
    opts = f"size={size}" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.timeout(240)
def test_full_data_dir_is_a_clear_503_and_records_stay_whole(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tmpfs(data):
        server = start_server(tmp_path)
        try:
            ok = [submit(server, 20).json()["id"] for _ in range(2)]
            assert wait_for(lambda: all_done(server, ok), 60) is not None
            filler = data / "filler"
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 256 * 1024)
                    f.flush()
            full = [submit(server, 20) for _ in range(4)]
            read_existing = requests.get(f"{server.url}/v1/jobs/{ok[0]}", timeout=30).status_code
            ready_full = requests.get(server.url + "/v1/health/ready", timeout=30)
            filler.unlink()
            ready_freed = requests.get(server.url + "/v1/health/ready", timeout=30).status_code
            after = [submit(server, 20) for _ in range(2)]
            created = [r.json()["id"] for r in full + after if r.status_code == 202]
            finished = wait_for(lambda: all_done(server, ok + created), 90, 0.5)
            final = statuses(server, ok + created)
            listed = requests.get(server.url + "/v1/jobs?limit=500", timeout=30).json()
            integrity = subprocess.run(
                ["sqlite3", str(data / "jobs.sqlite3"), "PRAGMA integrity_check"],
                capture_output=True,
                text=True,
            )
        finally:
            server.stop()
    refused = [r for r in full if r.status_code == 503]
    observe(
        "job submits with MXCONV_DATA_DIR on an 8 MiB tmpfs, filled up, then space freed",
        submits_on_full_disk=[r.status_code for r in full],
        first_503=refused and f"Retry-After={refused[0].headers.get('Retry-After')} {refused[0].text[:230]}",
        get_existing_job_while_full=read_existing,
        ready_while_full=f"{ready_full.status_code} {ready_full.text[:200]}",
        ready_after_space_freed=ready_freed,
        submits_after_space_freed=[r.status_code for r in after],
        final=list(final.values()),
        jobs_listed=listed["total"],
        sqlite_integrity_check=(integrity.stdout or integrity.stderr).strip()[:80],
    )
    assert all(r.status_code in (202, 503) for r in full), [r.text for r in full]
    assert refused, "a full disk never refused a submit"
    assert refused[0].headers.get("Retry-After") and refused[0].json()["error"]["code"] == "unavailable"
    assert "MXCONV_DATA_DIR" in refused[0].text
    assert read_existing == 200
    assert ready_full.status_code == 503 and "full" in ready_full.json()["checks"]["jobs"]
    assert ready_freed == 200
    assert [r.status_code for r in after] == [202, 202]
    assert finished is not None and set(final.values()) == {"succeeded"}, final
    # no half-written records: exactly the accepted submits are in the store, and it is whole
    assert listed["total"] == len(ok) + len(created)
    assert integrity.stdout.strip() == "ok"


def test_read_only_store_is_a_503_not_a_500(tmp_path: Path) -> None:
    """In-process: the kernel refuses to remount a file system read-only while SQLite holds
    files open for writing, so the store's connection is opened read-only instead; SQLite
    then raises what a read-only disk gives ("attempt to write a readonly database")."""
    from mxconv_server.app import create_app

    app = create_app({"data_dir": tmp_path / "data"})
    client = app.test_client()
    first = client.post("/v1/jobs", json=job_body(5))
    assert first.status_code == 202
    db = tmp_path / "data" / "jobs.sqlite3"
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    ro.row_factory = sqlite3.Row
    app.extensions["mxconv.jobs"]._local.conn = ro  # this thread's connection, read-only
    resp = client.post("/v1/jobs", json=job_body(5))
    read = client.get(f"/v1/jobs/{first.get_json()['id']}")
    ready = client.get("/v1/health/ready")
    app.extensions["mxconv.jobs"]._local.conn = None  # writable again: the next use reconnects
    ready_again = client.get("/v1/health/ready")
    observe(
        "job submit with the SQLite store read-only",
        submit=resp.status_code,
        retry_after=resp.headers.get("Retry-After"),
        body=resp.get_data(as_text=True)[:200],
        get_existing=read.status_code,
        ready=f"{ready.status_code} {ready.get_json()['checks']}",
        ready_once_writable=ready_again.status_code,
    )
    assert resp.status_code == 503 and resp.headers.get("Retry-After")
    assert "readonly" in resp.get_json()["error"]["message"]
    assert read.status_code == 200
    assert ready.status_code == 503 and "readonly" in ready.get_json()["checks"]["jobs"]
    assert ready_again.status_code == 200


def test_readiness_follows_whether_redis_takes_writes(tmp_path: Path) -> None:
    """Redis over its maxmemory with noeviction answers PING but refuses every write; so does
    a stopped one, differently. Readiness says so, and recovers when Redis does."""
    import redis as redis_py
    from mxconv_server.app import create_app

    from . import redis_server

    server = redis_server.start(tmp_path / "redis")
    try:
        app = create_app({"data_dir": tmp_path / "data", "jobs_url": server.url})
        client = app.test_client()
        admin = redis_py.Redis(port=server.port)
        seen = {"healthy": client.get("/v1/health/ready")}
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # below what it holds already: every write is refused
        seen["over maxmemory"] = client.get("/v1/health/ready")
        seen["submit over maxmemory"] = client.post("/v1/jobs", json=job_body(5))
        admin.config_set("maxmemory", "0")
        seen["maxmemory lifted"] = client.get("/v1/health/ready")
        server.stop()
        seen["stopped"] = client.get("/v1/health/ready")
        server.start()
        seen["restarted"] = client.get("/v1/health/ready")
    finally:
        server.stop()
    observe(
        "readiness with Redis refusing writes",
        **{k: f"{r.status_code} {r.get_json()}"[:220] for k, r in seen.items()},
    )
    assert [seen[k].status_code for k in ("healthy", "over maxmemory", "maxmemory lifted")] == [200, 503, 200]
    assert "maxmemory" in seen["over maxmemory"].get_json()["checks"]["jobs"]
    assert seen["submit over maxmemory"].status_code == 503  # a clear 503 with Retry-After, not a 500
    assert seen["submit over maxmemory"].headers.get("Retry-After")
    assert [seen[k].status_code for k in ("stopped", "restarted")] == [503, 200]


def test_read_only_data_dir_at_start_is_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tmpfs(data, read_only=True):
        env = {**os.environ, "MXCONV_DATA_DIR": str(data), "MXCONV_PORT": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "mxconv.cli", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    observe("`mxconv serve` on a read-only data dir", exit=proc.returncode, stderr=proc.stderr.strip()[-300:])
    assert proc.returncode == 2
    assert "MXCONV_DATA_DIR is writable" in proc.stderr and "Traceback" not in proc.stderr


# -- Redis stopped while jobs are queued ---------------------------------------------------


@pytest.mark.timeout(300)
def test_redis_stopped_with_jobs_queued(tmp_path: Path) -> None:
    from . import redis_server

    redis = redis_server.start(tmp_path / "redis")
    server = start_server(tmp_path, MXCONV_JOBS_URL=redis.url)
    try:
        ids = []
        for epochs in (150, 20, 20, 20, 20, 20):
            r = submit(server, epochs)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        before = statuses(server, ids)
        redis.stop()  # SIGTERM: Redis writes its append-only file and exits
        down_at = time.monotonic()
        ready_down = requests.get(server.url + "/v1/health/ready", timeout=30)
        submit_down = submit(server, 20)
        get_down = requests.get(f"{server.url}/v1/jobs/{ids[0]}", timeout=30)
        time.sleep(3)  # job workers meet the outage too
        redis.start()
        up_in = wait_for(
            lambda: requests.get(server.url + "/v1/health/ready", timeout=30).status_code == 200, 60
        )
        after = submit(server, 20)
        if after.status_code == 202:
            ids.append(after.json()["id"])
        finished_in = wait_for(lambda: all_done(server, ids), 180, 0.5)
        final = statuses(server, ids)
        log = server.log()
    finally:
        server.stop()
        redis.stop()
    observe(
        "Redis stopped (SIGTERM) with 1 job running and 5 queued, restarted 3 s later",
        before=list(before.values()),
        ready_while_down=f"{ready_down.status_code} {ready_down.json().get('checks', {}).get('jobs')}"[:120],
        submit_while_down=f"{submit_down.status_code} Retry-After={submit_down.headers.get('Retry-After')} "
        f"{submit_down.text[:160]}",
        get_while_down=get_down.status_code,
        ready_again_after_restart_s=None if up_in is None else round(up_in, 2),
        submit_after_restart=after.status_code,
        final=list(final.values()),
        all_finished_s_after_outage=None if finished_in is None else round(time.monotonic() - down_at, 1),
        tracebacks_in_log=log.count("Traceback"),
    )
    assert ready_down.status_code == 503
    assert submit_down.status_code == 503 and submit_down.headers.get("Retry-After"), submit_down.text
    assert get_down.status_code == 503
    assert up_in is not None and after.status_code == 202
    assert finished_in is not None and set(final.values()) == {"succeeded"}, final
