"""/v1/jobs through Flask's test client, with an in-process worker where a job must run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mxconv_server.app import create_app
from mxconv_server.config import Settings
from mxconv_server.jobs.worker import Worker

STRIPES = [[1, 1, 0, 0, 1, 1]] * 6
EDGES = [[0, 1, 0, -1, 0]] * 6


def seed_spec(**overrides: object) -> dict:
    spec = {
        "x": STRIPES,
        "y": EDGES,
        "layer": {"out_channels": 1, "kernel_size": [1, 2]},
        "optimizer": "adam",
        "learning_rate": 0.05,
        "epochs": 300,
        "seed": 1,
    }
    spec.update(overrides)
    return spec


@pytest.fixture()
def config(tmp_path: Path) -> dict:
    return {"data_dir": tmp_path / "data", "max_queued_jobs": 3, "max_job_epochs": 5000}


@pytest.fixture()
def app(config: dict):
    return create_app(config)


@pytest.fixture()
def worker(config: dict) -> Worker:
    return Worker(Settings(**config), worker_id="test-worker")


def test_submit_run_and_read_back(client, worker: Worker) -> None:
    r = client.post("/v1/jobs", json=seed_spec(name="seed edge"))
    assert r.status_code == 202, r.json
    job = r.json
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["progress"] == {
        "epoch": 0,
        "epochs": 300,
        "loss": None,
        "elapsed": None,
        "eta": None,
    }
    assert job["spec"]["x_shape"] == [6, 6] and job["spec"]["seed"] == 1 and job["name"] == "seed edge"
    assert "x" not in job["spec"] and set(job["timestamps"]) == {"queued"}

    assert worker.run_once() is True
    assert worker.run_once() is False  # queue empty now

    done = client.get(f"/v1/jobs/{job['id']}").json
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert set(done["timestamps"]) == {"queued", "running", "succeeded"}
    assert done["progress"]["epoch"] == 300 and done["progress"]["eta"] == 0.0
    assert len(done["loss_history"]) == 300 and done["loss_history"][-1] == done["result"]["final_loss"]
    np.testing.assert_allclose(np.ravel(done["result"]["weight"]), [1, -1], atol=1e-3)
    np.testing.assert_allclose(done["result"]["bias"], [0], atol=1e-3)
    assert done["result"]["data_loss"] < 1e-6 and done["result"]["seed"] == 1

    b64 = client.get(f"/v1/jobs/{job['id']}?history=false&encoding=base64").json
    assert b64["loss_history"] is None and b64["result"]["weight"]["shape"] == [1, 1, 1, 2]

    png = client.get(f"/v1/jobs/{job['id']}/loss.png")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data[:8] == b"\x89PNG\r\n\x1a\n"

    # finished: cancel is a conflict, delete works once
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 404


def test_cancel_queued_and_delete_rules(client) -> None:
    job_id = client.post("/v1/jobs", json=seed_spec()).json["id"]
    r = client.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 409 and "only finished jobs" in r.json["error"]["message"]
    r = client.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json["status"] == "cancelled" and r.json["cancel_requested"]
    assert "cancelled" in r.json["timestamps"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert client.post("/v1/jobs/nope/cancel").status_code == 404
    assert client.get("/v1/jobs/bad%20id").status_code == 422
    png = client.get(f"/v1/jobs/{job_id}/loss.png")  # no epochs: still a picture
    assert png.status_code == 200 and png.mimetype == "image/png"


def test_queue_full_is_429_with_retry_after(client) -> None:
    for _ in range(3):
        assert client.post("/v1/jobs", json=seed_spec()).status_code == 202
    r = client.post("/v1/jobs", json=seed_spec())
    assert r.status_code == 429 and r.headers["Retry-After"] == "5"
    assert (
        r.json["error"]["code"] == "too_many_requests"
        and "MXCONV_MAX_QUEUED_JOBS=3" in r.json["error"]["message"]
    )


def test_list_paginates_and_filters(client) -> None:
    ids = [client.post("/v1/jobs", json=seed_spec()).json["id"] for _ in range(3)]
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    page = client.get("/v1/jobs?limit=2").json
    assert page["total"] == 3 and [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert (
        page["next_offset"] == 2
        and page["jobs"][0]["loss_history"] is None
        and page["jobs"][0]["result"] is None
    )
    last = client.get("/v1/jobs?limit=2&offset=2").json
    assert [j["id"] for j in last["jobs"]] == [ids[0]] and last["next_offset"] is None
    cancelled = client.get("/v1/jobs?status=cancelled").json
    assert cancelled["total"] == 1 and cancelled["jobs"][0]["id"] == ids[0]
    assert client.get("/v1/jobs?status=bogus").status_code == 422
    assert client.get("/v1/jobs?limit=0").status_code == 422


def test_idempotency_key(client) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = client.post("/v1/jobs", json=seed_spec(), headers=headers)
    again = client.post("/v1/jobs", json=seed_spec(), headers=headers)
    assert first.status_code == 202 and again.status_code == 200 and again.json["id"] == first.json["id"]
    other = client.post("/v1/jobs", json=seed_spec(epochs=5), headers=headers)
    assert other.status_code == 409 and "Idempotency-Key" in other.json["error"]["message"]
    assert (
        client.post("/v1/jobs", json=seed_spec(), headers={"Idempotency-Key": "bad key!"}).status_code == 400
    )
    assert client.get("/v1/jobs").json["total"] == 1


@pytest.mark.parametrize(
    ("overrides", "status", "loc", "text"),
    [
        ({"y": [[0, 1, 0, -1, 0, 0]] * 6}, 422, ["y"], "[1, 1, 6, 5]"),  # shows both shapes
        ({"y": [[0, 1, 0, -1, 0, 0]] * 6}, 422, ["y"], "[6, 6]"),
        ({"layer": {"kernel_size": [1, 2], "in_channels": 3}}, 422, ["layer", "in_channels"], "x has 1"),
        ({"layer": {"kernel_size": [7, 2]}}, 422, ["layer", "kernel_size"], "padded input"),
        ({"layer": {"kernel_size": [1, 2], "colour": 1}}, 422, ["layer", "colour"], "Extra inputs"),
        ({"layer": {}}, 422, ["layer", "kernel_size"], "required"),
        ({"optimizer": "rmsprop"}, 422, ["optimizer"], "'sgd' or 'adam'"),
        ({"loss": "huber"}, 422, ["loss"], "'l1'"),
        ({"learning_rate": 0}, 422, ["learning_rate"], "greater than 0"),
        ({"epochs": 0}, 422, ["epochs"], "greater than or equal to 1"),
        ({"batch_size": 7}, 422, ["batch_size"], "number of samples (1)"),
        ({"x": {"dtype": "float64", "shape": [1, 2], "b64": "AAAAAAAA8D8AAAAAAAD4fw=="}}, 422, ["x"], "NaN"),
        ({"initial_weight": [1, 2, 3]}, 422, ["initial_weight"], "[1, 1, 1, 2]"),
        ({"early_stopping": {"patience": 0}}, 422, ["early_stopping", "patience"], "greater than"),
        ({"epochs": 5001}, 413, None, "MXCONV_MAX_JOB_EPOCHS"),
    ],
)
def test_bad_specs_get_clear_errors(client, overrides, status, loc, text) -> None:
    r = client.post("/v1/jobs", json=seed_spec(**overrides))
    assert r.status_code == status, r.json
    error = r.json["error"]
    assert text in error["message"], error
    if loc is not None:
        assert error["details"][0]["loc"] == loc
    assert client.get("/v1/jobs").json["total"] == 0  # nothing stored


def test_sample_size_limit(tmp_path: Path) -> None:
    app = create_app({"data_dir": tmp_path / "data", "max_job_elements": 50})
    r = app.test_client().post("/v1/jobs", json=seed_spec())
    assert r.status_code == 413 and "MXCONV_MAX_JOB_ELEMENTS" in r.json["error"]["message"]


def test_wall_time_limit_fails_the_job_with_a_reason(client, config: dict) -> None:
    worker = Worker(Settings(**{**config, "max_job_seconds": 0.05}), worker_id="slow")
    job_id = client.post("/v1/jobs", json=seed_spec(epochs=5000, learning_rate=1e-6)).json["id"]
    worker.run_once()
    job = client.get(f"/v1/jobs/{job_id}").json
    assert job["status"] == "failed" and "wall-time limit" in job["error"]
    assert "MXCONV_MAX_JOB_SECONDS" in job["error"] and job["result"] is None


def test_diverging_job_fails_with_advice(client, worker: Worker) -> None:
    job_id = client.post("/v1/jobs", json=seed_spec(optimizer="sgd", learning_rate=900, epochs=500)).json[
        "id"
    ]
    worker.run_once()
    job = client.get(f"/v1/jobs/{job_id}").json
    assert job["status"] == "failed" and "lower the learning rate" in job["error"]


def test_readiness_and_info_include_jobs(client) -> None:
    ready = client.get("/v1/health/ready").json
    assert ready["checks"]["jobs"] == "ok"
    assert "jobs" in client.get("/v1/info").json["features"]
    assert "/v1/jobs" in client.get("/openapi.json").json["paths"]
