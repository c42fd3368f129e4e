"""Real `redis-server` processes for the tests, on 127.0.0.1, each in its own temp directory.

.ci/run installs Debian's redis-server. Without it a test is skipped on a developer's machine,
and fails in CI (CI=true): a backend that is never exercised must not pass as green.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from .conftest import free_port


def executable() -> str:
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed; .ci/run should apt-get install it")
        pytest.skip("redis-server is not installed: apt-get install --no-install-recommends redis-server")
    return path


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            executable(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--appendonly", "yes",  # persistence on, as in docker-compose.yml
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip

    def start(self, timeout: float = 20) -> RedisServer:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log()}")
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"redis-server did not answer in {timeout} s: {self.log()}")

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: Redis writes its append-only file out and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start(directory: Path) -> RedisServer:
    directory.mkdir(parents=True, exist_ok=True)
    return RedisServer(free_port(), directory).start()


_shared: RedisServer | None = None


def shared() -> RedisServer:
    """One server for the whole session (tests keep apart by key prefix): started on first use,
    stopped when the test process exits."""
    global _shared
    if _shared is None or _shared.process is None or _shared.process.poll() is not None:
        _shared = start(Path(tempfile.mkdtemp(prefix="mxconv-redis-")))
        atexit.register(_stop_shared, _shared)
    return _shared


def _stop_shared(server: RedisServer) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


def fresh_url() -> str:
    """A store URL on the shared server that no other test uses."""
    return f"{shared().url}?prefix=test-{uuid.uuid4().hex[:12]}:"
