"""The floor under section 2: what moving a request's bytes costs with no HTTP at all.

A second process on 127.0.0.1 receives N bytes and answers M bytes over one TCP connection,
recv_into preallocated buffers both ways: the least any client and server that first read a
request and then answer it can spend on the bytes of that request. Added to the in-process time,
it bounds the best end-to-end ratio a request-then-answer design can reach on this machine,
before a line of HTTP, multipart or JSON.
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import time
from collections.abc import Callable


def read_exact(readinto: Callable[[memoryview], int | None], length: int) -> bytearray:
    """``length`` bytes from ``readinto`` (a socket's ``recv_into``, a stream's ``readinto``)."""
    data = bytearray(length)
    view, got = memoryview(data), 0
    while got < length:
        n = readinto(view[got:])
        if not n:
            raise EOFError(f"peer closed after {got} of {length} bytes")
        got += n
    return data


def _serve(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        while True:
            try:
                head = read_exact(conn.recv_into, 16)
            except EOFError:
                return
            n, m = int.from_bytes(head[:8], "little"), int.from_bytes(head[8:], "little")
            read_exact(conn.recv_into, n)
            conn.sendall(bytes(m))


def loopback_ms(request_bytes: int, response_bytes: int, reps: int = 25) -> float:
    """Median milliseconds to send ``request_bytes`` to another process and receive
    ``response_bytes`` back, over a connection already open (no connect in the figure)."""
    listener = socket.create_server(("127.0.0.1", 0))
    ctx = multiprocessing.get_context("fork")
    peer = ctx.Process(target=_serve, args=(listener,), daemon=True)
    peer.start()
    try:
        with socket.create_connection(listener.getsockname()) as conn:
            payload = bytes(request_bytes)
            head = request_bytes.to_bytes(8, "little") + response_bytes.to_bytes(8, "little")
            times = []
            for i in range(reps + 2):
                start = time.perf_counter()
                conn.sendall(head)
                conn.sendall(payload)
                read_exact(conn.recv_into, response_bytes)
                if i >= 2:  # two warm-up rounds: TCP's buffers grow to the transfer size
                    times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000
    finally:
        listener.close()
        peer.join(10)
        if peer.is_alive():
            peer.kill()
