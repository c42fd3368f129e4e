"""Job worker processes beside gunicorn, as one supervised unit (used by ``mxconv serve``).

A worker that dies is restarted (after a short, growing delay if it keeps dying at once);
a stop signal goes to every worker, and any still alive after the grace period is killed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger("mxconv.jobs.supervisor")


def worker_command() -> list[str]:
    return [sys.executable, "-m", "mxconv_server.jobs.worker"]


def worker_env(env: Mapping[str, str], threads: int, explicit: bool) -> dict[str, str]:
    """OpenMP threads for a job worker: MXCONV_JOB_OMP_THREADS when set, else an
    OMP_NUM_THREADS already in the environment, else cores / job workers; always passive
    waiting, so idle OpenMP threads do not spin against gunicorn's workers."""
    out = dict(env)
    if explicit or "OMP_NUM_THREADS" not in out:
        out["OMP_NUM_THREADS"] = str(threads)
    out.setdefault("OMP_WAIT_POLICY", "passive")
    return out


@dataclass
class _Slot:
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0


@dataclass
class WorkerPool:
    count: int
    env: Mapping[str, str]
    grace_seconds: float = 30.0
    command: list[str] = field(default_factory=worker_command)
    stopping: bool = False
    restarts: int = 0

    def __post_init__(self) -> None:
        self.slots = [_Slot() for _ in range(self.count)]

    def _spawn(self, slot: _Slot) -> None:
        slot.process = subprocess.Popen(self.command, env=dict(self.env))  # noqa: S603
        slot.started = time.monotonic()

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process is not None and s.process.poll() is None]

    def check(self) -> None:
        """Restart dead workers (unless stopping)."""
        now = time.monotonic()
        for i, slot in enumerate(self.slots):
            proc = slot.process
            if self.stopping or proc is None or proc.poll() is None:
                continue
            if slot.restart_at == 0.0:
                quick = now - slot.started < 5
                slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
                delay = min(30.0, 0.5 * 2 ** max(0, slot.quick_deaths - 1)) if quick else 0.0
                slot.restart_at = now + delay
                log.warning(  # through the service's log format (JSON by default)
                    "job worker %d (pid %d) exited with %s; restarting in %.1f s",
                    i,
                    proc.pid,
                    proc.returncode,
                    delay,
                )
            if now >= slot.restart_at:
                slot.restart_at = 0.0
                self._spawn(slot)
                self.restarts += 1

    def signal(self, signum: int) -> None:
        self.stopping = True
        for pid in self.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """SIGTERM every worker, wait for them to give their jobs back, kill stragglers."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait(10)

    def supervise(self, main: subprocess.Popen[bytes], interval: float = 0.5) -> int:
        """Keep the workers alive while ``main`` (gunicorn) runs; returns its exit code."""
        while True:
            try:
                return main.wait(interval)
            except subprocess.TimeoutExpired:
                self.check()
