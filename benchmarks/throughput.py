"""Section 3: small-request throughput, the seed's corr2d as JSON against a bare Flask echo
app under the same gunicorn settings. wrk drives both when installed; otherwise a bounded
Python load generator (keep-alive connections on threads) does, and the row says so."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .common import Report, mxconv_server, serve

SEED = json.dumps({"x": [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "kernel": [[0, 1], [2, 3]]})
CONNECTIONS = 16
TARGET = 0.7


def wrk_rate(url: str, seconds: float, lua: Path) -> float:
    out: Any = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "-s", str(lua), url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    out = out.stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return float(match.group(1))


def python_rate(url: str, seconds: float) -> float:
    """CONNECTIONS keep-alive clients on threads for ``seconds``; bounded in time and count."""
    parts = urlsplit(url)
    stop = time.monotonic() + seconds
    counts = [0] * CONNECTIONS
    body = SEED.encode()

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.monotonic() < stop and counts[i] < 1_000_000:
            conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url} answered {resp.status}")
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def run(report: Report, env: dict[str, str], seconds: float = 4.0, rounds: int = 2) -> None:
    tool = "wrk" if shutil.which("wrk") else "python"
    echo_argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:mxconv_server.gunicorn_conf",
        "benchmarks.echo_app:app",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(SEED)}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        quiet = {"MXCONV_LOG_LEVEL": "WARNING", **env}
        with mxconv_server(env) as mx, serve(echo_argv, quiet, ready_path="/ready") as echo:
            targets = {"mxconv": f"{mx.url}/v1/corr2d", "echo": f"{echo.url}/echo"}
            rates: dict[str, list[float]] = {"mxconv": [], "echo": []}
            for url in targets.values():  # warm up: every worker imports and answers
                _rate(tool, url, 1.0, lua)
            for _ in range(rounds):  # alternate, so load from elsewhere hits both alike
                for name, url in targets.items():
                    rates[name].append(_rate(tool, url, seconds, lua))
    mx_rate = sorted(rates["mxconv"])[len(rates["mxconv"]) // 2]
    echo_rate = sorted(rates["echo"])[len(rates["echo"]) // 2]
    ratio = mx_rate / echo_rate
    verdict = report.target(
        "small requests >= 0.7x bare Flask",
        ratio >= TARGET,
        f"{ratio:.2f}x ({mx_rate:.0f} vs {echo_rate:.0f} req/s)",
    )
    workers = env.get("MXCONV_WORKERS", "2")
    report.add(
        "3 throughput",
        f"seed corr2d JSON, {tool} -c{CONNECTIONS}, -w {workers}",
        "mxconv req/s",
        f"{mx_rate:.0f} req/s",
        f"bare Flask echo {echo_rate:.0f} req/s",
        f"{ratio:.2f}",
        f">={TARGET} {verdict}",
    )


def _rate(tool: str, url: str, seconds: float, lua: Path) -> float:
    return wrk_rate(url, seconds, lua) if tool == "wrk" else python_rate(url, seconds)
