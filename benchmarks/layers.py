"""Where a binary call's client-side time goes: the same request sent through each layer.

One ``.npy`` multipart request, built by ``mxconv.tensors.multipart_body`` as the client builds
it, is sent round-robin by four clients against the same server: a bare-socket HTTP/1.1 client
(the least any client can do: send the bytes, read the status line and headers, receive the
body into one buffer), ``urllib3``, ``requests`` and ``mxconv.Client``. Every one opens a fresh
connection with the same socket options (``TCP_NODELAY``, the buffers of ``mxconv.sockets``)
and decodes the answer with ``mxconv.tensors.from_npy``. The differences between rows are what
each layer adds on top of the one below it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import mxconv
import numpy as np
import urllib3
from mxconv import sockets, tensors

from .common import interleaved_ms
from .floor import read_exact

PATH = "/v1/conv2d"
HEADERS = {"Accept": tensors.NPY_MEDIA_TYPE}


def _socket_options() -> list[tuple[int, int, int]]:
    return [*urllib3.connection.HTTPConnection.default_socket_options, *sockets.options()]


def bare_socket_call(url: str, body: tensors.MultipartBody) -> np.ndarray:
    address = urlsplit(url)
    host, port = address.hostname, address.port
    with socket.socket() as sock:
        for option in _socket_options():
            sock.setsockopt(*option)
        sock.connect((host, port))
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {tensors.NPY_MEDIA_TYPE}\r\n"
            f"Content-Type: {body.content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode())
        for piece in body:
            sock.sendall(piece)
        with sock.makefile("rb") as stream:
            status = stream.readline()
            if b" 200 " not in status:
                raise RuntimeError(f"server answered {status!r}")
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return tensors.from_npy(read_exact(stream.readinto, length))


def clients(
    url: str, case_arrays: tuple[np.ndarray, np.ndarray], padding: int
) -> dict[str, Callable[[], Any]]:
    """The four ways of making the same call, each returning the output array."""
    x, w = case_arrays
    params = {"padding": padding}
    pool = urllib3.PoolManager(socket_options=_socket_options())
    client = mxconv.Client(url, transport="binary")
    session = client.session  # requests, with the client's socket options

    def body() -> tensors.MultipartBody:
        return tensors.multipart_body({"x": x, "weight": w}, params)

    def with_urllib3() -> np.ndarray:
        mb = body()
        resp = pool.request(
            "POST",
            url + PATH,
            body=mb,
            headers={**HEADERS, "Content-Type": mb.content_type, "Content-Length": str(len(mb))},
            preload_content=False,
        )
        data = read_exact(resp._fp.readinto, int(resp.headers["Content-Length"]))  # noqa: SLF001
        resp.release_conn()
        return tensors.from_npy(data)

    def with_requests() -> np.ndarray:
        mb = body()
        resp = session.post(
            url + PATH, data=mb, headers={**HEADERS, "Content-Type": mb.content_type}, stream=True
        )
        data = read_exact(resp.raw._fp.readinto, int(resp.headers["Content-Length"]))  # noqa: SLF001
        resp.close()
        return tensors.from_npy(data)

    return {
        "bare socket": lambda: bare_socket_call(url, body()),
        "urllib3": with_urllib3,
        "requests": with_requests,
        "mxconv.Client": lambda: client.conv2d(x, w, padding=padding),
    }


def table(
    url: str,
    case_arrays: tuple[np.ndarray, np.ndarray],
    padding: int,
    local: Callable[[], Any],
    reps: int = 61,
) -> str:
    """Medians of the four clients and the in-process call, round-robin; one line each."""
    fns = {"in-process": local, **clients(url, case_arrays, padding)}
    expected = local()
    for name, fn in fns.items():
        assert np.allclose(fn(), expected, rtol=1e-4, atol=1e-3), f"{name} disagrees"
    ms = interleaved_ms(fns, reps=reps)
    base = ms["in-process"]
    lines = [f"  {name:14s} {took:8.2f} ms  {took / base:.3f}x in-process" for name, took in ms.items()]
    return "\n".join(lines)
