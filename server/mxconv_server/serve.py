"""``mxconv serve``: gunicorn (and, with jobs, the job workers) as one supervised unit."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

from . import logs
from .config import Settings

log = logging.getLogger("mxconv.serve")


def gunicorn_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:mxconv_server.gunicorn_conf",
        "mxconv_server.app:create_app()",
    ]


def serve(host: str | None = None, port: int | None = None, workers: int | None = None) -> int:
    """Run the service until SIGINT/SIGTERM; returns gunicorn's exit code."""
    env = dict(os.environ)
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            env[f"MXCONV_{name}"] = str(value)
    os.environ.update(env)
    settings = Settings()
    # Check the device here, so a missing GPU is one clear line, not a worker boot loop.
    from .compute import device

    try:
        device.resolve(settings.device)
    except device.DeviceUnavailable as e:
        print(f"mxconv: {e}", file=sys.stderr)
        return 2
    # Likewise the embedded job store: a read-only or full data dir is one clear line.
    if settings.jobs_store_url.startswith("sqlite:"):
        from .jobs import StoreUnavailable, open_store

        try:
            open_store(settings.jobs_store_url)
        except (OSError, StoreUnavailable) as e:
            print(
                f"mxconv: cannot open the job store {settings.jobs_store_url} ({e}); "
                "check that MXCONV_DATA_DIR is writable and its disk has space",
                file=sys.stderr,
            )
            return 2
    logs.configure(settings.log_level, settings.log_format)
    log.info(
        "mxconv: serving on http://%s:%s (%s workers, %s job workers, device %s)",
        settings.host,
        settings.port,
        settings.workers,
        settings.job_workers,
        settings.device,
    )
    # A fresh metrics directory for every start (prometheus-client's multiprocess mode): files a
    # previous run left behind would be summed into this one's figures.
    metrics_dir = tempfile.mkdtemp(prefix="mxconv-metrics-")
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    gunicorn = subprocess.Popen(gunicorn_command(), env=env)  # noqa: S603
    from .jobs.supervisor import WorkerPool, worker_env

    job_env = worker_env(env, settings.job_threads(), explicit=bool(settings.job_omp_threads))
    pool = WorkerPool(settings.job_workers, job_env)
    pool.start()

    def forward(signum: int, _frame: Any) -> None:
        pool.signal(signum)
        if gunicorn.poll() is None:
            gunicorn.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = pool.supervise(gunicorn)  # restarts job workers that die while gunicorn runs
    forward(signal.SIGTERM, None)
    pool.stop()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return code
