"""Section 5 of ``make bench``: every compute path over a sweep of shapes, in-process.

For each shape: the formulation ``compute.conv.estimate`` picks, GFLOP/s, and the cost model's
predicted seconds against the measured median. Targets: at least 5 GFLOP/s on every shape of
1 GFLOP or more, and every prediction within 3x of the measurement. A shape under the rate
target gets its operator profile (which oneDNN kernel ran, for how long) printed.

``python -m benchmarks.sweep`` runs it alone; ``--filter TEXT`` keeps the shapes whose label
contains TEXT.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RATE_TARGET = 5.0  # GFLOP/s, for every shape of at least MIN_GFLOP
MIN_GFLOP = 1.0
ACCURACY_TARGET = 3.0  # predicted/measured within this factor either way


@dataclass(frozen=True)
class Shape:
    """One sweep case: conv2d (x 4-D) or conv1d (x 3-D) with its options."""

    x: tuple[int, ...]
    w: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    dtype: str = "float32"
    note: str = ""

    @property
    def one_d(self) -> bool:
        return len(self.x) == 3

    @property
    def label(self) -> str:
        opts = " ".join(f"{k}={v}" for k, v in self.options.items())
        dt = "" if self.dtype == "float32" else " f64"
        return f"{'1d' if self.one_d else '2d'} {_s(self.x)}x{_s(self.w)}{' ' + opts if opts else ''}{dt}"


def _s(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(d) for d in shape) + ")"


SWEEP = [
    # single filters: image filtering, the seed's edge detection at scale
    Shape((1, 1, 2048, 2048), (1, 1, 64, 64), note="the issue's 34 GFLOP case"),
    Shape((1, 1, 4096, 4096), (1, 1, 6, 6)),
    Shape((1, 1, 1024, 1024), (1, 1, 128, 128)),
    Shape((1, 1, 4096, 4096), (1, 1, 32, 32), {"stride": 2}),
    Shape((1, 1, 2048, 2048), (1, 1, 17, 17), {"dilation": 3}),
    Shape((1, 1, 1024, 1024), (1, 1, 63, 63), {"padding": "same", "padding_mode": "circular"}),
    Shape((1, 1, 1024, 1024), (1, 1, 33, 33), {"padding": "full"}),
    Shape((1, 1, 1024, 1024), (1, 1, 32, 32), dtype="float64"),
    # few channels
    Shape((1, 3, 1024, 1024), (3, 3, 31, 31), {"padding": "same", "padding_mode": "reflect"}),
    Shape((1, 4, 512, 512), (4, 4, 31, 31)),
    Shape((1, 2, 1024, 1024), (2, 2, 21, 21), {"padding": "same", "flip": True}),
    Shape((1, 8, 512, 512), (8, 8, 25, 25), {"padding": "same", "padding_mode": "replicate"}),
    Shape((1, 32, 300, 300), (2, 32, 11, 11)),
    Shape((1, 64, 256, 256), (1, 64, 9, 9), note="a channel reduction"),
    # many channels: oneDNN's own kernels
    Shape((8, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    Shape((1, 512, 64, 64), (512, 512, 3, 3), {"padding": 1}),
    Shape((1, 3, 224, 224), (64, 3, 7, 7), {"stride": 2, "padding": 3}),
    Shape((16, 256, 56, 56), (64, 256, 1, 1)),
    Shape((1, 16, 256, 1024), (16, 16, 1, 128)),
    Shape((1, 32, 256, 256), (32, 32, 3, 3), {"dilation": 8}),
    Shape((1, 64, 128, 128), (64, 64, 3, 3), {"padding": 1}, dtype="float64"),
    # groups
    Shape((1, 256, 128, 128), (256, 1, 15, 15), {"groups": 256}),
    Shape((1, 64, 256, 256), (64, 2, 9, 9), {"groups": 32}),
    Shape((1, 128, 128, 128), (128, 16, 7, 7), {"groups": 8}),
    # 1-D signals
    Shape((1, 1, 131072), (1, 1, 65536)),
    Shape((1, 1, 4_000_000), (1, 1, 256)),
    Shape((4, 32, 8192), (32, 32, 63), {"padding": "same"}),
    Shape((1, 1, 1_000_000), (1, 1, 4096), {"padding": "full", "flip": True}),
    Shape((1, 8, 100_000), (8, 8, 1001), {"dilation": 2}),
    Shape((16, 1, 65536), (4, 1, 513)),
    Shape((1, 64, 65536), (64, 1, 255), {"groups": 64}),
    Shape((1, 1, 200_000), (1, 1, 8192), dtype="float64"),
    Shape((1, 1, 600_000), (1, 1, 33), {"padding": "same", "padding_mode": "reflect"}),
]


@dataclass
class Result:
    shape: Shape
    label: str
    kernel_class: str
    gflop: float
    measured_s: float
    predicted_s: float

    @property
    def rate(self) -> float:
        return self.gflop / self.measured_s

    @property
    def accuracy(self) -> float:
        """max(pred/meas, meas/pred): 1 is exact."""
        r = self.predicted_s / self.measured_s
        return max(r, 1 / r)


def prepare(shape: Shape) -> tuple[Callable[[], object], Any]:
    """The call to time (the public compute function) and the plan's estimate."""
    from mxconv_server.compute import conv

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape.x).astype(shape.dtype)
    w = rng.standard_normal(shape.w).astype(shape.dtype)
    if shape.one_d:
        p1 = conv.plan_conv1d(shape.x, shape.w, **shape.options)
        est = conv.estimate(p1.plan2d, shape.dtype)
        opts = {k: v for k, v in shape.options.items() if k != "flip"}
        flip = shape.options.get("flip", False)

        def call() -> object:
            return conv.conv1d(x, w, flip=flip, dtype=shape.dtype, plan=p1, **opts)

        return call, (est, p1.flops)
    plan = conv.plan_conv2d(shape.x, shape.w, **shape.options)
    est = conv.estimate(plan, shape.dtype)
    flip = shape.options.get("flip", False)
    return (lambda: conv.conv2d(x, w, flip=flip, dtype=shape.dtype, plan=plan)), (est, plan.flops)


def measure(shape: Shape, *, quick: bool = False) -> Result:
    call, (est, flops) = prepare(shape)
    first = time.perf_counter()
    call()  # warm-up (oneDNN builds its kernel on first use)
    once = time.perf_counter() - first
    reps = 1 if quick else (3 if once > 0.5 else 5)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return Result(shape, est.label, est.kernel_class, flops / 1e9, statistics.median(times), est.seconds)


def render(results: list[Result]) -> str:
    head = ("path", "class", "shape", "GFLOP", "measured", "predicted", "pred/meas", "GFLOP/s")
    rows = [head]
    for r in results:
        rows.append(
            (
                r.label,
                r.kernel_class,
                r.shape.label,
                f"{r.gflop:.3g}",
                f"{r.measured_s * 1e3:.1f} ms",
                f"{r.predicted_s * 1e3:.1f} ms",
                f"{r.predicted_s / r.measured_s:.2f}",
                f"{r.rate:.1f}" + ("" if r.gflop < MIN_GFLOP or r.rate >= RATE_TARGET else " LOW"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def targets(results: list[Result]) -> list[tuple[str, bool, str]]:
    big = [r for r in results if r.gflop >= MIN_GFLOP]
    slowest = min(big, key=lambda r: r.rate)
    worst = max(results, key=lambda r: r.accuracy)
    return [
        (
            f"sweep >= {RATE_TARGET:g} GFLOP/s on every shape of >= {MIN_GFLOP:g} GFLOP ({len(big)} shapes)",
            slowest.rate >= RATE_TARGET,
            f"slowest {slowest.rate:.1f} GFLOP/s: {slowest.shape.label} [{slowest.label}]",
        ),
        (
            f"cost model within {ACCURACY_TARGET:g}x on every shape ({len(results)} shapes)",
            worst.accuracy <= ACCURACY_TARGET,
            f"worst {worst.accuracy:.2f}x: {worst.shape.label} [{worst.label}], predicted "
            f"{worst.predicted_s * 1e3:.1f} ms, measured {worst.measured_s * 1e3:.1f} ms",
        ),
    ]


_PROFILE = """
import sys
from benchmarks import sweep
shape = sweep.SWEEP[int(sys.argv[1])]
call, _ = sweep.prepare(shape)
call()
"""


def profile(index: int) -> str:
    """The oneDNN primitives one call runs, from DNNL_VERBOSE: kernel, layout and milliseconds."""
    env = {**os.environ, "DNNL_VERBOSE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _PROFILE, str(index)], capture_output=True, text=True, env=env, timeout=600
    ).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith("dnnl_verbose,exec")]
    return "\n".join("  " + ",".join(ln.split(",")[3:5] + ln.split(",")[-2:]) for ln in lines[-12:])


def run(report: Any = None, *, quick: bool = False, only: str = "") -> list[Result]:
    results = []
    for shape in SWEEP:
        if only in shape.label:
            results.append(measure(shape, quick=quick))
            print(f"  {results[-1].shape.label}: {results[-1].rate:.1f} GFLOP/s", file=sys.stderr, flush=True)
    print("\nSection 5: the sweep (in-process, compute.conv2d / compute.conv.conv1d, medians)")
    print(render(results))
    for r in results:
        if r.gflop >= MIN_GFLOP and r.rate < RATE_TARGET:
            print(f"\n-- profile of {r.shape.label} [{r.label}] (oneDNN primitive, kernel, shape, ms):")
            print(profile(SWEEP.index(r.shape)))
    found = targets(results) if results else []
    if report is not None:
        for name, holds, detail in found:
            report.target(name, holds, detail)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--filter", default="")
    args = parser.parse_args(argv)
    from mxconv_server.config import Settings

    for key, value in Settings().worker_env().items():
        os.environ.setdefault(key, value)
    results = run(quick=args.quick, only=args.filter)
    for name, holds, detail in targets(results) if results else []:
        print(f"  {'HOLDS ' if holds else 'MISSED'}  {name}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
