"""The transport layer: content negotiation from each view's one descriptor, and the fast paths
through library internals (transport/compat.py) really taken under gunicorn."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from mxconv_server.app import create_app

from .conftest import LiveServer, start_server

SEED = {"x": [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "kernel": [[0, 1], [2, 3]]}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return create_app({"data_dir": tmp_path_factory.mktemp("transport")})


@pytest.mark.parametrize(
    ("path", "body", "accept", "status", "answer"),
    [
        ("/v1/corr2d", SEED, "application/xml", 406, "application/json"),
        ("/v1/corr2d", SEED, "image/png", 406, "application/json"),
        ("/v1/corr2d", SEED, "text/html, application/xml;q=0.9", 406, "application/json"),
        ("/v1/corr2d", SEED, "*/*", 200, "application/json"),
        ("/v1/corr2d", SEED, "application/*", 200, "application/json"),
        ("/v1/corr2d", SEED, "application/x-npy", 200, "application/x-npy"),
        ("/v1/corr2d", SEED, None, 200, "application/json"),
        ("/v1/images/filter", {"image": [[0, 255], [255, 0]]}, "*/*", 200, "image/png"),
        ("/v1/images/filter", {"image": [[0, 255], [255, 0]]}, "application/json", 200, "application/json"),
        ("/v1/images/filter", {"image": [[0, 255], [255, 0]]}, "application/x-npy", 406, "application/json"),
        ("/v1/info", None, "text/csv", 406, "application/json"),
    ],
)
def test_accept_is_negotiated_from_the_view(app, path, body, accept, status, answer) -> None:
    headers = {} if accept is None else {"Accept": accept}
    client = app.test_client()
    resp = (
        client.post(path, json=body, headers=headers)
        if body is not None
        else client.get(path, headers=headers)
    )
    assert resp.status_code == status, resp.data[:300]
    assert resp.mimetype == answer
    if status == 406:
        error = resp.get_json()["error"]
        assert error["code"] == "not_acceptable"
        assert "send Accept:" in error["message"], error["message"]


def test_pages_are_not_negotiated(app) -> None:
    assert app.test_client().get("/", headers={"Accept": "text/html"}).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(tmp_path_factory.mktemp("fast"), workers=1, MXCONV_JOB_WORKERS="0")
    yield s
    s.stop()


def _fast_paths(url: str) -> dict[str, float]:
    text = requests.get(url + "/metrics", timeout=10).text
    return {
        m[0]: float(m[1]) for m in re.findall(r'mxconv_fast_path_total\{path="([a-z_]+)"\} ([0-9.e+]+)', text)
    }


def test_the_fast_paths_are_taken_under_gunicorn(server: LiveServer, tmp_path: Path) -> None:
    """If a gunicorn or werkzeug upgrade stopped one, the service would only get slower: the
    counts say so here first."""
    x = np.random.default_rng(0).standard_normal((1, 8, 128, 128)).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    before = _fast_paths(server.url)
    files = {"x": ("x.npy", buf.getvalue()), "weight": ("w.npy", _npy(np.ones((8, 8, 3, 3), np.float32)))}
    resp = requests.post(
        server.url + "/v1/conv2d", files=files, headers={"Accept": "application/x-npy"}, timeout=60
    )
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/x-npy"
    after = _fast_paths(server.url)
    for path in ("body_direct_read", "npy_socket_send"):
        assert after.get(path, 0) >= before.get(path, 0) + 1, (path, before, after)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()
