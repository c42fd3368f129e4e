"""Start-up checks for `mxconv serve` and the job worker. Each failure is a :class:`StartupError`
whose message is one line for stderr, and the process exits 2: in a container that line is
what `docker logs` shows, rather than a traceback or a worker boot loop."""

from __future__ import annotations

import sqlite3
import time
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from .config import Settings
from .jobs import JobStore, StoreUnavailable, open_store


class StartupError(Exception):
    """Why the process cannot start, as one line that says what to change."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        raise StartupError(describe(e)) from None


def describe(e: ValidationError) -> str:
    """``invalid setting MXCONV_WORKERS='abc': Input should be a valid integer, ...``, one line."""
    parts = []
    for err in e.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        name = f"MXCONV_{field.upper()}"
        info = Settings.model_fields.get(field)
        secret = info is not None and info.repr is False  # never echo a key
        value = "" if secret or "input" not in err else f"={err['input']!r}"
        parts.append(f"{name}{value}: {err['msg']}")
    return "invalid setting " + "; ".join(parts)


def check_device(settings: Settings) -> None:
    from .compute import device  # loads MXNet: callers set its environment first

    try:
        device.resolve(settings.device)
    except device.DeviceUnavailable as e:
        raise StartupError(str(e)) from None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_job_store(settings: Settings) -> JobStore:
    """The job store, once it answers. Redis gets MXCONV_STARTUP_TIMEOUT seconds to come up
    (retried with backoff); a wrong password or an unusable SQLite file fails at once."""
    url = settings.jobs_store_url
    if url.startswith("sqlite:"):
        try:
            return open_store(url)
        except (OSError, sqlite3.Error, StoreUnavailable) as e:
            raise StartupError(
                f"cannot open the job store {url} ({e}); "
                "check that MXCONV_DATA_DIR is writable and its disk has space"
            ) from None
    import redis.exceptions

    timeout = settings.startup_timeout
    deadline = time.monotonic() + timeout
    store = open_store(url)
    for attempt in range(1000):
        try:
            store.ping()
            return store
        except StoreUnavailable as e:  # the store's own outage error, the Redis error its cause
            if isinstance(e.__cause__, redis.exceptions.AuthenticationError):
                raise StartupError(
                    f"the job store {redact(url)} refused our credentials ({e.__cause__}); "
                    "check MXCONV_JOBS_URL"
                ) from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise StartupError(
                    f"cannot reach the job store {redact(url)} after {timeout:g} s ({e}); check "
                    "MXCONV_JOBS_URL and that Redis runs (MXCONV_STARTUP_TIMEOUT sets the wait)"
                ) from None
            time.sleep(min(left, 2.0, 0.1 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover
