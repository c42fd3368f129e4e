"""Read a request body whole, under a size limit and a deadline, before the view sees it.

gunicorn's sync workers serve one request at a time, and a body is read from the socket as
the view asks for it. Left alone, two things go wrong:

* a client that trickles its body holds the worker until gunicorn's worker timeout kills it
  (120 s, then a worker restart that re-imports MXNet);
* a chunked body (no Content-Length) over MXCONV_MAX_BODY_BYTES is silently cut at the limit
  by werkzeug (``LimitedStream.readall`` stops there without raising), and the view parses
  the truncated bytes: a misleading 400, or worse, a valid-looking prefix.

So the body is read here, after the API key check and before anything parses it: more
than the limit is a 413, a body not complete within MXCONV_BODY_TIMEOUT seconds is a 408.
Behind a buffering reverse proxy (see docs/security.md) bodies arrive at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import threading
import time
from typing import Any

from flask import Request

from ..errors import ApiError
from . import compat

_CHUNK = 256 * 1024
#: With ``align_at``, that byte of the body lands on a boundary of this many bytes.
ALIGN = 64


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body is over the limit of {limit} bytes (MXCONV_MAX_BODY_BYTES)")


def buffer_request_body(
    request: Request, *, max_bytes: int, timeout: float, align_at: int | None = None
) -> None:
    """Replace the request's input stream with the whole body, read under the limits.

    ``align_at``: an offset into the body where tensor bytes start (a /v2 request's binary
    section, after its JSON header). Read from the socket, the body is then placed so that
    they start on a 64-byte boundary, and reach MXNet without the copy a misaligned array
    costs (``compute.kernels.as_input``). The body is then a memoryview."""
    environ: dict[str, Any] = request.environ
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    declared = environ.get("CONTENT_LENGTH", "")
    if not chunked and declared in ("", "0"):
        return
    if declared and not chunked:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length must be a non-negative integer")
        if int(declared) > max_bytes:
            raise too_large(max_bytes)
    stream = environ["wsgi.input"]
    sock = compat.client_socket(environ)
    expected = None if chunked else int(declared)
    reader = None if expected is None else compat.gunicorn_length_reader(stream, sock, expected)
    if reader is not None:
        body = _read_direct(reader, sock, expected, timeout, align_at)  # type: ignore[arg-type]
        compat.replace_body(request, body)
        compat.took("body_direct_read")
        return
    # A socket timeout would bound each recv, not the whole body (gunicorn's reader loops over
    # recvs until it has what was asked for), so a watchdog ends the read at the deadline:
    # shutting the socket for reading wakes the blocked recv with end-of-file. Writing the
    # answer still works.
    watchdog = _Watchdog(sock, timeout)
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            # With a Content-Length, one read asks for all of it (64 KiB reads copied gunicorn's
            # read-ahead buffer each time: see the git history of binary.py). Chunked bodies
            # come in slices.
            want = expected - size if expected is not None else min(_CHUNK, max_bytes + 1 - size)
            if want == 0:
                break
            try:
                part = stream.read(want)
            except Exception as e:  # gunicorn's parser errors on bad chunking, resets, EOF mid-body
                if watchdog.fired:
                    raise _timed_out(timeout) from None
                raise ApiError(400, f"could not read the request body: {type(e).__name__} {e}") from None
            if watchdog.fired:
                raise _timed_out(timeout)
            if not part:
                break
            parts.append(part)
            size += len(part)
            if size > max_bytes:
                raise too_large(max_bytes)
    finally:
        watchdog.cancel()
    if expected is not None and size != expected:
        raise _cut_short(size, expected)
    compat.replace_body(request, parts[0] if len(parts) == 1 else b"".join(parts))


def _read_direct(
    reader: Any, sock: socket.socket, expected: int, timeout: float, align_at: int | None = None
) -> bytes | bytearray | memoryview:
    """The body from gunicorn's read-ahead buffer, then from the socket: one copy of each byte.

    This loop owns every recv, so the deadline needs no watchdog thread: each recv may wait
    only for what is left of it. (A thread started per request cost ~8% of a small request's
    worker time under load, py-spy; and its start waits for a core, which on a 2-core machine
    the client sending the body is using.)"""
    ahead = compat.take_prefetched(reader, expected)
    if len(ahead) == expected:
        return ahead
    body = bytearray(expected) if align_at is None else _aligned(expected, align_at)
    got = len(ahead)
    body[:got] = ahead
    deadline = time.monotonic() + timeout
    blocking = sock.gettimeout()
    try:
        with memoryview(body) as view:
            while got < expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                n = sock.recv_into(view[got:])
                if not n:
                    break
                got += n
    except TimeoutError:
        # What the client still sends is not read (as the watchdog does): answering and closing
        # need not wait for it.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)
        raise _timed_out(timeout) from None
    except OSError:
        pass  # a reset: reported below as a short body
    finally:
        sock.settimeout(blocking)  # gunicorn writes the answer on the socket as it found it
    if got < expected:
        raise _cut_short(got, expected)
    return body


def _aligned(size: int, align_at: int) -> memoryview:
    """A writable buffer of ``size`` bytes whose byte ``align_at`` sits on an ALIGN boundary."""
    raw = bytearray(size + ALIGN)
    address = ctypes.addressof(ctypes.c_char.from_buffer(raw))
    start = -(address + align_at) % ALIGN
    return memoryview(raw)[start : start + size]


class _Watchdog:
    def __init__(self, sock: socket.socket | None, timeout: float) -> None:
        self.fired = False
        self._sock = sock
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(timeout, self._fire) if sock is not None else None
        if self._timer:
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done or self._sock is None:
                return
            self.fired = True
            with contextlib.suppress(OSError):  # already closed by the client: nothing to wake
                self._sock.shutdown(socket.SHUT_RD)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        if self._timer:
            self._timer.cancel()


def _cut_short(got: int, expected: int) -> ApiError:
    return ApiError(400, f"request body ended after {got} of {expected} bytes (Content-Length)")


def _timed_out(timeout: float) -> ApiError:
    return ApiError(
        408,
        f"the request body did not arrive complete within {timeout:g} s (MXCONV_BODY_TIMEOUT); "
        "send it at once",
        code="request_timeout",
    )
