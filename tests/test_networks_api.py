"""Network jobs, summaries, exports and predictions through Flask's test client, with an
in-process worker (a real SQLite file); onnxruntime and numpy loops are the oracles."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mxconv.wire.multipart import encode_multipart
from mxconv_server.app import create_app
from mxconv_server.config import Settings
from mxconv_server.jobs.worker import Worker
from PIL import Image

from . import oracle
from .test_jobs_api import seed_spec

CNN = [
    {"type": "conv2d", "channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "relu"},
    {"type": "maxpool2d"},
    {"type": "flatten"},
    {"type": "dense", "units": 3},
]


def stripes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 6x6 images of horizontal (0), vertical (1) or diagonal (2) stripes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    i, j = np.mgrid[0:6, 0:6]
    pattern = [(i % 2 == 0), (j % 2 == 0), ((i + j) % 2 == 0)]
    x = np.stack([pattern[c].astype(np.float32) for c in labels])[:, None]
    return (x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32), labels.astype(np.float32)


X, Y = stripes(60)


def net_spec(**overrides: object) -> dict:
    spec = {
        "x": X.tolist(),
        "y": Y.tolist(),
        "network": CNN,
        "loss": "softmax_cross_entropy",
        "optimizer": "adam",
        "learning_rate": 0.02,
        "epochs": 6,
        "batch_size": 10,
        "validation_split": 0.2,
        "checkpoint_every": 2,
        "seed": 3,
    }
    spec.update(overrides)
    return spec


@pytest.fixture()
def config(tmp_path: Path) -> dict:
    return {"data_dir": tmp_path / "data"}


@pytest.fixture()
def app(config: dict):
    return create_app(config)


@pytest.fixture()
def worker(config: dict) -> Worker:
    return Worker(Settings(**config), worker_id="test-worker")


def trained(client, worker: Worker, **overrides: object) -> dict:
    r = client.post("/v1/jobs", json=net_spec(**overrides))
    assert r.status_code == 202, r.json
    assert worker.run_once()
    return client.get(f"/v1/jobs/{r.json['id']}").json


def test_summary_through_the_generic_handler(client) -> None:
    r = client.post("/v1/networks/summary", json={"network": CNN, "input_shape": [1, 6, 6]})
    assert r.status_code == 200, r.json
    s = r.json
    assert [row["output_shape"] for row in s["layers"]] == [[4, 6, 6], [4, 6, 6], [4, 3, 3], [36], [3]]
    assert s["params"] == 4 * 9 + 4 + 36 * 3 + 3 and s["flops"] == 0 and "elapsed_ms" in s
    assert s["layers"][2]["receptive_field"] == {"size": [4, 4], "jump": [2, 2], "start": [0.5, 0.5]}
    assert s["dense_equivalent_params"] == 36 * 3 + 3
    bad = client.post("/v1/networks/summary", json={"network": CNN[:2] + [{"type": "conv2d", "channels": 1,
                      "kernel_size": 7}], "input_shape": [1, 6, 6]})  # fmt: skip
    assert bad.status_code == 422 and bad.json["error"]["details"][0]["loc"] == [
        "network",
        "2",
        "kernel_size",
    ]
    assert "layer 2 (conv2d) with input shape [4, 6, 6]" in bad.json["error"]["message"]
    assert "7x7" in bad.json["error"]["message"]
    huge = client.post("/v1/networks/summary", json={"network": CNN, "input_shape": [1, 8192, 8192]})
    assert huge.status_code == 413 and "MXCONV_MAX_TENSOR_ELEMENTS" in huge.json["error"]["message"]


@pytest.mark.parametrize(
    ("overrides", "loc", "text"),
    [
        ({"network": [{"type": "conv3d"}]}, ["network", 0], "'conv3d'"),
        ({"network": [{"type": "dense", "units": 0}]}, ["network", 0, "dense", "units"], "greater than"),
        ({"network": [{"type": "dropout", "rate": 1.5}]}, ["network", 0, "dropout", "rate"], "less than 1"),
        ({"network": [{"type": "relu", "slope": 2}]}, ["network", 0, "relu", "slope"], "Extra inputs"),
        ({"network": CNN[:-1] + [{"type": "dense", "units": 2}]}, ["y"], "scores 2 classes"),
        ({"network": CNN[:3]}, ["loss"], "one score per class"),
        ({"y": (Y + 0.5).tolist()}, ["y"], "integers"),
        ({"y": [Y.tolist()]}, ["y"], "one class label per sample"),
        ({"loss": "l2"}, ["y"], "must be [60, 3]"),  # a regression target of the wrong shape
        ({"validation_split": 0.01}, ["validation_split"], "empty validation split"),
        ({"batch_size": 59}, ["batch_size"], "48 training samples"),
        ({"x": X[:, 0, 0].tolist()}, ["x"], "(N, C, H, W)"),
        ({"layer": {"kernel_size": 3}}, [], "exactly one of layer"),
        ({"initial_weight": [1.0]}, [], "for layer jobs"),
        ({"x": {"dtype": "float64", "shape": [1, 2], "b64": "AAAAAAAA8D8AAAAAAAD4fw=="}}, ["x"], "NaN"),
    ],
)
def test_bad_network_specs_are_422_naming_the_field(client, overrides: dict, loc: list, text: str) -> None:
    r = client.post("/v1/jobs", json=net_spec(**overrides))
    assert r.status_code == 422, r.json
    error = r.json["error"]
    assert text in error["message"], error
    assert [str(p) for p in error["details"][0]["loc"]] == [str(p) for p in loc], error
    assert client.get("/v1/jobs").json["total"] == 0


def test_a_layer_that_does_not_fit_names_its_index_and_both_shapes(client) -> None:
    network = CNN[:3] + [{"type": "conv2d", "channels": 2, "kernel_size": 5}] + CNN[3:]
    r = client.post("/v1/jobs", json=net_spec(network=network))
    assert r.status_code == 422 and r.json["error"]["details"][0]["loc"] == ["network", "3", "kernel_size"]
    assert "[4, 3, 3]" in r.json["error"]["message"] and "5x5" in r.json["error"]["message"]


def test_limits_on_parameters_and_predicted_time_are_413(tmp_path: Path) -> None:
    small = create_app({"data_dir": tmp_path / "a", "max_job_parameters": 100}).test_client()
    r = small.post("/v1/jobs", json=net_spec())
    assert r.status_code == 413 and "MXCONV_MAX_JOB_PARAMETERS" in r.json["error"]["message"]
    quick = create_app({"data_dir": tmp_path / "b", "max_job_seconds": 1.0}).test_client()
    r = quick.post("/v1/jobs", json=net_spec(epochs=100_000))
    message = r.json["error"]["message"]
    assert r.status_code == 413 and "predicted to take" in message and "MXCONV_MAX_JOB_SECONDS" in message
    ok = quick.post("/v1/jobs", json=net_spec(epochs=2))
    assert ok.status_code == 202 and 0 < ok.json["spec"]["predicted_seconds"] < 1.0


def test_npy_parts_and_one_npz_part_are_both_taken(client, app) -> None:
    params = {k: v for k, v in net_spec().items() if k not in ("x", "y")}
    body, ctype = encode_multipart({"x": X, "y": Y}, params)
    r = client.post("/v1/jobs", data=body, content_type=ctype)
    assert r.status_code == 202, r.json
    assert r.json["spec"]["x_shape"] == [60, 1, 6, 6] and r.json["spec"]["y_shape"] == [60]
    buf = io.BytesIO()
    np.savez_compressed(buf, x=X, y=Y)
    npz, ctype = _file_part("data", "xy.npz", buf.getvalue(), params)
    r2 = client.post("/v1/jobs", data=npz, content_type=ctype)
    assert r2.status_code == 202, r2.json
    stored = app.extensions["mxconv.jobs"].arrays(r2.json["id"], ["x", "y"])
    np.testing.assert_array_equal(stored["x"], X) and np.testing.assert_array_equal(stored["y"], Y)
    # NaN in a .npy part: 422 on x, as in JSON
    bad = X.copy()
    bad[3, 0, 2, 2] = np.nan
    body, ctype = encode_multipart({"x": bad, "y": Y}, params)
    r3 = client.post("/v1/jobs", data=body, content_type=ctype)
    assert r3.status_code == 422 and r3.json["error"]["details"][0]["loc"] == ["x"]
    assert "[3, 0, 2, 2]" in r3.json["error"]["message"]


def _file_part(name: str, filename: str, data: bytes, params: dict) -> tuple[bytes, str]:
    import json

    b = "npzboundary"
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps(params)}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={b}"


def test_an_npz_is_never_unpickled_nor_unpacked_past_the_body_limit(tmp_path: Path) -> None:
    client = create_app({"data_dir": tmp_path / "d", "max_body_bytes": 1 << 20}).test_client()
    params = {k: v for k, v in net_spec().items() if k not in ("x", "y")}
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}], dtype=object), y=Y)
    body, ctype = _file_part("data", "xy.npz", buf.getvalue(), params)
    r = client.post("/v1/jobs", data=body, content_type=ctype)
    assert r.status_code == 422 and "never unpickles" in r.json["error"]["message"]
    bomb = io.BytesIO()
    np.savez_compressed(bomb, x=np.zeros((64, 1, 64, 64 * 16), np.float32), y=Y)  # 16 MiB -> ~16 KiB
    assert len(bomb.getvalue()) < 100_000
    body, ctype = _file_part("data", "xy.npz", bomb.getvalue(), params)
    r = client.post("/v1/jobs", data=body, content_type=ctype)
    assert r.status_code == 422 and "unpacks to more than 1048576 bytes" in r.json["error"]["message"]


def test_a_layer_job_record_has_exactly_the_keys_it_had(client, worker: Worker) -> None:
    job = client.post("/v1/jobs", json=seed_spec()).json
    assert set(job["spec"]) == {
        "layer", "optimizer", "learning_rate", "epochs", "batch_size", "loss", "seed", "shuffle",
        "early_stopping", "name", "x_shape", "y_shape", "flops_per_epoch",
    }  # fmt: skip
    worker.run_once()
    done = client.get(f"/v1/jobs/{job['id']}").json
    assert "history" not in done and "checkpoint" not in done
    assert set(done["progress"]) == {"epoch", "epochs", "loss", "elapsed", "eta"}
    assert set(done["result"]) == {
        "weight", "bias", "final_loss", "data_loss", "epochs_run", "stopped_early", "stop_reason", "seed",
        "elapsed",
    }  # fmt: skip


def test_a_network_job_trains_with_metrics_curves_and_checkpoints(client, worker: Worker) -> None:
    done = trained(client, worker)
    assert done["status"] == "succeeded", done["error"]
    r = done["result"]
    assert r["weight"] is None and r["params"] == 151 and r["model"] == f"/v1/jobs/{done['id']}/model"
    assert r["epochs_run"] == 6 and r["resumed_from"] == 0
    assert set(r["metrics"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(done["loss_history"]) == 6 and done["loss_history"][-1] == r["final_loss"]
    assert {k: len(v) for k, v in done["history"].items()} == {
        "accuracy": 6,
        "val_loss": 6,
        "val_accuracy": 6,
    }
    assert (
        done["progress"]["val_accuracy"]
        == r["metrics"]["val_accuracy"]
        == done["history"]["val_accuracy"][-1]
    )
    assert done["checkpoint"]["epoch"] == 4  # every 2 epochs, none after the last
    assert done["spec"]["checkpoint_every"] == 2 and "layer" not in done["spec"]
    png = client.get(f"/v1/jobs/{done['id']}/loss.png")
    assert Image.open(io.BytesIO(png.data)).size == (600, 620)  # loss above, accuracy below
    default = client.post("/v1/jobs", json=net_spec(checkpoint_every=None)).json
    assert default["spec"]["checkpoint_seconds"] == 60.0


def test_exporting_before_success_is_409_then_onnx_matches_predict(client, app, worker: Worker) -> None:
    job_id = client.post("/v1/jobs", json=net_spec()).json["id"]
    r = client.get(f"/v1/jobs/{job_id}/model?format=onnx")
    assert r.status_code == 409 and "queued" in r.json["error"]["message"]
    store = app.extensions["mxconv.jobs"]
    claimed = store.claim("someone", 30)
    assert claimed is not None and claimed[0].id == job_id
    r = client.get(f"/v1/jobs/{job_id}/model")
    assert r.status_code == 409 and "running" in r.json["error"]["message"]
    assert client.post(f"/v1/models/{job_id}/predict", json={"x": X[:2].tolist()}).status_code == 409
    store.requeue(claimed[1], "given back")
    worker.run_once()
    onnx = client.get(f"/v1/jobs/{job_id}/model?format=onnx")
    assert onnx.status_code == 200 and onnx.headers["Content-Disposition"].endswith('"model.onnx"')
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(onnx.data, providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: X})[0]
    got = client.post(f"/v1/models/{job_id}/predict", json={"x": X.tolist(), "output_encoding": "base64"})
    assert got.status_code == 200 and got.json["shape"] == [60, 3]
    import base64

    y = np.frombuffer(base64.b64decode(got.json["y"]["b64"]), dtype=np.float32).reshape(60, 3)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-5)
    assert got.json["flops"] > 0
    zipped = client.get(f"/v1/jobs/{job_id}/model?format=mxnet")
    assert zipped.status_code == 200 and zipped.mimetype == "application/zip"
    assert client.get(f"/v1/jobs/{job_id}/model?format=tf").status_code == 422
    assert client.get("/v1/jobs/nope/model").status_code == 404


def test_predict_wants_the_trained_shape_and_answers_npy_too(client, worker: Worker) -> None:
    job_id = trained(client, worker)["id"]
    r = client.post(f"/v1/models/{job_id}/predict", json={"x": X[0].tolist()})
    assert r.status_code == 422 and r.json["error"]["details"][0]["loc"] == ["x"]
    assert "['N', 1, 6, 6]" in r.json["error"]["message"] and "[1, 6, 6]" in r.json["error"]["message"]
    body, ctype = encode_multipart({"x": X[:5]}, {})
    npy = client.post(f"/v1/models/{job_id}/predict", data=body, content_type=ctype,
                      headers={"Accept": "application/x-npy"})  # fmt: skip
    assert npy.status_code == 200 and npy.mimetype == "application/x-npy"
    as_json = np.array(client.post(f"/v1/models/{job_id}/predict", json={"x": X[:5].tolist()}).json["y"])
    np.testing.assert_array_equal(
        np.load(io.BytesIO(npy.data), allow_pickle=False), as_json.astype(np.float32)
    )
    assert client.post("/v1/models/nope/predict", json={"x": X[:1].tolist()}).status_code == 404


def test_a_layer_job_is_a_model_too(client, worker: Worker) -> None:
    job = client.post("/v1/jobs", json=seed_spec(layer={"kernel_size": [1, 2], "padding": [0, 0, 1, 0],
                      "padding_mode": "replicate"}, y=[[1, 0, 1, 0, -1, 0]] * 6)).json  # fmt: skip
    worker.run_once()
    done = client.get(f"/v1/jobs/{job['id']}").json
    w = np.array(done["result"]["weight"], dtype=np.float64).reshape(1, 1, 1, 2)
    b = np.array(done["result"]["bias"], dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((3, 1, 6, 6))  # the shape it was trained on
    got = client.post(f"/v1/models/{job['id']}/predict", json={"x": x.tolist()}).json["y"]
    want = oracle.conv2d(x, w, b, pads=(0, 0, 1, 0), padding_mode="replicate")
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_cancelled_job_keeps_its_last_checkpoint(client, app, config: dict) -> None:
    job_id = client.post("/v1/jobs", json=net_spec(epochs=100_000, checkpoint_every=1)).json["id"]
    worker = Worker(Settings(**config), worker_id="canceller")
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    deadline = time.monotonic() + 60
    while (client.get(f"/v1/jobs/{job_id}?history=false").json.get("checkpoint") or {}).get("epoch", 0) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    thread.join(60)
    done = client.get(f"/v1/jobs/{job_id}").json
    assert done["status"] == "cancelled" and done["checkpoint"]["epoch"] >= 3
    meta, arrays = app.extensions["mxconv.jobs"].checkpoint(job_id)
    assert meta["epoch"] == done["checkpoint"]["epoch"] and "p/0.weight" in arrays
    assert meta["optimizer"]["name"] == "adam" and "s/0.weight/0" in arrays  # Adam's mean and variance
    r = client.get(f"/v1/jobs/{job_id}/model")
    assert r.status_code == 409 and "checkpoint, after epoch" in r.json["error"]["message"]


def test_a_trained_network_is_a_v2_model_too(client, worker: Worker) -> None:
    job_id = trained(client, worker)["id"]
    meta = client.get(f"/v2/models/{job_id}").json
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 6, 6]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
    assert client.get(f"/v2/models/{job_id}/ready").status_code == 200
    index = client.post("/v2/repository/index").json
    assert {"name": job_id, "version": "1", "state": "READY"} in index and index[0]["name"] == "conv2d"
    x5 = X[:5].ravel().tolist()
    body = {"inputs": [{"name": "x", "shape": [5, 1, 6, 6], "datatype": "FP32", "data": x5}]}
    r = client.post(f"/v2/models/{job_id}/infer", json=body)
    assert r.status_code == 200, r.json
    (out,) = r.json["outputs"]
    assert out["name"] == "y" and out["shape"] == [5, 3] and r.json["model_name"] == job_id
    v1 = client.post(f"/v1/models/{job_id}/predict", json={"x": X[:5].tolist()}).json["y"]
    np.testing.assert_array_equal(np.array(out["data"], dtype=np.float32).reshape(5, 3), np.float32(v1))
    wrong = {"inputs": [{"name": "x", "shape": [5, 36], "datatype": "FP32", "data": x5}]}
    r = client.post(f"/v2/models/{job_id}/infer", json=wrong)
    assert r.status_code == 400 and "['N', 1, 6, 6]" in r.json["error"]  # the protocol has no 422
    r = client.post(f"/v2/models/{job_id}/infer", json={**body, "parameters": {"padding": 1}})
    assert r.status_code == 400 and "takes no parameter 'padding'" in r.json["error"]
    assert client.post(f"/v2/models/{'0' * 32}/infer", json=body).status_code == 404
    queued = client.post("/v1/jobs", json=net_spec()).json["id"]
    r = client.post(f"/v2/models/{queued}/infer", json=body)
    assert r.status_code == 409 and "queued" in r.json["error"]
