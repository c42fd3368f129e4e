"""Shared fixtures: the Flask app and test client, and live gunicorn servers on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mxconv_server.app import create_app

from .browser import browser  # noqa: F401  (the page tests' fixture: a real chromium)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def app(tmp_path: Path):
    return create_app({"data_dir": tmp_path / "data"})


@pytest.fixture()
def client(app):
    return app.test_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A real `mxconv serve` process tree (gunicorn + workers) on 127.0.0.1."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


def start_server(tmp_path: Path, *, workers: int = 2, **env: str) -> LiveServer:
    """Start `mxconv serve` on a free port and wait until /v1/health/ready answers 200."""
    port = free_port()
    full_env = {
        **os.environ,
        "MXCONV_HOST": "127.0.0.1",
        "MXCONV_PORT": str(port),
        "MXCONV_WORKERS": str(workers),
        "MXCONV_DATA_DIR": str(tmp_path / "data"),
        "OMP_NUM_THREADS": "1",
        **env,
    }
    log_path = tmp_path / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mxconv.cli", "serve"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            if requests.get(f"{server.url}/v1/health/ready", timeout=10).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become ready in 60 s:\n{server.log()}")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live"))
    yield server
    server.stop()
