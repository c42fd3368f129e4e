"""What every section shares: the cases, timing, live servers and the table."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    name: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    padding: int
    large: bool = True

    def arrays(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.x_shape).astype(np.float32)
        w = rng.standard_normal(self.w_shape).astype(np.float32)
        return x, w

    @property
    def label(self) -> str:
        return f"{_shape(self.x_shape)}x{_shape(self.w_shape)}"


def _shape(s: tuple[int, ...]) -> str:
    return "(" + ",".join(map(str, s)) + ")"


CASES = [
    Case("resnet-3x3", (8, 64, 56, 56), (64, 64, 3, 3), 1),
    Case("stem-3ch", (1, 3, 224, 224), (64, 3, 3, 3), 1),
    Case("mix-1x1", (1, 256, 56, 56), (64, 256, 1, 1), 0),
    Case("seed-edge", (6, 6), (1, 2), 0, large=False),
]
#: The two largest cases (by bytes and FLOPs): the binary/base64 end-to-end targets apply here.
LARGEST = ("resnet-3x3", "stem-3ch")


def median_ms(fn: Callable[[], object], *, reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def interleaved_ms(fns: dict[str, Callable[[], object]], *, reps: int, warmup: int = 2) -> dict[str, float]:
    """Medians of ``fns`` run round-robin, so load from other processes hits each alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def reps_for(ms: float, budget_ms: float, lo: int = 3, hi: int = 31) -> int:
    return int(max(lo, min(hi, budget_ms // max(ms, 1e-3))))


# -- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    case: str
    what: str
    value: str
    versus: str = ""
    ratio: str = ""
    target: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[tuple[str, bool, str]] = field(default_factory=list)  # (name, holds, detail)
    profiles: list[tuple[str, str]] = field(default_factory=list)  # (title, text)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: str, **kwargs: str) -> None:
        self.rows.append(Row(*args, **kwargs))

    def target(self, name: str, holds: bool, detail: str) -> str:
        self.targets.append((name, holds, detail))
        return "holds" if holds else "MISSED"

    def render(self) -> str:
        head = Row("section", "case", "measure", "median", "versus", "ratio", "target")
        rows = [head, *self.rows]
        table = [(r.section, r.case, r.what, r.value, r.versus, r.ratio, r.target) for r in rows]
        cols = list(zip(*table, strict=True))
        widths = [max(len(c) for c in col) for col in cols]

        def line(cells: tuple[str, ...]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out = [line(tuple(cols[i][0] for i in range(len(cols))))]
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for j in range(1, len(rows)):
            out.append(line(tuple(cols[i][j] for i in range(len(cols)))))
        return "\n".join(out)


# -- live servers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def workers(self) -> list[int]:
        """The gunicorn worker pids: the grandchildren (mxconv serve) or children (gunicorn)."""
        kids = _children(self.process.pid)
        grandkids = [g for k in kids for g in _children(k)]
        return grandkids or kids


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return sorted(out)


@contextmanager
def serve(
    argv: list[str], env: dict[str, str] | None = None, ready_path: str = "/v1/health/ready"
) -> Iterator[Server]:
    """Run a server on a free 127.0.0.1 port until the block ends; stop it by its own pid."""
    port = free_port()
    full_env = {**os.environ, "MXCONV_HOST": "127.0.0.1", "MXCONV_PORT": str(port), **(env or {})}
    with tempfile.TemporaryDirectory(prefix="mxconv-bench-") as tmp:
        full_env.setdefault("MXCONV_DATA_DIR", str(Path(tmp) / "data"))
        log = Path(tmp) / "server.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(argv, env=full_env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        server = Server(f"http://127.0.0.1:{port}", proc, log)
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    if requests.get(server.url + ready_path, timeout=5).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready in 90 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield server
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def mxconv_server(env: dict[str, str] | None = None) -> contextmanager:  # type: ignore[valid-type]
    # Quiet access logs: the benchmark measures the service, not its terminal.
    return serve(
        [sys.executable, "-m", "mxconv.cli", "serve"], {"MXCONV_LOG_LEVEL": "WARNING", **(env or {})}
    )
