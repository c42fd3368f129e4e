"""/metrics (Prometheus, multiprocess under gunicorn) and structured JSON logs with request ids."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from mxconv_server import logs, metrics
from prometheus_client.parser import text_string_to_metric_families

from .conftest import LiveServer, start_server

CORR2D = {"x": [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "kernel": [[0, 1], [2, 3]]}
CORR2D_FLOPS = 32  # 4 outputs x 4 multiply-adds x 2


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def family_names(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


# --- in-process (Flask test client) --------------------------------------------------------------


def test_metrics_change_after_requests(client) -> None:
    before = parse(client.get("/metrics").get_data(as_text=True))
    for _ in range(3):
        assert client.post("/v1/corr2d", json=CORR2D).status_code == 200
    assert client.post("/v1/corr2d", json={"x": [[1]]}).status_code == 422
    assert client.get("/no/such/path").status_code == 404
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain; version=")
    after = parse(resp.get_data(as_text=True))

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"method": "POST", "endpoint": "/v1/corr2d", "status": "200"}
    assert delta("mxconv_http_requests_total", **ok) == 3
    assert delta("mxconv_http_requests_total", **{**ok, "status": "422"}) == 1
    assert delta("mxconv_http_requests_total", method="GET", endpoint="unmatched", status="404") == 1
    assert delta("mxconv_http_request_duration_seconds_count", **ok) == 3
    assert delta("mxconv_http_request_duration_seconds_bucket", **ok, le="+Inf") == 3
    assert delta("mxconv_http_request_duration_seconds_sum", **ok) > 0
    assert delta("mxconv_compute_seconds_count", endpoint="/v1/corr2d") == 3  # not the 422
    assert delta("mxconv_compute_seconds_sum", endpoint="/v1/corr2d") > 0
    assert delta("mxconv_flops_total", endpoint="/v1/corr2d") == 3 * CORR2D_FLOPS


def test_flops_counted_as_the_response_reports_them(client) -> None:
    body = {"x": [[[[float(i + j) for j in range(8)] for i in range(8)]]], "weight": [[[[1, 0], [0, -1]]]]}

    def served() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return value(parse(text), "mxconv_flops_total", endpoint="/v1/conv2d")

    before = served()
    flops = client.post("/v1/conv2d", json=body).get_json()["flops"]
    after = served()
    assert flops > 0 and after - before == flops


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/conv1d", {"x": [1, 2, 3, 4, 5], "weight": [1, -1]}),
        ("/v1/lti/response", {"input": {"kind": "step"}, "system": {"kind": "first_order", "T": 1}, "dt": 0.1,
                              "duration": 2}),
    ],
)  # fmt: skip
def test_signal_endpoints_count_their_flops(client, path: str, body: dict[str, object]) -> None:
    def served() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return value(parse(text), "mxconv_flops_total", endpoint=path)

    before = served()
    resp = client.post(path, json=body)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["flops"] > 0 and served() - before == resp.get_json()["flops"]


def test_image_filter_counts_flops_for_png_and_json_answers(client) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 10, 30)).save(buf, format="PNG")

    def served() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return value(parse(text), "mxconv_flops_total", endpoint="/v1/images/filter")

    def post(**headers: str):
        return client.post(
            "/v1/images/filter", data=buf.getvalue(), content_type="image/png", headers=headers
        )

    start = served()
    flops = post(Accept="application/json").get_json()["flops"]
    assert flops > 0 and served() - start == flops
    assert post().mimetype == "image/png" and served() - start == 2 * flops


def test_job_metrics_from_the_embedded_store(app) -> None:
    store = app.extensions[metrics.JOB_STORE_KEY]
    arrays = {"x": np.ones((3, 3)), "y": np.ones((3, 2))}
    for _ in range(3):
        store.create({"layer": {"out_channels": 1, "kernel_size": [1, 2]}}, arrays, epochs=5)
    assert store.claim("host-z:99", 30) is not None
    samples = parse(app.test_client().get("/metrics").get_data(as_text=True))
    assert value(samples, "mxconv_job_store_up") == 1
    assert value(samples, "mxconv_jobs", state="queued") == 2
    assert value(samples, "mxconv_jobs", state="running") == 1
    assert value(samples, "mxconv_jobs", state="failed") == 0
    assert value(samples, "mxconv_job_queue_depth") == 2
    beat = value(samples, "mxconv_job_worker_last_heartbeat_timestamp_seconds", worker="host-z:99")
    assert abs(beat - time.time()) < 60


def test_job_metrics_without_a_job_system_are_declared_but_down(app) -> None:
    del app.extensions[metrics.JOB_STORE_KEY]
    text = app.test_client().get("/metrics").get_data(as_text=True)
    beat = "mxconv_job_worker_last_heartbeat_timestamp_seconds"
    assert {"mxconv_jobs", "mxconv_job_queue_depth", beat} <= family_names(text)
    assert value(parse(text), "mxconv_job_store_up") == 0


class FakeJobStats:
    def __init__(self) -> None:
        self.fail = False

    def counts_by_status(self) -> Mapping[str, int]:
        if self.fail:
            raise ConnectionError("store down")
        return {"queued": 4, "running": 2, "succeeded": 7}

    def queue_depth(self) -> int:
        return 4

    def worker_heartbeats(self) -> Mapping[str, float]:
        return {"host-a:12": 1_700_000_000.5, "host-b:7": 1_700_000_001.0}


def test_job_metrics_come_from_the_job_store(app) -> None:
    stats = FakeJobStats()
    assert isinstance(stats, metrics.JobStats)
    app.extensions[metrics.JOB_STATS_KEY] = stats
    client = app.test_client()
    samples = parse(client.get("/metrics").get_data(as_text=True))
    assert value(samples, "mxconv_job_store_up") == 1
    assert value(samples, "mxconv_jobs", state="queued") == 4
    assert value(samples, "mxconv_jobs", state="running") == 2
    assert value(samples, "mxconv_jobs", state="succeeded") == 7
    assert ("mxconv_jobs", frozenset({("state", "cancelled")})) in samples  # every state, 0 or not
    assert value(samples, "mxconv_job_queue_depth") == 4
    beat = "mxconv_job_worker_last_heartbeat_timestamp_seconds"
    assert value(samples, beat, worker="host-a:12") == 1_700_000_000.5

    stats.fail = True  # a scrape still answers when the store does not
    resp = client.get("/metrics")
    assert resp.status_code == 200
    samples = parse(resp.get_data(as_text=True))
    assert value(samples, "mxconv_job_store_up") == 0
    assert value(samples, "mxconv_http_requests_total", method="GET", endpoint="/metrics", status="200") >= 1


def test_every_metric_is_documented(client) -> None:
    from . import readme

    section = readme.section("Metrics", page="docs/deploy.md")
    documented = set(re.findall(r"`(mxconv_[a-z_]+)`", section))
    client.post("/v1/corr2d", json=CORR2D)
    text = client.get("/metrics").get_data(as_text=True)
    exposed = {n for n in family_names(text) if n.startswith("mxconv_")}
    # Counter families drop "_total" in the parser; the docs name the samples.
    exposed = {n + "_total" if f"{n}_total" in documented else n for n in exposed}
    assert exposed == documented


def test_log_lines_are_json_with_the_request_id(app) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    handler.addFilter(logs.RequestIdFilter())
    logger = logging.getLogger("mxconv.test")
    logger.addHandler(handler)
    try:
        with app.test_request_context("/v1/info", headers={"X-Request-ID": "req-42"}):
            app.preprocess_request()
            logger.warning("inside %s", "a request", extra={"n": 3})
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["request_id"] == "req-42" and inside["message"] == "inside a request" and inside["n"] == 3
    assert {"time", "level", "logger", "pid"} <= inside.keys() and inside["level"] == "WARNING"
    assert "request_id" not in outside


# --- live gunicorn, 2 workers: multiprocess metrics, JSON logs from every process -----------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(tmp_path_factory.mktemp("obs"), workers=2)
    yield s
    s.stop()


def scrape(server: LiveServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = requests.get(f"{server.url}/metrics", timeout=10)
    assert resp.status_code == 200
    return parse(resp.text)


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def access_lines(server: LiveServer) -> list[dict[str, object]]:
    out = []
    for line in server.log().splitlines():
        if not line.startswith("{"):  # native libraries (MXNet) may print plain lines
            continue
        record = json.loads(line)
        if record["logger"] == "mxconv.access":
            out.append(record)
    return out


def post_many(server: LiveServer, n: int, tag: str) -> None:
    def one(i: int) -> int:
        r = requests.post(
            f"{server.url}/v1/corr2d", json=CORR2D, headers={"X-Request-ID": f"{tag}-{i}"}, timeout=30
        )
        return r.status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(one, range(n))) == {200}


def test_live_metrics_sum_over_both_workers(server: LiveServer) -> None:
    ok = {"method": "POST", "endpoint": "/v1/corr2d", "status": "200"}
    start = value(scrape(server), "mxconv_http_requests_total", **ok)
    sent = 0
    deadline = time.monotonic() + 60  # the second worker may still be importing MXNet
    while time.monotonic() < deadline:
        post_many(server, 20, f"burst{sent}")
        sent += 20
        served_by = {r["pid"] for r in access_lines(server) if str(r.get("request_id")).startswith("burst")}
        if len(served_by) == 2:
            break
    assert len(served_by) == 2, "both gunicorn workers should have served the bursts"
    # Whichever worker answers the scrape, it reports both workers' requests.
    for _ in range(6):
        samples = scrape(server)
        assert value(samples, "mxconv_http_requests_total", **ok) - start == sent
    assert value(samples, "mxconv_flops_total", endpoint="/v1/corr2d") >= sent * CORR2D_FLOPS
    assert value(samples, "mxconv_compute_seconds_count", endpoint="/v1/corr2d") >= sent


def test_live_counts_survive_a_killed_worker(server: LiveServer) -> None:
    ok = {"method": "POST", "endpoint": "/v1/corr2d", "status": "200"}
    post_many(server, 8, "before-kill")
    before = value(scrape(server), "mxconv_http_requests_total", **ok)
    (master,) = [
        p for p in children(server.process.pid) if b"gunicorn" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    old = children(master)
    victim = old[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # gunicorn replaces it
        workers = children(master)
        if victim not in workers and len(workers) == 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail("gunicorn did not replace the killed worker")
    (replacement,) = set(workers) - set(old)
    sent = 0
    while time.monotonic() < deadline:  # until the replacement, done importing MXNet, serves too
        post_many(server, 8, f"after-kill{sent}")
        sent += 8
        if any(r["pid"] == replacement for r in access_lines(server)):
            break
    else:
        pytest.fail("the replacement worker never served")
    assert value(scrape(server), "mxconv_http_requests_total", **ok) == before + sent


def test_live_log_line_carries_the_request_id(server: LiveServer) -> None:
    resp = requests.post(
        f"{server.url}/v1/corr2d", json={"x": [[1]]}, headers={"X-Request-ID": "trace-me-7"}, timeout=10
    )
    assert resp.status_code == 422 and resp.headers["X-Request-ID"] == "trace-me-7"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mine = [r for r in access_lines(server) if r.get("request_id") == "trace-me-7"]
        if mine:
            break
        time.sleep(0.1)
    assert len(mine) == 1
    assert mine[0] | {"method": "POST", "path": "/v1/corr2d", "status": 422} == mine[0]
    assert isinstance(mine[0]["duration_ms"], float)
    gunicorn_lines = [line for line in server.log().splitlines() if "gunicorn.error" in line]
    assert gunicorn_lines and all(json.loads(line)["logger"] == "gunicorn.error" for line in gunicorn_lines)
