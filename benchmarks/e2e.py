"""Sections 2 and 4: the service end to end through the client, and peak worker RSS."""

from __future__ import annotations

import functools
from pathlib import Path

import mxconv
import numpy as np

from .common import CASES, LARGEST, Case, Report, Server, interleaved_ms, mxconv_server, reps_for
from .floor import loopback_ms

TRANSPORTS = ("binary", "base64", "lists")
TARGET = {"binary": 1.3, "base64": 2.0}


def _call(client: mxconv.Client, case: Case, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return client.conv2d(x, w, padding=case.padding)


def run(report: Report, threads: int, env: dict[str, str], quick: bool = False) -> None:
    """Each case in each transport against a live server, interleaved with the same call
    in-process, so every ratio compares times taken under the same load."""
    from .inprocess import competitors

    with mxconv_server(env) as server:
        for case in CASES:
            x, w = case.arrays()
            local = competitors(case, threads)["mxconv"]
            clients = {t: mxconv.Client(server.url, transport=t) for t in TRANSPORTS}  # type: ignore[arg-type]
            calls = {t: functools.partial(_call, clients[t], case, x, w) for t in TRANSPORTS}
            expected = local()
            for t, call in calls.items():
                assert np.allclose(call(), expected, rtol=1e-4, atol=1e-3), f"{t} disagrees"
            # Binary and base64 interleaved with in-process; lists (seconds per call on the large
            # cases) in their own round, again against in-process.
            fast = {"in-process": local, "binary": calls["binary"], "base64": calls["base64"]}
            first = interleaved_ms(fast, reps=1, warmup=1)
            per_round = sum(first.values())
            ms = interleaved_ms(fast, reps=reps_for(per_round, 600 if quick else 4500, lo=5, hi=25), warmup=0)
            first_lists = interleaved_ms({"lists": calls["lists"]}, reps=1, warmup=0)["lists"]
            slow = interleaved_ms(
                {"in-process": local, "lists": calls["lists"]},
                reps=reps_for(first_lists, 300 if quick else 2500, lo=3, hi=15),
                warmup=0,
            )
            if case.large:
                _floor_row(report, case, x, w, expected, ms["in-process"])
            for t in TRANSPORTS:
                base = (slow if t == "lists" else ms)["in-process"]
                took = (slow if t == "lists" else ms)[t]
                ratio = took / base
                target = ""
                if case.name in LARGEST and t in TARGET:
                    verdict = report.target(
                        f"end-to-end {t} {case.name} <= {TARGET[t]}x in-process",
                        ratio <= TARGET[t],
                        f"{ratio:.2f}x ({took:.2f} vs {base:.2f} ms in-process)",
                    )
                    target = f"<={TARGET[t]} {verdict}"
                report.add(
                    "2 end-to-end",
                    case.label,
                    f"client, {t}",
                    f"{took:.3f} ms",
                    f"in-process {base:.3f} ms",
                    f"{ratio:.2f}",
                    target,
                )


def _floor_row(report: Report, case: Case, x: np.ndarray, w: np.ndarray, y: np.ndarray, base: float) -> None:
    """The binary request's and answer's bytes moved by bare sockets (benchmarks/floor.py),
    added to the in-process time: the best ratio any request-then-answer design can reach."""
    request_bytes = len(mxconv.tensors.multipart_body({"x": x, "weight": w}, {"padding": case.padding}))
    response_bytes = sum(len(p) for p in mxconv.tensors.npy_parts(y))
    moved = loopback_ms(request_bytes, response_bytes)
    ratio = (base + moved) / base
    note = ""
    if case.name in LARGEST:
        note = f"<={TARGET['binary']} " + ("reachable" if ratio <= TARGET["binary"] else "out of reach")
        report.notes.append(
            f"{case.name}: moving its {request_bytes / 1e6:.1f} MB request and {response_bytes / 1e6:.1f} MB "
            f"answer between two processes over loopback TCP, no HTTP, takes {moved:.2f} ms: in-process "
            f"{base:.2f} ms + that = {ratio:.2f}x, the floor under the binary end-to-end ratio"
        )
    report.add(
        "2 end-to-end",
        case.label,
        "floor: bare TCP, same bytes",
        f"{moved:.3f} ms",
        f"in-process {base:.3f} ms",
        f"{ratio:.2f}",
        note,
    )


# -- section 4 -----------------------------------------------------------------------------


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def rss(report: Report, env: dict[str, str]) -> None:
    """Peak RSS of the worker serving each large case (binary transport) above its RSS just
    before, against 3x the bytes of the case's inputs and outputs. Two figures per case: the
    first request of that case on a fresh worker (oneDNN builds its kernels, the allocators
    grow their pools: a one-time cost) and the steady state (the same case again). The target
    is judged on the larger of the two."""
    with mxconv_server({**env, "MXCONV_WORKERS": "1"}) as server:  # one worker: it serves all
        client = mxconv.Client(server.url, transport="binary")
        for _ in range(2):  # MXNet loaded and answering: the baseline
            client.corr2d(np.eye(3), np.ones((2, 2)))
        (pid,) = server.workers()
        for case in CASES:
            if not case.large:
                continue
            x, w = case.arrays()
            io_bytes = x.nbytes + w.nbytes + int(np.prod(_out_shape(case))) * 4
            limit = 3 * io_bytes
            growth = {}
            for phase in ("first", "steady"):
                resettable = _reset_peak(pid)
                base = _status(pid, "VmRSS") if resettable else _status(pid, "VmHWM")
                for _ in range(1 if phase == "first" else 3):
                    client.conv2d(x, w, padding=case.padding)
                growth[phase] = _status(pid, "VmHWM") - base
                if not resettable:
                    report.notes.append("RSS: /proc/PID/clear_refs is not writable; peaks are since start")
            worst = max(growth.values())
            verdict = report.target(
                f"peak RSS {case.name} <= baseline + 3x I/O bytes",
                worst <= limit,
                f"+{worst / 2**20:.1f} MiB vs {limit / 2**20:.1f} MiB allowed "
                f"(first request +{growth['first'] / 2**20:.1f}, then +{growth['steady'] / 2**20:.1f})",
            )
            for phase in ("first", "steady"):
                report.add(
                    "4 worker RSS",
                    case.label,
                    f"peak - baseline, {phase} request" + ("" if phase == "first" else "s"),
                    f"{growth[phase] / 2**20:.1f} MiB",
                    f"3x I/O {limit / 2**20:.1f} MiB",
                    f"{growth[phase] / limit:.2f}",
                    f"<=1.0 {verdict}",
                )


def _out_shape(case: Case) -> tuple[int, ...]:
    from mxconv_server.compute import conv

    return conv.plan_conv2d(case.x_shape, case.w_shape, padding=case.padding).out_shape


def server_for_profile(env: dict[str, str]) -> object:
    return mxconv_server(env)


__all__ = ["Server", "run", "rss"]
