"""The rough edges a newcomer hit, each pinned: NaN/Inf located in small arrays, 405 with Allow,
booleans refused as numbers, overflow blamed on the field sent, the progress bar of a queued
job. (406 for an Accept a view cannot answer: tests/test_transport.py; the playground's:
tests/test_playground_browser.py.)"""

from __future__ import annotations

from datetime import datetime, timezone

import mxconv
import numpy as np
import pytest
from mxconv import schemas
from mxconv.jobs import _update_bar


@pytest.mark.parametrize("form", ["lists", "base64"])
def test_nan_or_inf_in_a_small_array_is_located(client, form: str) -> None:
    x = np.arange(9, dtype=np.float64).reshape(3, 3)
    x[1, 2] = np.nan if form == "lists" else np.inf
    value = x.tolist() if form == "lists" else mxconv.tensors.to_b64(x)
    if form == "lists":
        value[1][2] = None  # what JSON (and orjson, for a NaN) sends
    resp = client.post("/v1/corr2d", json={"x": value, "kernel": [[1]]})
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["message"].startswith("x: holds NaN or Inf at [1, 2]"), error["message"]
    assert error["details"][0]["loc"] == ["x"]


def test_booleans_are_not_numbers(client) -> None:
    resp = client.post("/v1/conv1d", json={"x": [True, 1, 2], "weight": [1]})
    assert resp.status_code == 422
    assert resp.get_json()["error"]["message"] == "x: holds a boolean (true) at [0]; send numbers"
    resp = client.post("/v1/conv2d", json={"x": [[1.5, 2], [3, False]], "weight": [[1]], "flip": True})
    assert resp.get_json()["error"]["message"] == "x: holds a boolean (false) at [1, 1]; send numbers"
    ok = client.post("/v1/conv2d", json={"x": [[1.5, 2], [3, 4]], "weight": [[1]], "flip": True})
    assert ok.status_code == 200  # a true among the options is no boolean in a tensor


def test_a_wrong_method_is_a_405_with_allow(client) -> None:
    resp = client.get("/v1/conv2d")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "OPTIONS, POST"
    error = resp.get_json()["error"]
    assert error["code"] == "method_not_allowed"
    assert error["message"] == "GET is not allowed on /v1/conv2d; use POST (see /openapi.json)"
    resp = client.put("/v1/jobs")
    assert "use GET or POST" in resp.get_json()["error"]["message"] and "GET" in resp.headers["Allow"]


def test_an_overflow_names_the_field_that_was_sent(client) -> None:
    body = {
        "input": {"kind": "step"},
        "system": {"kind": "second_order", "wn": 3, "zeta": 0.2, "gain": 1e308},
        "dt": 0.01,
        "duration": 1,
    }
    resp = client.post("/v1/lti/response", json=body)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["details"][0]["loc"] == ["system", "gain"]
    assert "system.num" not in error["message"] and "system.gain" in error["message"]


def _job(status: str, epoch: int) -> schemas.Job:
    now = datetime.now(timezone.utc)
    return schemas.Job(
        id="0123456789abcdef",
        status=status,  # type: ignore[arg-type]
        progress=schemas.JobProgress(epoch=epoch, epochs=10, loss=0.5),
        timestamps={"queued": now},
        attempts=1,
        spec={},
    )


def test_the_progress_bar_counts_no_epoch_while_the_job_is_queued() -> None:
    bar = _update_bar(None, _job("running", 4))  # a real tqdm bar, on the captured stderr
    try:
        assert bar.n == 4
        bar = _update_bar(bar, _job("queued", 4))  # re-queued after its worker died at epoch 4
        assert bar.n == 0 and "queued" in str(bar.postfix)
        bar = _update_bar(bar, _job("running", 2))
        assert bar.n == 2
    finally:
        bar.close()


def test_cancelling_a_finished_job_says_so_in_english(client) -> None:
    job = client.post(
        "/v1/jobs", json={"x": [[1, 2], [3, 4]], "y": [[1, 2], [3, 4]], "layer": {"kernel_size": 1}}
    )
    job_id = job.get_json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200  # queued: cancelled at once
    again = client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    message = again.get_json()["error"]["message"]
    assert message == f"job {job_id} has already finished (cancelled); there is nothing to cancel"
