"""The container suite: `make test-containers` (CI runs it after `make test`). `make test` does
not collect it: it needs Docker and minutes of builds, which the main suite must not."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import ROOT
from .stack import FIGURES, Stack

if os.environ.get("MXCONV_CONTAINER_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]

#: The topology under test: three api replicas, two workers; compose variables as a user sets
#: them. One gunicorn worker per replica and one OpenMP thread per job: this host has 2 cores.
SCALE = {"MXCONV_SCALE_API": "3", "MXCONV_SCALE_WORKER": "2"}
VARIABLES = {
    "MXCONV_WORKERS": "1",
    "MXCONV_JOB_OMP_THREADS": "1",
    "MXCONV_JOB_LEASE_SECONDS": "4",  # a killed worker's job is recovered in seconds
}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    s = Stack()
    s.configure(**SCALE, **VARIABLES)
    started = time.monotonic()
    try:
        s.ensure_daemon()
        FIGURES["base_images_s"] = s.compose_sh("images")
        FIGURES["build_s"] = s.compose_sh("build")
        FIGURES["up_to_healthy_s"] = s.compose_sh("start")
        yield s
    finally:
        s.teardown()
        FIGURES["suite_s"] = round(time.monotonic() - started, 1)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.write_sep("-", "container suite figures")
    for key, value in FIGURES.items():
        terminalreporter.write_line(f"{key}: {json.dumps(value)}")
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "containers.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
