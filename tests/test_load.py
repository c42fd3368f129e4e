"""The short load test for CI: the full mix at concurrency 32 for 15 s under CI (5 s locally),
zero unexpected errors.

The 60 s runs at 32 and 64 are `python -m loadtest --spawn` (docs/security.md, "Hardening").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from loadtest import mix, run

from .conftest import start_server

#: 15 s under CI (CI=true); 5 s in a local `make test`.
DURATION = 15 if os.environ.get("CI") == "true" else 5


@pytest.mark.timeout(180)
def test_short_load_has_no_unexpected_errors(tmp_path: Path) -> None:
    server = start_server(tmp_path)  # the default config: 2 sync workers
    try:
        spec = requests.get(server.url + "/openapi.json", timeout=30).json()
        kinds = mix.available(mix.default_mix(), spec)
        result = run.run(server.url, kinds, concurrency=32, duration=DURATION, server_pid=server.process.pid)
        print(result.report())
        assert len(result.samples) > 100, "the server served almost nothing"
        assert not result.unexpected(), result.report()
        # No request may fail silently: every sample is a 2xx or an allowed status.
        assert set(result.by_status()) <= {200, 202, 429}
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-4000:]
