"""Network jobs end to end: a real `mxconv serve` (gunicorn + job worker processes, a real
SQLite file), the typed client, the CLI, and the documented digits example run as written.
A worker killed with -9 mid-job resumes from its last checkpoint."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import mxconv
import numpy as np
import pytest
from mxconv import layers as L
from mxconv.schemas import Job

from .conftest import LiveServer, start_server
from .readme import against, code_block

SERVER_ENV = {
    "MXCONV_JOB_WORKERS": "2",
    "MXCONV_JOB_OMP_THREADS": "1",
    "MXCONV_JOB_LEASE_SECONDS": "2",
    "MXCONV_JOB_MAX_ATTEMPTS": "3",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("networks"), workers=1, **SERVER_ENV)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(server: LiveServer) -> mxconv.Client:
    return mxconv.Client(server.url)


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target


def wait_for(api: mxconv.Client, job_id: str, pred, timeout: float = 60, every: float = 0.02) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = api.jobs.get(job_id, history=False)
        if pred(job):
            return job
        assert time.monotonic() < deadline, f"job did not get there in {timeout} s: {job.model_dump_json()}"
        time.sleep(every)


def stripes(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    i, j = np.mgrid[0:8, 0:8]
    pattern = [(i % 2 == 0), (j % 2 == 0), ((i + j) % 2 == 0)]
    x = np.stack([pattern[c].astype(np.float32) for c in labels])[:, None]
    return (x + 0.5 * rng.standard_normal(x.shape)).astype(np.float32), labels


def params_of(api: mxconv.Client, job_id: str) -> dict[str, np.ndarray]:
    """A job's trained weights, read from its MXNet export (MXNet's own .params format)."""
    from mxconv_server.compute.mx import nd

    with zipfile.ZipFile(io.BytesIO(api.models.export(job_id, "mxnet"))) as z:
        raw = z.read("model-0000.params")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"mxconv-test-{job_id}.params"
    path.write_bytes(raw)
    try:
        return {k: v.asnumpy() for k, v in nd.load(str(path)).items()}
    finally:
        path.unlink()


def test_a_worker_killed_with_9_resumes_from_its_last_checkpoint(api: mxconv.Client) -> None:
    x, y = stripes(200)
    net = [L.Conv2d(channels=8, kernel_size=3, padding=1), L.ReLU(), L.MaxPool2d(), L.Flatten(),
           L.Dropout(rate=0.2), L.Dense(units=3)]  # fmt: skip
    kw = dict(network=net, loss="softmax_cross_entropy", optimizer="adam", learning_rate=0.005, epochs=100,
              batch_size=8, validation_split=0.2, seed=11, checkpoint_every=10)  # fmt: skip
    job = api.jobs.submit(x, y, **kw)  # type: ignore[arg-type]
    running = wait_for(api, job.id, lambda j: j.progress.epoch >= 60)
    assert running.worker is not None and running.attempts == 1
    os.kill(int(running.worker.rsplit(":", 1)[1]), signal.SIGKILL)  # a job worker our server started
    killed_at = running.progress.epoch
    resumed = wait_for(api, job.id, lambda j: j.attempts >= 2 or j.finished, timeout=30)
    assert resumed.attempts == 2, resumed
    done = api.jobs.wait(job.id, timeout=120)
    assert done.status == "succeeded", done.error
    assert done.result is not None and done.result.resumed_from is not None
    print(f"\nkilled at epoch {killed_at}; the next attempt resumed after epoch {done.result.resumed_from}")
    assert 50 <= done.result.resumed_from <= killed_at and done.result.resumed_from % 10 == 0
    assert done.message is not None and "stopped responding" in done.message
    # The same job never interrupted, on the same server: same history, same weights.
    reference = api.jobs.wait(api.jobs.submit(x, y, **kw).id, timeout=120)  # type: ignore[arg-type]
    assert reference.status == "succeeded" and reference.result is not None
    assert reference.result.resumed_from == 0 and reference.attempts == 1
    assert done.loss_history is not None and len(done.loss_history) == 100  # continuous over both attempts
    np.testing.assert_allclose(done.loss_history, reference.loss_history, rtol=0, atol=1e-5)
    assert done.history is not None and reference.history is not None
    np.testing.assert_allclose(done.history["val_accuracy"], reference.history["val_accuracy"], atol=1e-5)
    mine, theirs = params_of(api, job.id), params_of(api, reference.id)
    assert sorted(mine) == sorted(theirs) and len(mine) == 4
    for name in mine:
        np.testing.assert_allclose(mine[name], theirs[name], rtol=0, atol=1e-5, err_msg=name)
    print(f"final weights: largest difference {max(float(np.abs(mine[k] - theirs[k]).max()) for k in mine)}")


def test_digits_through_the_client_onnxruntime_and_tritonclient(
    api: mxconv.Client, server: LiveServer
) -> None:
    ort = pytest.importorskip("onnxruntime")
    x, y = digits()
    test = np.arange(len(x)) % 5 == 0  # a test split the job never sees
    net = [L.Conv2d(channels=8, kernel_size=3, padding=1), L.ReLU(), L.MaxPool2d(pool_size=2), L.Flatten(),
           L.Dense(units=32), L.ReLU(), L.Dense(units=10)]  # fmt: skip
    summary = api.networks.summary(net, [1, 8, 8])
    assert summary.output_shape == [10] and summary.layers[0].receptive_field is not None
    job = api.jobs.submit(
        x[~test], y[~test], network=net, loss="softmax_cross_entropy", optimizer="adam",
        learning_rate=0.005, epochs=15, batch_size=32, validation_split=0.2, seed=0,
    )  # fmt: skip
    assert job.spec["x_shape"] == [int((~test).sum()), 1, 8, 8]  # sent as .npy parts
    done = api.jobs.wait(job.id, timeout=120, progress=True)
    assert done.status == "succeeded" and done.result is not None and done.result.params == summary.params
    scores = api.models.predict(job.id, x[test])
    assert scores.shape == (int(test.sum()), 10) and scores.dtype == np.float32
    assert (scores.argmax(axis=1) == y[test]).mean() > 0.9
    session = ort.InferenceSession(api.models.export(job.id, "onnx"), providers=["CPUExecutionProvider"])
    onnx_scores = session.run(None, {session.get_inputs()[0].name: x[test]})[0]
    diff = float(np.abs(onnx_scores - scores).max())
    print(f"\nONNX through onnxruntime against the service, {int(test.sum())} test digits: {diff:.2e}")
    assert diff <= 1e-5
    with pytest.raises(mxconv.ValidationError) as e:
        api.models.predict(job.id, x[test][:, 0])
    assert "['N', 1, 8, 8]" in str(e.value)
    # /v2: the same model through Triton's own client, binary tensors both ways.
    httpclient = pytest.importorskip("tritonclient.http")
    triton = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    assert triton.is_model_ready(job.id)
    inp = httpclient.InferInput("x", list(x[test].shape), "FP32")
    inp.set_data_from_numpy(x[test], binary_data=True)
    out = triton.infer(job.id, [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=True)])
    np.testing.assert_array_equal(out.as_numpy("y"), scores)


def test_cli_submits_a_network_with_npy_files_and_shows_accuracy(server: LiveServer, tmp_path: Path) -> None:
    x, y = stripes(120)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)  # int64 labels, as numpy gives them
    spec = {
        "network": [{"type": "conv2d", "channels": 4, "kernel_size": 3}, {"type": "relu"},
                    {"type": "flatten"}, {"type": "dense", "units": 3}],
        "loss": "softmax_cross_entropy", "optimizer": "adam", "learning_rate": 0.01, "epochs": 10,
        "batch_size": 16, "validation_split": 0.25, "seed": 0,
    }  # fmt: skip
    (tmp_path / "net.json").write_text(json.dumps(spec))
    cli = [sys.executable, "-m", "mxconv.cli", "--url", server.url, "jobs"]
    out = subprocess.run(
        [*cli, "submit", "net.json", "--x", "x.npy", "--y", "y.npy", "--wait", "--timeout", "60"],
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    job_id, status, loss, metrics, params, *_ = out.stdout.splitlines()
    assert status == f"job {job_id}: succeeded" and loss.startswith("final loss ")
    assert "val_accuracy" in metrics and "parameters; model: mxconv jobs model" in params
    assert "acc=" in out.stderr and "val_acc=" in out.stderr  # the progress bar
    saved = subprocess.run([*cli, "model", job_id[:8], "--format", "onnx", "-o", "m.onnx"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    assert (tmp_path / "m.onnx").stat().st_size > 1000


def doc_example() -> str:
    return code_block("LeNet against an MLP on the digits", "python", page="docs/networks.md")


def test_the_documented_digits_example_runs_as_written(server: LiveServer) -> None:
    out = subprocess.run(
        [sys.executable, "-c", against(doc_example(), server.url)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    print("\n" + out.stdout)
    rows = {
        line.split()[0]: line.split() for line in out.stdout.splitlines() if line.startswith(("LeNet", "MLP"))
    }
    assert set(rows) == {"LeNet", "MLP"}
    params = {name: int(row[1].replace(",", "")) for name, row in rows.items()}
    accuracy = {name: float(row[2]) for name, row in rows.items()}
    assert accuracy["LeNet"] >= 0.97 and accuracy["MLP"] >= 0.9
    assert abs(params["LeNet"] - params["MLP"]) / params["LeNet"] < 0.1  # of similar size


def _bash(script: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # the venv's python
    cmd = ["bash", "-euo", "pipefail", "-c", script]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_documented_curl_examples_run_as_written(server: LiveServer, tmp_path: Path) -> None:
    page = "docs/networks.md"
    npz = against(code_block("Data: JSON, .npy parts or one .npz", "sh", page=page), server.url)
    job = json.loads(_bash(npz, tmp_path))
    assert job["status"] == "queued" and job["spec"]["y_shape"] == [1797]
    assert job["spec"]["x_shape"] == [1797, 1, 8, 8]
    title = "The summary: shapes, parameters, FLOPs, receptive fields"
    s = json.loads(_bash(against(code_block(title, "sh", page=page), server.url), tmp_path))
    assert s["params"] == 6 * 25 + 6 + 6 * 4 * 4 * 10 + 10
    assert s["layers"][2]["receptive_field"]["size"] == [6, 6]
