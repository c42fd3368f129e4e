"""Where the time goes when a target is missed: pyinstrument in-process (and on the client),
py-spy on a live gunicorn worker. Both are optional: without them the section says so."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path


def pyinstrument_text(fn: Callable[[], object], seconds: float = 2.0, lines: int = 28) -> str:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return "(pyinstrument not installed: pip install -e '.[bench]')"
    profiler = Profiler(interval=0.0005)
    profiler.start()
    stop = time.monotonic() + seconds
    calls = 0
    while time.monotonic() < stop or calls < 3:
        fn()
        calls += 1
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=True)
    tree = text.splitlines()
    start = next((i for i, ln in enumerate(tree) if ln.startswith("Profile at")), -1) + 1
    body = [ln for ln in tree[start:] if ln.strip()]
    return f"{calls} calls\n" + "\n".join(body[:lines])


def pyspy_top(pids: list[int], load: Callable[[], object], seconds: float = 3.0, top: int = 14) -> str:
    """Sample the worker pids with py-spy while ``load`` runs; the functions holding the most
    samples (own time, and total time including callees)."""
    beside = Path(sys.executable).parent / "py-spy"  # the venv's, when it is not on PATH
    exe = str(beside) if beside.exists() else shutil.which("py-spy")
    if exe is None:
        return "(py-spy not installed: pip install -e '.[bench]')"
    with tempfile.TemporaryDirectory() as tmp:
        outs = []
        procs = []
        for pid in pids:
            out = Path(tmp) / f"{pid}.txt"
            outs.append(out)
            procs.append(
                subprocess.Popen(
                    [
                        exe,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(int(seconds)),
                        "--rate",
                        "500",
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(0.5)
        done = threading.Event()

        def drive() -> None:
            while not done.is_set():
                load()

        driver = threading.Thread(target=drive)
        driver.start()
        for p in procs:
            p.wait(seconds + 30)
        done.set()
        driver.join()
        own: collections.Counter[str] = collections.Counter()
        total: collections.Counter[str] = collections.Counter()
        samples = 0
        for out in outs:
            if not out.exists():
                continue
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if not count.isdigit():
                    continue
                n = int(count)
                frames = [_short(f) for f in stack.split(";")]
                if any("wait" in f and "sync.py" in f for f in frames[-1:]) or frames[-1].startswith(
                    "select"
                ):
                    continue  # an idle worker waiting for a connection
                samples += n
                own[frames[-1]] += n
                for f in set(frames):
                    total[f] += n
    if not samples:
        return "(py-spy recorded no busy samples; ptrace may be restricted here)"
    lines = [f"{samples} busy samples over {len(pids)} worker(s); share of busy time:"]
    lines.append("  own   total  function (own = in the function itself; total = with its callees)")
    trunk = {name for name, n in total.items() if n >= 0.9 * samples}  # gunicorn/Flask plumbing
    ranked = [(n, name) for name, n in total.items() if name not in trunk]
    ranked.sort(reverse=True)
    for n, name in ranked[:top]:
        lines.append(f"  {own[name] / samples:4.0%}  {n / samples:5.0%}  {name}")
    lines.append(
        "  top own time: " + ", ".join(f"{name} {n / samples:.0%}" for name, n in own.most_common(6))
    )
    return "\n".join(lines)


def _short(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"
