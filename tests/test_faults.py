"""Fault tests against a real `mxconv serve` tree on 127.0.0.1. Each prints what it observed.

Only processes these tests started are signalled, by pid.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import mxconv
import numpy as np
import pytest
import requests

from loadtest.run import server_processes

from .conftest import LiveServer, start_server


def _b64(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"dtype": "float32", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}


def workers(server: LiveServer) -> set[int]:
    procs = server_processes(server.process.pid)
    return {p.pid for name, p in procs.items() if name.startswith("gunicorn-worker")}


def wait_for(pred, timeout: float, step: float = 0.1) -> float | None:
    """Seconds until pred() held, or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(step)
    return None


def message(line: str) -> str:
    """A server log line's message, whether the log is JSON (MXCONV_LOG_FORMAT) or text."""
    try:
        return str(json.loads(line)["message"])
    except (ValueError, KeyError, TypeError):
        return line


def observe(title: str, **facts: Any) -> None:
    print(f"\n[fault] {title}")
    for k, v in facts.items():
        print(f"    {k}: {v}")


# -- kill -9 a worker under load -----------------------------------------------------------


@pytest.mark.timeout(120)
def test_kill9_worker_under_load(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((1, 8, 96, 96)), rng.standard_normal((8, 8, 5, 5))
        body = json.dumps({"x": _b64(x), "weight": _b64(w), "padding": "same", "output_encoding": "base64"})
        expected = None
        before = workers(server)
        assert len(before) == 2
        stop = threading.Event()
        raw: Counter[str] = Counter()
        via_client: Counter[str] = Counter()
        retries: list[int] = []

        def raw_loop() -> None:  # no retries: shows which requests the kill broke
            while not stop.is_set():
                try:
                    r = requests.post(
                        server.url + "/v1/conv2d",
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=60,
                    )
                    raw[str(r.status_code)] += 1
                except requests.RequestException as e:
                    raw[type(e).__name__] += 1

        def client_loop() -> None:  # the typed client: retries connection errors
            def backoff(attempt: int) -> float:
                retries.append(attempt)
                return 0.05

            api = mxconv.Client(server.url, max_retries=3, backoff=backoff)
            while not stop.is_set():
                try:
                    y = api.conv2d(x, w, padding="same")
                    ok = expected is None or np.allclose(y, expected, atol=1e-3)
                    via_client["ok" if ok else "wrong"] += 1
                except mxconv.MxconvError as e:
                    via_client[type(e).__name__] += 1

        expected = mxconv.Client(server.url).conv2d(x, w, padding="same")
        threads = [threading.Thread(target=raw_loop) for _ in range(3)]
        threads += [threading.Thread(target=client_loop) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(3)
        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        replaced_in = wait_for(lambda: len(workers(server) - before) == 1 and len(workers(server)) == 2, 60)
        time.sleep(2)  # load continues on the replacement
        stop.set()
        for t in threads:
            t.join(90)
        after = workers(server)
        ready = requests.get(server.url + "/v1/health/ready", timeout=30).status_code
        raw_failed = sum(n for k, n in raw.items() if not k.isdigit())
        observe(
            "kill -9 one of 2 gunicorn workers under load (6 threads, conv2d 8x96x96 * 8x8x5x5)",
            victim=victim,
            workers_before=sorted(before),
            workers_after=sorted(after),
            replacement_seconds=None if replaced_in is None else round(replaced_in, 2),
            raw_requests_no_retry=dict(raw),
            client_calls_with_retries=dict(via_client),
            client_retries=len(retries),
            ready_after=ready,
            seconds_from_kill_to_end=round(time.monotonic() - killed_at, 1),
        )
        assert replaced_in is not None, "the master did not replace the killed worker"
        assert victim not in after and len(after) == 2
        # A sync worker holds one connection: only its in-flight request can fail, and only as
        # a broken connection: before the answer (ConnectionError) or, when the kill lands while
        # the answer is on its way, part-way through its body (requests: ChunkedEncodingError;
        # 2 in 32 runs here).
        assert raw_failed <= 1, raw
        assert set(raw) - {"200"} <= {"ConnectionError", "ChunkedEncodingError"}, raw
        assert set(via_client) == {"ok"}, via_client
        assert ready == 200
    finally:
        server.stop()


# -- SIGTERM: in-flight requests finish ----------------------------------------------------


@pytest.mark.timeout(120)
def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    rng = np.random.default_rng(1)
    # About 2.5 s of compute on one thread here: in flight for sure when the signal lands.
    x, w = rng.standard_normal((1, 1, 512, 512)), rng.standard_normal((1, 1, 25, 25))
    body = json.dumps({"x": _b64(x), "weight": _b64(w), "padding": "same", "output_encoding": "base64"})
    results: list[tuple[int | str, float]] = []
    lock = threading.Lock()

    def slow() -> None:
        start = time.monotonic()
        try:
            r = requests.post(
                server.url + "/v1/conv2d", data=body, headers={"Content-Type": "application/json"}, timeout=90
            )
            out: int | str = r.status_code
        except requests.RequestException as e:
            out = type(e).__name__
        with lock:
            results.append((out, round(time.monotonic() - start, 2)))

    threads = [threading.Thread(target=slow) for _ in range(2)]  # one per worker
    for t in threads:
        t.start()
    time.sleep(1.0)
    sent_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    probe_start = time.monotonic()
    try:  # a new request during the drain
        probe: int | str = requests.get(server.url + "/v1/health/live", timeout=30).status_code
    except requests.RequestException as e:
        probe = type(e).__name__
    probe_s = round(time.monotonic() - probe_start, 2)
    for t in threads:
        t.join(90)
    code = server.process.wait(60)
    exited_in = time.monotonic() - sent_at
    observe(
        "SIGTERM to `mxconv serve` with 2 requests in flight (~2.5 s each)",
        in_flight_results=results,
        new_request_during_drain=f"{probe} after {probe_s} s",
        exit_code=code,
        exited_after_s=round(exited_in, 2),
        shutdown_log=[message(ln) for ln in server.log().splitlines() if "Shutting" in ln or "exiting" in ln],
    )
    assert [r for r, _ in results] == [200, 200], results
    assert code == 0
    assert exited_in < 35  # gunicorn's graceful_timeout is 30 s


# -- slow senders and chunked bodies -------------------------------------------------------

BODY_TIMEOUT = 3
MAX_BODY = 100_000


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory):
    server = start_server(
        tmp_path_factory.mktemp("faults"),
        MXCONV_BODY_TIMEOUT=str(BODY_TIMEOUT),
        MXCONV_MAX_BODY_BYTES=str(MAX_BODY),
    )
    yield server
    server.stop()


def _raw(url: str, head: bytes, chunks: list[bytes], pause: float = 0.0) -> tuple[bytes, str, float]:
    """Send a request by hand; returns (response, send error, seconds to the answer)."""
    host, port = url.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        error = ""
        try:
            s.sendall(head)
            for c in chunks:
                s.sendall(c)
                if pause:
                    time.sleep(pause)
        except OSError as e:  # the server answered early and closed: fine, read its answer
            error = type(e).__name__
        data = b""
        try:
            while True:
                part = s.recv(65536)
                if not part:
                    break
                data += part
        except OSError as e:
            error = error or type(e).__name__
    return data, error, time.monotonic() - start


def _status(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/") else 0


def _chunked(body: bytes, size: int = 8192) -> list[bytes]:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    parts = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces]
    return [*parts, b"0\r\n\r\n"]


HEAD = b"POST /v1/corr2d HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
CHUNKED_HEAD = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.timeout(120)
def test_slow_trickling_client_times_out_and_frees_the_worker(strict_server: LiveServer) -> None:
    url = strict_server.url
    before = workers(strict_server)
    head = HEAD + b"Content-Length: 5000\r\n\r\n"
    outcomes: list[tuple[int, str, float]] = []

    def trickler() -> None:
        # one byte every 0.25 s: it would take 20 min to send 5000 bytes
        resp, err, took = _raw(url, head, [b" "] * 400, pause=0.25)
        outcomes.append((_status(resp), err, round(took, 2)))

    tricklers = [threading.Thread(target=trickler) for _ in range(2)]  # as many as workers
    for t in tricklers:
        t.start()
    time.sleep(0.5)  # both workers now held by a trickler
    start = time.monotonic()
    normal = requests.post(url + "/v1/corr2d", json={"x": [[1, 2], [3, 4]], "kernel": [[1]]}, timeout=60)
    waited = time.monotonic() - start
    for t in tricklers:
        t.join(60)
    after = workers(strict_server)
    observe(
        f"2 clients trickle 5000-B bodies at 4 B/s into 2 sync workers (MXCONV_BODY_TIMEOUT={BODY_TIMEOUT})",
        trickler_outcomes=outcomes,
        normal_request_status=normal.status_code,
        normal_request_waited_s=round(waited, 2),
        workers_restarted=sorted(before - after),
    )
    assert [s for s, _, _ in outcomes] == [408, 408], outcomes
    assert all(BODY_TIMEOUT - 0.5 <= took <= BODY_TIMEOUT + 3 for _, _, took in outcomes), outcomes
    assert normal.status_code == 200 and waited < BODY_TIMEOUT + 5
    assert before == after, "the workers were freed, not killed and replaced"


@pytest.mark.timeout(60)
def test_body_read_from_the_socket_in_pieces_or_cut_short(strict_server: LiveServer) -> None:
    """gunicorn's read-ahead holds the start of a body; the rest is received straight from the
    socket (body.py). A body sent in pauses arrives whole; one cut short is a 400 naming the
    bytes that came, and the worker stays up."""
    body = b'{"x": [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "kernel": [[0, 1], [2, 3]]}'
    head = HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode()
    pieces = [body[:10], body[10:30], body[30:]]
    resp, err, _ = _raw(strict_server.url, head, pieces, pause=0.3)
    assert _status(resp) == 200, (resp[:300], err)
    assert b"[[19.0,25.0],[37.0,43.0]]" in resp.replace(b" ", b"")

    host, port = strict_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(HEAD + b"Content-Length: 5000\r\n\r\n" + body)
        time.sleep(0.3)  # the server is now waiting on the socket for the rest
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while part := s.recv(65536):
            answer += part
    assert _status(answer) == 400, answer[:300]
    assert f"ended after {len(body)} of 5000 bytes".encode() in answer
    seed = {"x": [[1, 2], [3, 4]], "kernel": [[1]]}
    assert requests.post(strict_server.url + "/v1/corr2d", json=seed, timeout=30).status_code == 200


@pytest.mark.timeout(60)
def test_chunked_body_over_the_limit_is_413(strict_server: LiveServer) -> None:
    url = strict_server.url
    big = b'{"x": [' + b"1.0," * (MAX_BODY // 4 + 10) + b'1.0], "kernel": [[1]]}'
    under = b'{"x": [[' + b"1.0," * 1000 + b'1.0]], "kernel": [[1]]}'
    cases = {
        "chunked, 1.0x limit + 40 B": (CHUNKED_HEAD, _chunked(big)),
        "chunked, 50x limit": (CHUNKED_HEAD, _chunked(b"[" * (50 * MAX_BODY))),
        "chunked, under the limit": (CHUNKED_HEAD, _chunked(under)),
        "chunked, bad chunk size": (CHUNKED_HEAD, [b"zz\r\nabc\r\n0\r\n\r\n"]),
        "Content-Length over the limit, no body sent": (
            HEAD + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode(),
            [],
        ),
    }
    cases["request line over 4094 bytes (gunicorn's own answer)"] = (
        b"GET /v1/info?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        [],
    )
    seen = {}
    for name, (head, chunks) in cases.items():
        resp, err, took = _raw(url, head, chunks)
        body = resp.split(b"\r\n\r\n", 1)[-1]
        status = _status(resp)
        seen[name] = (status, json.loads(body)["error"]["code"] if status >= 400 else "-", err)
    observe(f"bodies sent by hand (MXCONV_MAX_BODY_BYTES={MAX_BODY})", **seen)
    assert seen["chunked, 1.0x limit + 40 B"][:2] == (413, "too_large")
    assert seen["chunked, 50x limit"][:2] == (413, "too_large")
    assert seen["chunked, under the limit"][0] == 200
    assert seen["chunked, bad chunk size"][:2] == (400, "malformed_body")
    assert seen["Content-Length over the limit, no body sent"][:2] == (413, "too_large")
    assert seen["request line over 4094 bytes (gunicorn's own answer)"][:2] == (414, "uri_too_long")
    assert "Traceback" not in strict_server.log()


def test_a_body_received_into_a_buffer_is_streamed_without_a_copy() -> None:
    """A body received from the socket (a bytearray) stays readable as wsgi.input for anything
    that reads the stream, and the stream is a view of the buffer, not a copy of it."""
    from mxconv_server.transport.compat import _ViewStream

    data = bytearray(b"0123456789" * 1000)
    stream = _ViewStream(data)
    assert stream.read(4) == b"0123"
    rest = stream.read()
    assert rest == bytes(data[4:]) and stream.read() == b""
    data[0:4] = b"abcd"  # a view: a change to the buffer shows through a fresh stream
    assert _ViewStream(data).read(4) == b"abcd"


@pytest.mark.timeout(90)
def test_large_npy_answers_and_a_reader_that_hangs_up(strict_server: LiveServer) -> None:
    """Under gunicorn a .npy answer's array is sent from the socket directly (binary._body):
    5.8 MB arrive exact; a client that hangs up after the first bytes costs no worker, and
    the next request is answered."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 1, 150, 150)).astype(np.float32)  # a small request (90 KB)...
    w = rng.standard_normal((64, 1, 3, 3)).astype(np.float32)  # ...with a 5.8 MB answer
    y = mxconv.Client(strict_server.url, transport="binary").conv2d(x, w, padding=1)
    padded = np.pad(x[0, 0], 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))
    np.testing.assert_allclose(y[0], np.einsum("hwij,oij->ohw", windows, w[:, 0]), rtol=1e-4, atol=1e-4)

    before = workers(strict_server)
    body = mxconv.tensors.multipart_body({"x": x, "weight": w}, {"padding": 1})
    head = (
        f"POST /v1/conv2d HTTP/1.1\r\nHost: t\r\nAccept: application/x-npy\r\n"
        f"Content-Type: {body.content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = strict_server.url.removeprefix("http://").split(":")
    for _ in range(4):  # as many hang-ups as there are workers, twice over
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(head + bytes(body))
            assert s.recv(1000).startswith(b"HTTP/1.1 200")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    again = mxconv.Client(strict_server.url, transport="binary").conv2d(x, w, padding=1)
    np.testing.assert_array_equal(again, y)
    assert workers(strict_server) == before, "a hang-up cost a worker"
