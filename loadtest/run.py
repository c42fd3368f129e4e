"""The load generator: N threads, each a closed loop (send, wait, send) for a fixed time."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import requests

from .mix import JobIds, Kind


@dataclass
class Sample:
    kind: str
    status: int  # 0: no HTTP answer (connection error or timeout)
    latency: float  # seconds
    error: str = ""


@dataclass
class Result:
    concurrency: int
    duration: float
    samples: list[Sample]
    kinds: list[Kind]
    rss_start: dict[str, int] = field(default_factory=dict)  # "role pid" -> bytes
    rss_end: dict[str, int] = field(default_factory=dict)

    # -- figures --------------------------------------------------------------------------

    def by_status(self) -> Counter[int]:
        return Counter(s.status for s in self.samples)

    def unexpected(self) -> list[Sample]:
        allowed = {k.name: k.allowed for k in self.kinds}
        return [s for s in self.samples if not (200 <= s.status < 300 or s.status in allowed[s.kind])]

    def latencies(self, pred: Callable[[Sample], bool] = lambda s: True) -> list[float]:
        return sorted(s.latency for s in self.samples if pred(s) and 200 <= s.status < 300)

    def small_ratio(self) -> float:
        """p99 / p50 over the small requests."""
        small = {k.name for k in self.kinds if k.small}
        lat = self.latencies(lambda s: s.kind in small)
        return pct(lat, 99) / pct(lat, 50) if lat else 0.0

    def rss_growth(self) -> dict[str, float]:
        """Relative RSS change per process alive at both ends."""
        return {p: self.rss_end[p] / self.rss_start[p] - 1 for p in self.rss_start if p in self.rss_end}

    def report(self) -> str:
        n = len(self.samples)
        lines = [
            f"concurrency {self.concurrency}, {self.duration:.0f} s: "
            f"{n} requests, {n / self.duration:.1f} req/s",
            f"{'kind':14s} {'n':>6s} {'req/s':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}  statuses",
        ]
        for kind in self.kinds:
            mine = [s for s in self.samples if s.kind == kind.name]
            lat = self.latencies(lambda s, k=kind.name: s.kind == k)  # type: ignore[misc]
            statuses = dict(sorted(Counter(s.status for s in mine).items()))
            lines.append(
                f"{kind.name:14s} {len(mine):6d} {len(mine) / self.duration:7.1f} {ms(pct(lat, 50)):8.1f} "
                f"{ms(pct(lat, 99)):8.1f} {ms(lat[-1] if lat else 0):8.1f}  {statuses}"
            )
        lat = self.latencies()
        lines.append(
            f"{'all':14s} {n:6d} {n / self.duration:7.1f} {ms(pct(lat, 50)):8.1f} {ms(pct(lat, 99)):8.1f} "
            f"{ms(lat[-1] if lat else 0):8.1f}  {dict(sorted(self.by_status().items()))}"
        )
        lines.append(f"small requests: p99/p50 = {self.small_ratio():.2f} (target < 10)")
        bad = self.unexpected()
        errors = Counter(f"{s.kind} {s.status} {s.error}".strip() for s in bad)
        lines.append(f"unexpected errors: {len(bad)} {dict(errors) if errors else ''}".rstrip())
        growth = self.rss_growth()
        for proc in sorted(self.rss_start):
            end = self.rss_end.get(proc)
            end_s = f"{end / 2**20:7.1f} MiB ({growth[proc]:+.1%})" if end else "gone"
            lines.append(f"RSS {proc:28s} {self.rss_start[proc] / 2**20:7.1f} MiB -> {end_s}")
        for proc in sorted(set(self.rss_end) - set(self.rss_start)):
            lines.append(f"RSS {proc:28s} (new) {self.rss_end[proc] / 2**20:7.1f} MiB")
        return "\n".join(lines)


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


def ms(seconds: float) -> float:
    return seconds * 1000


def server_processes(root_pid: int) -> dict[str, psutil.Process]:
    """The service's processes by role: gunicorn workers (children of the gunicorn master)
    and any other child of `mxconv serve` (job workers)."""
    out: dict[str, psutil.Process] = {}
    root = psutil.Process(root_pid)
    for child in root.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
            parent = child.parent()
            if parent and "gunicorn" in " ".join(parent.cmdline()) and parent.pid != root_pid:
                role = "gunicorn-worker"
            elif "gunicorn" in cmd:
                role = "gunicorn-master"
            else:
                role = "job-worker" if "worker" in cmd or "jobs" in cmd else "child"
            out[f"{role} {child.pid}"] = child
        except psutil.Error:
            continue
    return out


def rss(procs: dict[str, psutil.Process]) -> dict[str, int]:
    out = {}
    for name, proc in procs.items():
        try:
            out[name] = proc.memory_info().rss
        except psutil.Error:
            pass
    return out


def run(
    url: str,
    kinds: list[Kind],
    *,
    concurrency: int,
    duration: float,
    api_key: str | None = None,
    server_pid: int | None = None,
    timeout: float = 60.0,
    warmup: int = 3,
    seed: int = 0,
) -> Result:
    """Drive the mix at ``concurrency`` closed-loop clients for ``duration`` seconds."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    ids = JobIds()
    weights = [k.weight for k in kinds]

    def send(session: requests.Session, kind: Kind, rng: random.Random) -> Sample | None:
        path = kind.path(ids, rng) if kind.path else kind.spec_path
        if path is None:
            return None
        start = time.perf_counter()
        try:
            resp = session.request(
                kind.method, url + path, data=kind.body, headers={**headers, **kind.headers}, timeout=timeout
            )
        except requests.RequestException as e:
            return Sample(kind.name, 0, time.perf_counter() - start, type(e).__name__)
        latency = time.perf_counter() - start
        if 200 <= resp.status_code < 300 and kind.on_success:
            kind.on_success(ids, resp.content)
        return Sample(kind.name, resp.status_code, latency)

    # Warm every worker's first-request costs (imports, MXNet kernels) out of the figures.
    with requests.Session() as session:
        for _ in range(warmup):
            for kind in kinds:
                send(session, kind, random.Random(seed))  # noqa: S311 - load mix, not crypto

    procs = server_processes(server_pid) if server_pid else {}
    result = Result(concurrency, duration, [], kinds, rss_start=rss(procs))
    stop_at = time.monotonic() + duration
    lock = threading.Lock()

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)  # noqa: S311 - load mix, not crypto
        mine: list[Sample] = []
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                kind = rng.choices(kinds, weights)[0]
                sample = send(session, kind, rng)
                if sample:
                    mine.append(sample)
        with lock:
            result.samples.extend(mine)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + timeout + 30)
    result.duration = time.monotonic() - started
    if procs:
        result.rss_end = rss(server_processes(server_pid) if server_pid else {})
    return result


def summary(result: Result) -> dict[str, Any]:
    lat = result.latencies()
    return {
        "concurrency": result.concurrency,
        "requests": len(result.samples),
        "rps": len(result.samples) / result.duration,
        "p50_ms": ms(pct(lat, 50)),
        "p99_ms": ms(pct(lat, 99)),
        "max_ms": ms(lat[-1] if lat else 0),
        "small_p99_over_p50": result.small_ratio(),
        "by_status": dict(result.by_status()),
        "unexpected": len(result.unexpected()),
        "rss_growth": result.rss_growth(),
    }


__all__ = ["Result", "Sample", "run", "server_processes", "summary"]
