"""The backstop behind the request deadline.

Long work runs in pieces with a deadline check between them (``compute.deadline``), so a
request that runs over ``MXCONV_MAX_REQUEST_SECONDS`` normally stops at the next piece with a
504 and the worker serves on. A single MXNet call cannot be interrupted, though: if one runs
past the deadline by more than :data:`GRACE_SECONDS` (the cost model was badly wrong), this
thread answers the client's socket with the same JSON 504 itself and ends the worker, which
gunicorn replaces (measured: a new worker serves within ~1.5 s; the other workers serve on
meanwhile). gunicorn's own timeout stays above both, so it never kills a worker first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import raw_error_response

log = logging.getLogger("mxconv.watchdog")

#: How far past its deadline one uninterruptible piece of work may run before the worker ends.
GRACE_SECONDS = 0.5
#: A worker ended by the watchdog exits with this code (gunicorn halts on 3 and 4 only).
EXIT_CODE = 70


@dataclass
class _Guarded:
    due: float
    limit: float
    sock: socket.socket
    request_id: str
    path: str  # the request's, for its route's error shape


class Watchdog:
    """One per worker process: at most one request's work is guarded at a time (sync workers)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._guarded: _Guarded | None = None
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(
        self, limit: float, sock: socket.socket | None, request_id: str, path: str = ""
    ) -> Iterator[None]:
        """Guard the block's work; without a client socket (the test client) there is nothing
        to answer on, so nothing is guarded."""
        if sock is None:
            yield
            return
        with self._cond:
            self._start()
            self._guarded = _Guarded(time.monotonic() + limit + GRACE_SECONDS, limit, sock, request_id, path)
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:  # taken by _fire while it answers: the worker is ending then
                self._guarded = None

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():  # a fresh worker after fork
            self._thread = threading.Thread(target=self._watch, name="mxconv-watchdog", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        with self._cond:
            while True:
                guarded = self._guarded
                if guarded is None:
                    self._cond.wait()
                    continue
                left = guarded.due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._fire(guarded)

    def _fire(self, guarded: _Guarded) -> None:
        message = (
            f"the computation ran past its limit of {guarded.limit:g} s (MXCONV_MAX_REQUEST_SECONDS) "
            "and was stopped; nothing was returned. Ask for less work (a smaller input, kernel or "
            "batch), or ask the operator to raise the limit"
        )
        log.error(
            "request %s: work ran %.1f s past its deadline; answering 504 and replacing this worker",
            guarded.request_id,
            GRACE_SECONDS,
            extra={"request_id": guarded.request_id},
        )
        try:
            guarded.sock.settimeout(2.0)
            guarded.sock.sendall(
                raw_error_response(504, "deadline_exceeded", message, guarded.request_id, guarded.path)
            )
            guarded.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client is gone: nothing to tell it
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_CODE)


WATCHDOG = Watchdog()
