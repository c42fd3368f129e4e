"""The client's one retry rule (mxconv.retries), case by case, and against real sockets."""

from __future__ import annotations

import email.utils
import http.server
import socket
import threading
import time
from collections.abc import Iterator

import mxconv
import numpy as np
import pytest
from mxconv.retries import MAX_RETRY_AFTER, Outcome, RetryState, backoff_delay, retry_after, retry_delay


def state(max_retries: int = 3, max_retry_seconds: float = 60.0) -> RetryState:
    return RetryState(max_retries, max_retry_seconds, backoff=lambda attempt: 0.01 * (attempt + 1))


@pytest.mark.parametrize("status", [408, 429, 502, 503])
def test_these_statuses_are_retried_up_to_max_retries(status: int) -> None:
    s = state(max_retries=2)
    delays = [retry_delay(Outcome(status=status), s) for _ in range(3)]
    assert delays == [0.01, 0.02, None]


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 422, 500, 504])
def test_these_statuses_never_are(status: int) -> None:
    assert retry_delay(Outcome(status=status, headers={"Retry-After": "1"}), state()) is None


def test_a_connection_that_never_sent_is_retried_like_a_503() -> None:
    s = state(max_retries=3)
    assert [retry_delay(Outcome(not_sent=True), s) for _ in range(4)] == [0.01, 0.02, 0.03, None]


def test_a_connection_dropped_after_sending_is_retried_once() -> None:
    s = state(max_retries=3)
    assert retry_delay(Outcome(dropped=True), s) == 0.01
    assert retry_delay(Outcome(dropped=True), s) is None
    assert retry_delay(Outcome(status=503), s) == 0.02  # other failures keep their own count


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert retry_after({"Retry-After": "2.5"}) == 2.5
    when = email.utils.formatdate(time.time() + 7, usegmt=True)
    assert 5.5 < retry_after({"Retry-After": when}) <= 7.0
    assert retry_after({"Retry-After": email.utils.formatdate(time.time() - 60, usegmt=True)}) == 0.0
    assert retry_after({"Retry-After": "3600"}) == MAX_RETRY_AFTER
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None
    s = state()
    assert retry_delay(Outcome(status=429, headers={"Retry-After": "1.5"}), s) == 1.5


def test_no_retry_starts_past_the_total_time_limit() -> None:
    s = state(max_retries=5, max_retry_seconds=1.0)
    assert retry_delay(Outcome(status=503, headers={"Retry-After": "0.5"}), s) == 0.5
    assert retry_delay(Outcome(status=503, headers={"Retry-After": "2"}), s) is None
    s.started -= 10
    assert retry_delay(Outcome(status=503), s) is None


def test_backoff_is_capped_with_full_jitter() -> None:
    delays = [backoff_delay(a) for a in range(12) for _ in range(20)]
    assert min(delays) >= 0 and max(delays) <= 8.0
    assert max(backoff_delay(0) for _ in range(200)) <= 0.25


# -- against real sockets -----------------------------------------------------------------------


class _Dropper(http.server.BaseHTTPRequestHandler):
    """Reads each request whole, then closes the connection without answering."""

    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class _Busy(http.server.BaseHTTPRequestHandler):
    """503 with an HTTP-date Retry-After the first time, then the seed's answer."""

    calls = 0

    def do_POST(self) -> None:  # noqa: N802
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).calls == 1:
            body = b'{"error": {"code": "unavailable", "message": "busy", "details": []}}'
            self.send_response(503)
            self.send_header("Retry-After", email.utils.formatdate(time.time() + 1, usegmt=True))
        else:
            body = b'{"y": [[19, 25], [37, 43]], "shape": [2, 2], "dtype": "float32", "flops": 32, '
            body += b'"elapsed_ms": 1}'
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_dropped_request_is_sent_twice_at_most() -> None:
    _Dropper.calls = 0
    for url in _serve(_Dropper):
        client = mxconv.Client(url, max_retries=5, backoff=lambda attempt: 0.0)
        with pytest.raises(mxconv.APIConnectionError):
            client.corr2d(np.eye(3), np.ones((2, 2)))
    assert _Dropper.calls == 2


def test_an_http_date_retry_after_is_waited_for() -> None:
    _Busy.calls = 0
    for url in _serve(_Busy):
        start = time.monotonic()
        y = mxconv.Client(url, max_retries=2).corr2d(np.eye(3), np.ones((2, 2)))
        waited = time.monotonic() - start
    assert _Busy.calls == 2 and y.tolist() == [[19, 25], [37, 43]]
    assert 0.0 <= waited < 3.0  # the date has whole-second resolution: up to ~1 s, never 30


def test_a_refused_connection_is_retried_until_max_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        tries: list[int] = []
        client = mxconv.Client(
            f"http://127.0.0.1:{port}", max_retries=3, backoff=lambda a: tries.append(a) or 0.0
        )
        with pytest.raises(mxconv.APIConnectionError, match="cannot reach"):
            client.info()
    assert tries == [0, 1, 2]
