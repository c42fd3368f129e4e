"""The typed client against a real `mxconv serve` (gunicorn) process tree on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import mxconv
import numpy as np
import pytest

from . import oracle, readme
from .conftest import start_server


@pytest.fixture(scope="module")
def api(live_server) -> mxconv.Client:
    return mxconv.Client(live_server.url)


def test_seed_numbers(api: mxconv.Client) -> None:
    y = api.corr2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(y, [[19, 25], [37, 43]])
    stripes = np.ones((6, 6))
    stripes[:, 2:4] = 0
    np.testing.assert_array_equal(api.conv2d(stripes, [[1, -1]]), np.tile([0, 1, 0, -1, 0], (6, 1)))


@pytest.mark.parametrize("transport", ["binary", "base64", "lists"])
def test_conv2d_large_matches_oracle_on_every_transport(live_server, transport: str) -> None:
    api = mxconv.Client(live_server.url, transport=transport)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 40, 40))  # over the client's binary threshold
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6)
    result = api.conv2d(
        x, w, b, padding=[1, 0, 2, 1], padding_mode="circular", groups=2, stride=2, detailed=True
    )
    expected = oracle.conv2d(x, w, b, pads=(1, 0, 2, 1), padding_mode="circular", groups=2, stride=(2, 2))
    np.testing.assert_allclose(result.y, expected, atol=1e-3)
    assert result.flops > 0 and result.shape == list(expected.shape)
    result.y += 1  # the caller owns the result: writable, whatever the transport


def test_channel_mix(api: mxconv.Client) -> None:
    x = np.random.default_rng(2).standard_normal((3, 4, 4))
    w = np.array([[1.0, 1, 0], [0, 1, -1]])
    mix = api.channel_mix(x, w, matrix_view=True)
    assert mix.matrix_view is not None
    np.testing.assert_allclose(mix.y, (w @ x.reshape(3, -1)).reshape(2, 4, 4), atol=1e-5)
    np.testing.assert_allclose(mix.matrix_view.y_flat, w @ x.reshape(3, -1), atol=1e-5)


def test_errors_carry_message_and_request_id(api: mxconv.Client) -> None:
    with pytest.raises(mxconv.ValidationError) as info:
        api.conv2d(np.ones((3, 3)), np.ones((5, 5)))
    err = info.value
    assert err.status_code == 422 and err.code == "invalid_argument"
    assert "weight" in err.message and err.request_id
    assert err.details[0]["loc"] == ["weight"]


def test_info_and_health(api: mxconv.Client) -> None:
    assert api.info().device == "cpu"
    assert api.health().status == "ok"


def test_complex_input_is_refused_not_truncated() -> None:
    client = mxconv.Client("http://127.0.0.1:9")  # never reached: refused before sending
    with pytest.raises(TypeError, match="real numbers"):
        client.conv2d(np.ones((3, 3)) * 1j, np.ones((2, 2)))


def test_connection_error_is_typed() -> None:
    client = mxconv.Client("http://127.0.0.1:9", max_retries=1, backoff=lambda attempt: 0.0)
    with pytest.raises(mxconv.APIConnectionError):
        client.info()


class _Flaky(http.server.BaseHTTPRequestHandler):
    """A real HTTP server that answers 503 (with Retry-After) until `fail` runs out."""

    fail = 0
    calls = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).calls += 1
        if type(self).fail > 0:
            type(self).fail -= 1
            body, status = {"error": {"code": "unavailable", "message": "busy", "details": []}}, 503
        else:
            body, status = {"status": "ok", "checks": {}}, 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def flaky():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_retries_503_then_succeeds(flaky) -> None:
    _Flaky.fail, _Flaky.calls = 2, 0
    client = mxconv.Client(f"http://127.0.0.1:{flaky.server_address[1]}", max_retries=2)
    assert client.request("GET", "/v1/health/live").json()["status"] == "ok"
    assert _Flaky.calls == 3


def test_gives_up_after_max_retries(flaky) -> None:
    _Flaky.fail, _Flaky.calls = 5, 0
    client = mxconv.Client(f"http://127.0.0.1:{flaky.server_address[1]}", max_retries=1)
    with pytest.raises(mxconv.ServiceUnavailableError):
        client.request("GET", "/v1/health/live")
    assert _Flaky.calls == 2


class _BrokenAnswer(http.server.BaseHTTPRequestHandler):
    """Promises a 1000-byte body, sends 100 bytes of it, then closes or stalls."""

    stall = 0.0
    content_type = "application/x-npy"
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", type(self).content_type)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"\x93NUMPY" + bytes(94))
        self.wfile.flush()
        time.sleep(type(self).stall)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("content_type", ["application/x-npy", "application/json"])
@pytest.mark.parametrize(
    ("stall", "error"), [(0.0, mxconv.APIConnectionError), (1.5, mxconv.APITimeoutError)]
)
def test_an_answer_that_breaks_off_or_stalls_is_a_typed_error(content_type, stall, error) -> None:
    """A body cut short or stalled mid-way is retried and then raised as the client's own
    error, not as urllib3's (which it used to leak)."""
    _BrokenAnswer.stall, _BrokenAnswer.content_type, _BrokenAnswer.calls = stall, content_type, 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BrokenAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = mxconv.Client(
            f"http://127.0.0.1:{server.server_address[1]}",
            timeout=(2.0, 0.5),
            max_retries=1,
            backoff=lambda attempt: 0.0,
            transport="binary",
        )
        with pytest.raises(error, match="reading the response"):
            client.conv2d(np.ones((1, 1, 70, 70)), np.ones((3, 3)))
        assert _BrokenAnswer.calls == 2  # retried once
    finally:
        server.shutdown()
        server.server_close()


def test_npy_answers_are_received_into_a_writable_buffer(live_server) -> None:
    """The .npy body goes straight into a bytearray (urllib3's http.client response read
    with readinto): the result is writable without a copy. If a urllib3 upgrade ends that,
    this fails, and the client still works (it falls back to reading bytes and copying)."""
    api = mxconv.Client(live_server.url, transport="binary")
    x = np.random.default_rng(3).standard_normal((1, 2, 70, 70)).astype(np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    multipart = mxconv.tensors.multipart_body({"x": x, "weight": w}, {"padding": 1})
    headers = {"Content-Type": multipart.content_type, "Accept": "application/x-npy"}
    resp = api.request("POST", "/v1/conv2d", data=multipart, headers=headers)
    assert isinstance(resp.content, bytearray)
    y = mxconv.tensors.from_npy(resp.content)
    np.testing.assert_allclose(y, oracle.conv2d(x, w, pads=(1,) * 4), rtol=1e-4, atol=1e-4)
    result = api.conv2d(x, w, padding=1, detailed=True)
    assert result.y.flags.writeable and not result.y.flags.owndata  # a view of the body: no copy
    np.testing.assert_array_equal(result.y, y)


def test_never_retries_4xx(api: mxconv.Client, live_server) -> None:
    calls = []
    original = api.session.request

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    api.session.request = counting  # type: ignore[method-assign]
    try:
        with pytest.raises(mxconv.ValidationError):
            api.corr2d([[1]], [[1, 2]])
    finally:
        api.session.request = original  # type: ignore[method-assign]
    assert len(calls) == 1


def test_readme_curl_examples_run_as_written(live_server) -> None:
    examples = readme.examples("Try it with curl")
    assert len(examples) >= 5 and all(want for _, want in examples)  # each shows what it prints
    for command, want in examples:
        command = readme.against(command, live_server.url)
        out = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        body, status = out.rsplit("\n", 1)
        readme.expected(body, want)
        failing = "error" in json.loads(body)
        assert status == ("422" if failing else "200"), (command, body)
    first = subprocess.run(
        ["bash", "-c", readme.against(examples[0][0], live_server.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(first)["y"] == [[19, 25], [37, 43]]


def test_readme_binary_transport_example_runs_as_written(live_server, tmp_path: Path) -> None:
    block = readme.code_block("API", "sh", page="docs/api.md")  # the Binary transport subsection's block
    script = readme.against(block, live_server.url).replace(".venv/bin/python", sys.executable)
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "Content-Type: application/x-npy" in out.stdout and "X-Tensor-Shape: 1,8,32,32" in out.stdout
    assert out.stdout.rstrip().endswith("(1, 8, 32, 32)")


def test_readme_client_example_runs_as_written(live_server, tmp_path: Path) -> None:
    code = readme.against(readme.code_block("Use the Python client", "python"), live_server.url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[[19. 25.]" in out.stdout and "(2, 8, 32, 32)" in out.stdout
    assert re.search(r"422 weight: kernel spans 5x5", out.stdout)


def test_readme_bounded_work_example_runs_as_written(live_server) -> None:
    code = readme.against(readme.code_block("API", "python", page="docs/api.md"), live_server.url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "413 over_budget this job's 1000 epochs are predicted to take"


def test_missing_gpu_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="MXCONV_DEVICE='gpu'"):
        start_server(tmp_path, MXCONV_DEVICE="gpu")
    result = subprocess.run(
        [sys.executable, "-m", "mxconv.cli", "serve"],
        env={**__import__("os").environ, "MXCONV_DEVICE": "gpu:1", "MXCONV_PORT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "asks for GPU 1" in result.stderr and "MXCONV_DEVICE=cpu" in result.stderr
