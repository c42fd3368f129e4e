"""Training jobs end to end: real `mxconv serve` (gunicorn + job worker processes), a real
SQLite file, the typed client and the CLI. Covers cancel, kill -9 and restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mxconv
import numpy as np
import pytest
from mxconv.schemas import Job
from mxconv_server.compute.train import TrainConfig, train

from . import readme
from .conftest import LiveServer, start_server
from .test_jobs_train import seed_xy

LEASE_SECONDS = 2.0
SERVER_ENV = {
    "MXCONV_JOB_WORKERS": "2",
    "MXCONV_JOB_OMP_THREADS": "1",
    "MXCONV_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
    "MXCONV_JOB_MAX_ATTEMPTS": "3",
    # Jobs that would run for hours (to cancel them, or restart under them) must be accepted.
    "MXCONV_MAX_JOB_SECONDS": "1000000",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("jobs"), workers=1, **SERVER_ENV)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(server: LiveServer) -> mxconv.Client:
    return mxconv.Client(server.url)


def wait_for(api: mxconv.Client, job_id: str, pred: Callable[[Job], bool], timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = api.jobs.get(job_id, history=False)
        if pred(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not get there in {timeout} s: {job.model_dump_json()}")
        time.sleep(0.05)


def heavy_job(api: mxconv.Client, epochs: int) -> Job:
    """A job of roughly 0.15 s per epoch on one core: 8->64 channels, 11x11, 8 samples of 48x48."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 8, 48, 48)).astype(np.float32)
    y = rng.standard_normal((8, 64, 38, 38)).astype(np.float32)
    return api.jobs.submit(
        x, y, kernel_size=11, out_channels=64, optimizer="adam", learning_rate=1e-3, epochs=epochs
    )


def test_seed_experiment_through_the_client(api: mxconv.Client) -> None:
    x, y = seed_xy()
    # sgd, lr 3e-2, 100 epochs: the loss falls as the seed's did (0.401 ... 0.044)
    sgd = api.jobs.submit(x, y, kernel_size=(1, 2), optimizer="sgd", learning_rate=3e-2, epochs=100, seed=4)
    # adam: the kernel comes back as [1, -1], the bias as 0
    adam = api.jobs.submit(x, y, kernel_size=(1, 2), optimizer="adam", learning_rate=0.05, epochs=300)
    assert sgd.status == "queued" and adam.spec["seed"] is not None  # a seed is chosen and recorded

    done = api.jobs.wait(sgd.id, timeout=60, progress=True)
    assert done.status == "succeeded" and done.loss_history is not None
    losses = np.array(done.loss_history)
    assert len(losses) == 100 and np.all(np.diff(losses) < 0)
    assert 0.3 < losses[1] < 0.45 and 0.02 < losses[93] < 0.07
    assert done.result is not None and done.result.final_loss == pytest.approx(losses[-1])

    learned = api.jobs.wait(adam.id, timeout=60)
    assert learned.status == "succeeded" and learned.result is not None
    assert learned.result.weight.shape == (1, 1, 1, 2) and learned.result.weight.dtype == np.float32
    np.testing.assert_allclose(learned.result.weight.reshape(2), [1.0, -1.0], atol=1e-3)
    assert learned.result.bias is not None
    np.testing.assert_allclose(learned.result.bias, [0.0], atol=1e-3)
    assert learned.result.data_loss < 1e-6
    assert set(learned.timestamps) == {"queued", "running", "succeeded"}
    assert learned.timestamps["queued"] <= learned.timestamps["running"] <= learned.timestamps["succeeded"]
    assert api.jobs.loss_png(adam.id)[:4] == b"\x89PNG"


def test_same_seed_same_weights_in_two_worker_processes(api: mxconv.Client) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 2, 7, 7))
    y = rng.standard_normal((6, 3, 7, 7))
    kw = {"kernel_size": 3, "out_channels": 3, "padding": 1, "epochs": 20, "batch_size": 2, "seed": 99}
    a, b = api.jobs.submit(x, y, **kw), api.jobs.submit(x, y, **kw)  # both workers take one
    ra, rb = api.jobs.wait(a.id, timeout=60).result, api.jobs.wait(b.id, timeout=60).result
    assert ra is not None and rb is not None
    assert np.array_equal(ra.weight, rb.weight) and np.array_equal(ra.bias, rb.bias)
    # ... and the same as the same loop in this process
    local = train(
        x.astype(np.float32),
        y.astype(np.float32),
        TrainConfig(out_channels=3, kernel_size=3, padding=1, epochs=20, batch_size=2, seed=99),
    )
    np.testing.assert_array_equal(ra.weight, local.weight)


def test_cancel_takes_effect_within_two_epochs(api: mxconv.Client) -> None:
    job = heavy_job(api, epochs=100_000)
    wait_for(api, job.id, lambda j: j.progress.epoch >= 2)
    with pytest.raises(mxconv.JobTimeoutError):
        api.jobs.wait(job.id, timeout=0.2)  # gives up; the job goes on
    asked = api.jobs.cancel(job.id)
    assert asked.cancel_requested and asked.status == "running"
    done = wait_for(api, job.id, lambda j: j.finished)
    assert done.status == "cancelled"
    assert done.progress.epoch <= asked.progress.epoch + 2, (asked.progress, done.progress)
    with pytest.raises(mxconv.ConflictError):
        api.jobs.cancel(job.id)
    api.jobs.delete(job.id)
    with pytest.raises(mxconv.NotFoundError):
        api.jobs.get(job.id)


def test_a_small_layer_shows_its_weights_while_it_learns(api: mxconv.Client) -> None:
    x, y = seed_xy()
    job = api.jobs.submit(x, y, kernel_size=(1, 2), optimizer="sgd", learning_rate=1e-3, epochs=100_000)
    first = wait_for(api, job.id, lambda j: j.progress.weight is not None)
    assert first.status == "running" and first.progress.weight.shape == (1, 1, 1, 2)
    assert first.progress.bias is not None and first.progress.bias.shape == (1,)
    later = wait_for(api, job.id, lambda j: j.progress.epoch > first.progress.epoch + 100)
    assert not np.array_equal(later.progress.weight, first.progress.weight)  # it moves as it learns
    done = api.jobs.wait(api.jobs.cancel(job.id).id, timeout=30)
    assert done.status == "cancelled" and done.progress.weight is None  # live weights only while running
    # A layer over the snapshot size reports its weights with the result only.
    heavy = heavy_job(api, epochs=100_000)
    running = wait_for(api, heavy.id, lambda j: j.progress.epoch >= 1)
    assert running.progress.weight is None
    api.jobs.cancel(heavy.id)
    api.jobs.wait(heavy.id, timeout=60)


def test_kill_9_worker_mid_job_is_recovered(api: mxconv.Client) -> None:
    job = heavy_job(api, epochs=20)
    running = wait_for(api, job.id, lambda j: j.progress.epoch >= 1)
    assert running.worker is not None and running.attempts == 1
    pid = int(running.worker.rsplit(":", 1)[1])
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)  # a job worker our own server started
    # The lease lapses (2 s), a worker reaps and re-runs it: never stuck in "running".
    requeued = wait_for(api, job.id, lambda j: j.attempts >= 2 or j.finished, timeout=30)
    assert time.monotonic() - killed_at < LEASE_SECONDS + 15
    done = api.jobs.wait(job.id, timeout=120)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and requeued.attempts == 2
    assert done.message is not None and "stopped responding" in done.message
    assert done.loss_history is not None and len(done.loss_history) == 20  # the rerun's history only
    # the supervisor restarted the killed worker: two workers still serve the queue
    quick = [api.jobs.submit(*seed_xy(), kernel_size=(1, 2), epochs=5, seed=s) for s in range(2)]
    for q in quick:
        assert api.jobs.wait(q.id, timeout=60).status == "succeeded"


def test_list_and_status_filter(api: mxconv.Client) -> None:
    page = api.jobs.list(status="succeeded", limit=2)
    assert page.total >= 2 and len(page.jobs) == 2 and all(j.status == "succeeded" for j in page.jobs)
    assert page.next_offset == 2


def test_cli_submit_wait_get(api: mxconv.Client, server: LiveServer, tmp_path: Path) -> None:
    x, y = seed_xy()
    np.save(tmp_path / "x.npy", x)
    spec = {
        "y": y.tolist(),
        "layer": {"kernel_size": [1, 2]},
        "optimizer": "adam",
        "learning_rate": 0.05,
        "epochs": 300,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    cli = [sys.executable, "-m", "mxconv.cli", "--url", server.url, "jobs"]
    out = subprocess.run(
        [
            *cli,
            "submit",
            str(tmp_path / "spec.json"),
            "--x",
            str(tmp_path / "x.npy"),
            "--wait",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    job_id, status, loss, weight, *_ = out.stdout.splitlines()
    assert status == f"job {job_id}: succeeded" and loss.startswith("final loss ")
    assert weight.startswith("weight [ 1.") and "-1." in weight  # a short summary, not the record
    assert "epoch" in out.stderr  # the progress bar
    got = subprocess.run([*cli, "get", job_id, "--no-history"], capture_output=True, text=True, timeout=30)
    assert got.returncode == 0 and json.loads(got.stdout)["id"] == job_id
    np.testing.assert_allclose(np.ravel(json.loads(got.stdout)["result"]["weight"]), [1, -1], atol=1e-3)
    cancel = subprocess.run([*cli, "cancel", job_id], capture_output=True, text=True, timeout=30)
    assert cancel.returncode == 1 and "409" in cancel.stderr


def test_readme_cli_example_runs_as_written(server: LiveServer, tmp_path: Path) -> None:
    script = readme.code_block("Training jobs", "sh", page="docs/jobs.md").replace(
        ".venv/bin/mxconv", f"{sys.executable} -m mxconv.cli"
    )
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "MXCONV_URL": server.url},
    )
    assert out.returncode == 0, out.stderr
    assert ": succeeded" in out.stdout and "weight [ 1." in out.stdout


def test_restart_keeps_every_record(tmp_path: Path) -> None:
    env = {**SERVER_ENV, "MXCONV_JOB_WORKERS": "1"}
    first = start_server(tmp_path, workers=1, **env)
    try:
        api = mxconv.Client(first.url)
        x, y = seed_xy()
        seed_job = api.jobs.submit(x, y, kernel_size=(1, 2), optimizer="adam", learning_rate=0.05, epochs=300)
        done = api.jobs.wait(seed_job.id, timeout=60)
        running = heavy_job(api, epochs=100_000)
        wait_for(api, running.id, lambda j: j.progress.epoch >= 1)
        cancelled = api.jobs.cancel(api.jobs.submit(x, y, kernel_size=(1, 2)).id)  # queued behind it
        assert cancelled.status == "cancelled"
    finally:
        assert first.stop() == 0  # SIGTERM: the worker gives its job back to the queue
    second = start_server(tmp_path, workers=1, **env)
    try:
        api = mxconv.Client(second.url)
        again = api.jobs.get(done.id)
        assert again.status == "succeeded" and again.result is not None and done.result is not None
        np.testing.assert_array_equal(again.result.weight, done.result.weight)
        assert again.loss_history == done.loss_history
        assert api.jobs.get(cancelled.id).status == "cancelled"
        resumed = api.jobs.get(running.id)
        assert resumed.status in ("queued", "running") and resumed.attempts <= 1
        assert resumed.message is not None and "shut down" in resumed.message
        assert api.jobs.list().total == 3
        api.jobs.cancel(running.id)
        assert wait_for(api, running.id, lambda j: j.finished).status == "cancelled"
    finally:
        second.stop()


def test_readme_jobs_example_runs_as_written(server: LiveServer) -> None:
    code = readme.against(readme.code_block("Training jobs", "python", page="docs/jobs.md"), server.url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("succeeded [ 1. -1.]"), out.stdout
