"""The job store's own overhead per job, against huey and rq doing the same bookkeeping.

    python -m benchmarks.job_queues [--jobs 500] [--rounds 9] [--old DIR]

Each row submits ``--jobs`` small jobs (the contract tests' x and y as .npy bytes), then
takes every one off the queue, "runs" it (nothing to compute) and records its outcome, in
one process, so the figures are the store's cost alone: microseconds per submit and per
claim + one progress write + finish. huey and rq are not dependencies: rows for them appear
when they can be imported (``pip install --target DIR huey rq``, then PYTHONPATH=DIR).
``--old DIR`` adds rows for an older mxconv_server.jobs copied to DIR/oldjobs (its store,
sqlite and redis_store modules), to compare a change of the store with what it replaces.

What the rows do not show is what each system guarantees; mxconv_server/jobs/store.py says
why neither library is used.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis
from mxconv.tensors import to_npy

SPEC = {"layer": {"out_channels": 1, "kernel_size": [1, 2]}, "epochs": 10}
ARRAYS = {"x": np.arange(36, dtype=np.float32).reshape(6, 6), "y": np.ones((6, 5), dtype=np.float64)}
PAYLOAD = (SPEC, {k: to_npy(v) for k, v in ARRAYS.items()})

#: name -> (setup(tmp, redis_url) -> (submit(i), work_one() -> bool)).
Row = Callable[[Path, str], tuple[Callable[[int], None], Callable[[], bool]]]


def _ours(module: str, cls: str, redis_backed: bool) -> Row:
    def setup(tmp: Path, url: str) -> tuple[Callable[[int], None], Callable[[], bool]]:
        store_cls: Any = getattr(importlib.import_module(module), cls)
        store = store_cls.from_url(url) if redis_backed else store_cls(tmp / "jobs.sqlite3")

        def submit(_: int) -> None:
            store.create(SPEC, ARRAYS, epochs=10)

        def work_one() -> bool:
            claimed = store.claim("bench", 30)
            if claimed is None:
                return False
            lease = claimed[1]
            store.heartbeat(lease, 30, epoch=1, loss=0.5, elapsed=0.01, new_losses={1: 0.5})
            store.finish(lease, "succeeded", result={"final_loss": 0.5})
            return True

        return submit, work_one

    return setup


def _huey(storage: str) -> Row:
    def setup(tmp: Path, url: str) -> tuple[Callable[[int], None], Callable[[], bool]]:
        import huey

        if storage == "sqlite":
            h: Any = huey.SqliteHuey(filename=str(tmp / "huey.db"))
        else:
            h = huey.RedisHuey(url=url, name=f"bench{time.monotonic_ns()}", blocking=False)

        @h.task()
        def job(spec: Any, blobs: Any) -> dict[str, float]:
            return {"final_loss": 0.5}

        def submit(_: int) -> None:
            job(*PAYLOAD)

        def work_one() -> bool:
            task = h.dequeue()
            if task is None:
                return False
            h.execute(task)  # runs it and stores its result
            return True

        return submit, work_one

    return setup


def _rq(tmp: Path, url: str) -> tuple[Callable[[int], None], Callable[[], bool]]:
    import rq

    conn = redis.Redis.from_url(url)
    queue = rq.Queue(f"bench{time.monotonic_ns()}", connection=conn)
    worker = rq.SimpleWorker([queue], connection=conn)  # in-process: no fork per job
    left = {"n": 0}

    def submit(_: int) -> None:
        queue.enqueue("benchmarks.job_queues.rq_job", *PAYLOAD)
        left["n"] += 1

    def work_one() -> bool:
        if not left["n"]:
            return False
        # A burst works the whole queue: count it as that many jobs (see the loop below).
        worker.work(burst=True, logging_level="WARNING")
        left["n"] = 0
        return False

    return submit, work_one


def rq_job(spec: Any, blobs: Any) -> dict[str, float]:
    return {"final_loss": 0.5}


def _start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed")
    args = [
        exe,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(tmp),
        "--appendonly",
        "yes",
        "--save",
        "",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def measure(row: Row, jobs: int, redis_url: str) -> tuple[float, float]:
    """Microseconds per submit, and per claim + progress + finish."""
    with tempfile.TemporaryDirectory() as d:
        submit, work_one = row(Path(d), redis_url)
        t0 = time.perf_counter()
        for i in range(jobs):
            submit(i)
        t1 = time.perf_counter()
        while work_one():
            pass
        t2 = time.perf_counter()
    return (t1 - t0) / jobs * 1e6, (t2 - t1) / jobs * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--old", type=Path, default=None, help="a folder holding oldjobs/ (see above)")
    args = parser.parse_args(argv)
    rows: dict[str, tuple[Row, str]] = {
        "mxconv sqlite (embedded)": (_ours("mxconv_server.jobs.sqlite", "SqliteJobStore", False), "fenced"),
        "mxconv redis": (_ours("mxconv_server.jobs.redis_store", "RedisJobStore", True), "fenced"),
    }
    if args.old is not None:
        sys.path.insert(0, str(args.old))
        rows["old mxconv sqlite"] = (_ours("oldjobs.sqlite", "SqliteJobStore", False), "fenced")
        rows["old mxconv redis"] = (_ours("oldjobs.redis_store", "RedisJobStore", True), "fenced")
    try:
        import huey  # noqa: F401

        rows["huey sqlite (embedded)"] = (_huey("sqlite"), "no lease: a kill -9 loses the task")
        rows["huey redis"] = (_huey("redis"), "no lease: a kill -9 loses the task")
    except ImportError:
        pass
    try:
        import rq  # noqa: F401

        rows["rq (SimpleWorker burst)"] = (_rq, "lease by registry, result write not fenced")
    except ImportError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="mxconv-bench-redis-"))
    proc, url = _start_redis(tmp)
    try:
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(args.rounds):  # interleaved, so machine load hits every row alike
            for name, (row, _) in rows.items():
                results[name].append(measure(row, args.jobs, url))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.jobs} jobs a round, {args.rounds} rounds: microseconds per job, median (best)")
    print(f"{'store':<26} {'submit':>11} {'claim+progress+finish':>22}  guarantee")
    for name, (_, note) in rows.items():
        sub = [r[0] for r in results[name]]
        work = [r[1] for r in results[name]]
        cells = f"{statistics.median(sub):>5.0f} ({min(sub):>3.0f})"
        cells += f" {statistics.median(work):>14.0f} ({min(work):>4.0f})"
        print(f"{name:<26} {cells}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
