"""Every use of gunicorn's, werkzeug's and Flask's private internals, in one place.

Each one buys a measured speed-up (or a JSON error shape) that the public APIs cannot give, and
each falls back to the public way when the internal is not there. The libraries are pinned to
the ranges these were tested on (pyproject.toml), and tests/test_fast_paths_live.py fails when a
fast path stops being taken: :data:`TAKEN` counts each one, and ``/metrics`` shows the counts
(``mxconv_fast_path_total``), so an upgrade that disables one cannot make things quietly slower.
"""

from __future__ import annotations

import collections
import io
import socket
from typing import Any

from flask import Request

#: Fast path -> times taken in this process.
TAKEN: collections.Counter[str] = collections.Counter()


def took(path: str) -> None:
    TAKEN[path] += 1
    from .. import metrics  # late: metrics imports Flask's app machinery

    metrics.count_fast_path(path)


# -- gunicorn ------------------------------------------------------------------------------


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client's socket under gunicorn's sync workers (which put it in the environ)."""
    return environ.get("gunicorn.socket")


def gunicorn_length_reader(stream: Any, sock: socket.socket | None, expected: int) -> Any:
    """gunicorn's reader for a body of known length that nothing has read yet, or None.

    Reading through gunicorn's ``Body`` copies a large body through its BytesIO buffers four
    times over (py-spy: a fifth of a worker's time on a 6 MB tensor request). With the length
    known, :func:`take_prefetched` takes what gunicorn has already buffered and the rest is
    received straight into one buffer. Anything else (another server, a chunked body) is read
    the portable way."""
    try:
        from gunicorn.http.body import Body, LengthReader
        from gunicorn.http.unreader import SocketUnreader
    except ImportError:
        return None
    if sock is None or not isinstance(stream, Body) or stream.buf.tell():
        return None
    reader = stream.reader
    if not isinstance(reader, LengthReader) or reader.length != expected:
        return None
    if not isinstance(reader.unreader, SocketUnreader) or not hasattr(reader.unreader, "take_buffered"):
        return None
    return reader


def take_prefetched(reader: Any, expected: int) -> bytes:
    """What gunicorn read ahead of the body (at most ``expected`` bytes of it); the body is
    marked as read, so gunicorn does not look for it again. A pipelined next request that came
    with it goes back to gunicorn."""
    unreader = reader.unreader
    ahead: bytes = unreader.take_buffered()
    if len(ahead) > expected:
        unreader.unread(ahead[expected:])
        ahead = ahead[:expected]
    reader.length = 0
    return ahead


def patch_gunicorn(write_error: Any) -> None:
    """No ``Server: gunicorn`` banner, and gunicorn's own parse errors (request line over 4094
    bytes, bad headers) in mxconv's error shape. In the master, before any worker forks."""
    import gunicorn.http.wsgi
    import gunicorn.util

    gunicorn.http.wsgi.SERVER = "mxconv"
    gunicorn.util.write_error = write_error


def write_nonblock(sock: Any, data: bytes) -> None:
    import gunicorn.util

    gunicorn.util.write_nonblock(sock, data)


# -- werkzeug and Flask ------------------------------------------------------------------------


class _ViewStream(io.RawIOBase):
    """A read-only stream over a buffer, without copying it."""

    def __init__(self, data: bytearray | memoryview) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self._view) - self._pos)
        buffer[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n


def replace_body(request: Request, body: bytes | bytearray | memoryview) -> None:
    """Make ``body`` the request's body, as if read from the socket: get_data(), form and files
    read it without a copy (werkzeug caches it in ``_cached_data``)."""
    environ = request.environ
    # BytesIO shares a bytes object but copies a bytearray (6 MB: 0.5 ms and 6 MB more RSS).
    environ["wsgi.input"] = io.BytesIO(body) if isinstance(body, bytes) else _ViewStream(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    for cached in ("content_length", "stream"):  # werkzeug's cached properties, if computed
        request.__dict__.pop(cached, None)
    request._cached_data = body  # noqa: SLF001


def set_json_body(request: Request, obj: Any) -> None:
    """Stand ``obj`` in for the parsed JSON body (what views and flask-openapi3 read)."""
    request._cached_json = (obj, obj)  # noqa: SLF001


def response_obj(provider: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What ``jsonify(*args, **kwargs)`` would serialize (Flask's own argument rules)."""
    return provider._prepare_response_obj(args, kwargs)  # noqa: SLF001
