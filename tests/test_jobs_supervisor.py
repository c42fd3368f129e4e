"""The job worker pool that `mxconv serve` supervises: restart on death, stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from mxconv_server.jobs.supervisor import WorkerPool, worker_env

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"]


def test_worker_env_sets_openmp_threads_deliberately() -> None:
    assert worker_env({}, 4, explicit=False) == {"OMP_NUM_THREADS": "4", "OMP_WAIT_POLICY": "passive"}
    assert worker_env({"OMP_NUM_THREADS": "1"}, 4, explicit=False)["OMP_NUM_THREADS"] == "1"
    assert worker_env({"OMP_NUM_THREADS": "1"}, 4, explicit=True)["OMP_NUM_THREADS"] == "4"


def test_dead_worker_is_restarted_and_stop_ends_all() -> None:
    pool = WorkerPool(2, dict(os.environ), grace_seconds=5, command=SLEEPER)
    pool.start()
    try:
        first = pool.pids()
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (pool.restarts == 0 or len(pool.pids()) < 2):
            pool.check()
            time.sleep(0.05)
        assert pool.restarts == 1 and len(pool.pids()) == 2 and first[0] not in pool.pids()
    finally:
        pool.stop()
    assert pool.pids() == []
    pool.check()  # stopping: nothing is restarted
    assert pool.pids() == []


def test_supervise_returns_the_main_process_exit_code() -> None:
    pool = WorkerPool(1, dict(os.environ), grace_seconds=5, command=SLEEPER)
    pool.start()
    main = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(0.3); sys.exit(3)"])
    try:
        assert pool.supervise(main, interval=0.05) == 3
    finally:
        pool.stop()
