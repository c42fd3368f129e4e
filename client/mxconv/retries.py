"""When the client tries a request again: the one rule, in :func:`retry_delay`.

* Connection errors before the request was sent, 408, 429, 502 and 503: retried, up to
  ``max_retries`` times, after the server's ``Retry-After`` (seconds or an HTTP date) where it
  gives one, else after a capped exponential backoff with full jitter.
* A connection dropped, or an answer not read in time, after the request was sent (the
  server may have done the work, or died doing it): retried at most once.
* 504 (``deadline_exceeded``: the work ran past the server's limit and would again), and every
  other status: never retried.
* No retry starts once ``max_retry_seconds`` have passed since the first attempt.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

RETRY_STATUSES = frozenset({408, 429, 502, 503})
#: A Retry-After longer than this is waited for no longer (a misconfigured proxy's hour).
MAX_RETRY_AFTER = 30.0


def backoff_delay(attempt: int, *, base: float = 0.25, cap: float = 8.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not crypto


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: a status (with headers), or a connection failure."""

    status: int | None = None
    headers: Mapping[str, str] | None = None
    not_sent: bool = False  # the connection failed before the request went out
    dropped: bool = False  # the connection broke after the request went out


@dataclass
class RetryState:
    max_retries: int
    max_retry_seconds: float
    backoff: Callable[[int], float] = backoff_delay
    started: float = 0.0
    attempt: int = 0  # retries made so far
    drops: int = 0  # of which after a dropped connection

    def __post_init__(self) -> None:
        self.started = time.monotonic()


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds, from a number or an HTTP date; None when absent or unreadable."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def retry_delay(outcome: Outcome, state: RetryState) -> float | None:
    """Seconds to wait before trying again, or None to give up with this outcome."""
    if state.attempt >= state.max_retries:
        return None
    if outcome.dropped:
        if state.drops >= 1:
            return None
    elif not (outcome.not_sent or outcome.status in RETRY_STATUSES):
        return None
    delay = retry_after(outcome.headers)
    if delay is None:
        delay = state.backoff(state.attempt)
    if time.monotonic() - state.started + delay > state.max_retry_seconds:
        return None
    state.attempt += 1
    state.drops += outcome.dropped
    return delay
