"""The time one request's work may take, checked between the pieces of long computations.

The API opens a :func:`limit` around a request's compute; the tiled convolution paths, the LTI
rows and anything else that loops call :func:`check` between pieces, so a request that runs
past its deadline stops at the next piece with :class:`DeadlineExceeded` (a 504), and the
worker goes on serving. (One MXNet call cannot be interrupted: the pieces are sized by the cost
model to a fraction of a second, and the server's watchdog is the backstop for the rest.)
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DeadlineExceeded(RuntimeError):
    """The work ran past its deadline; nothing of it is returned."""

    def __init__(self, limit: float, elapsed: float) -> None:
        super().__init__(f"the computation ran {elapsed:.1f} s, past its limit of {limit:g} s")
        self.limit = limit
        self.elapsed = elapsed


_current: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "mxconv_deadline", default=None
)


@contextmanager
def limit(seconds: float) -> Iterator[None]:
    """Work inside this block may take ``seconds`` in all."""
    token = _current.set((time.monotonic(), seconds))
    try:
        yield
    finally:
        _current.reset(token)


def check() -> None:
    """Raise DeadlineExceeded if the current block's time is up; free when there is none."""
    current = _current.get()
    if current is None:
        return
    started, seconds = current
    elapsed = time.monotonic() - started
    if elapsed > seconds:
        raise DeadlineExceeded(seconds, elapsed)
