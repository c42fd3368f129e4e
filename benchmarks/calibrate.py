"""Fit the cost model's coefficients (``compute/cost_model.json``) on this machine.

``python -m benchmarks.calibrate`` times a calibration set (its own shapes, none of the sweep's,
so that the sweep tests the fit), each in the formulation named, then fits every coefficient by
least squares on log(predicted / measured) and prints the fit. ``--write`` saves it to
``server/mxconv_server/compute/cost_model.json``; then ``python -m benchmarks.sweep`` shows
how well it predicts shapes it has not seen.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np

# (x shape, w shape, options, dtype, formulation): "auto", "direct" or phases "PHxPW"
CALIBRATION: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any], str, str]] = [
    ((1, 16, 160, 160), (16, 16, 3, 3), {}, "float32", "direct"),
    ((1, 16, 120, 120), (16, 16, 9, 9), {}, "float32", "direct"),
    ((1, 64, 64, 64), (64, 64, 5, 5), {}, "float32", "direct"),
    ((1, 128, 40, 40), (128, 128, 3, 3), {}, "float32", "direct"),
    ((1, 1, 200, 200), (16, 1, 9, 9), {}, "float32", "direct"),
    ((4, 64, 40, 40), (32, 64, 1, 1), {"stride": 2}, "float32", "direct"),
    ((1, 16, 1, 60000), (16, 16, 1, 33), {}, "float32", "direct"),
    ((1, 16, 300, 300), (8, 16, 5, 5), {}, "float32", "direct"),
    ((1, 16, 1, 40000), (16, 16, 1, 200), {}, "float32", "direct"),
    ((1, 16, 1, 30000), (16, 16, 1, 1000), {}, "float32", "direct"),
    ((1, 16, 80, 80), (16, 16, 60, 60), {}, "float32", "direct"),
    ((1, 8, 1, 40000), (8, 8, 1, 500), {"dilation": 2}, "float32", "direct"),
    ((1, 64, 200, 200), (64, 1, 7, 7), {"groups": 64}, "float32", "direct"),
    ((1, 16, 300, 300), (16, 1, 3, 3), {"groups": 16}, "float32", "direct"),
    ((1, 8, 200, 200), (4, 8, 3, 3), {}, "float32", "direct"),
    ((1, 32, 150, 150), (2, 32, 5, 5), {}, "float32", "direct"),
    ((1, 1, 400, 400), (1, 1, 5, 5), {}, "float32", "direct"),
    ((1, 1, 150, 150), (1, 1, 8, 8), {}, "float32", "direct"),
    ((1, 1, 80, 80), (1, 1, 16, 16), {}, "float32", "direct"),
    ((1, 1, 1, 6000), (1, 1, 1, 300), {}, "float32", "direct"),
    ((1, 1, 300, 300), (1, 1, 8, 8), {}, "float32", "direct"),
    ((1, 2, 60, 60), (2, 2, 24, 24), {}, "float32", "direct"),
    ((1, 1, 6, 6), (1, 1, 1, 2), {}, "float32", "direct"),
    ((1, 1, 16, 16), (1, 1, 3, 3), {}, "float32", "direct"),
    ((1, 8, 16, 16), (16, 8, 3, 3), {}, "float32", "direct"),
    ((1, 2, 120, 120), (1, 2, 11, 11), {}, "float32", "direct"),
    ((1, 16, 100, 100), (16, 16, 5, 5), {}, "float64", "direct"),
    ((1, 64, 50, 50), (64, 64, 3, 3), {}, "float64", "direct"),
    ((1, 1, 300, 300), (4, 1, 5, 5), {}, "float64", "direct"),
    ((2, 128, 40, 40), (64, 128, 1, 1), {}, "float32", "auto"),
    ((1, 1, 800, 800), (1, 1, 24, 24), {}, "float32", "4x4"),
    ((1, 1, 800, 800), (1, 1, 24, 24), {}, "float32", "8x8"),
    ((1, 1, 1200, 1200), (1, 1, 9, 9), {}, "float32", "2x8"),
    ((1, 1, 1200, 1200), (1, 1, 9, 9), {}, "float32", "4x4"),
    ((1, 3, 500, 500), (3, 3, 15, 15), {}, "float32", "2x2"),
    ((1, 3, 500, 500), (3, 3, 15, 15), {}, "float32", "4x4"),
    ((1, 32, 160, 160), (1, 32, 5, 5), {}, "float32", "4x4"),
    ((1, 1, 1, 300_000), (1, 1, 1, 1000), {}, "float32", "1x16"),
    ((1, 1, 1, 300_000), (1, 1, 1, 120), {}, "float32", "1x8"),
    ((1, 4, 1, 200_000), (2, 4, 1, 40), {}, "float32", "1x16"),
    ((1, 1, 2000, 2000), (1, 1, 16, 16), {"stride": 2}, "float32", "2x2"),
    ((1, 1, 600, 600), (1, 1, 20, 20), {}, "float64", "4x4"),
    ((1, 1, 1, 100_000), (1, 1, 1, 2000), {}, "float64", "1x16"),
]

PARAMS = ["t0", "byte_s", "rearrange_byte_s"]
CLASS_PARAMS = ["peak", "k_half"]
#: Held fixed: the reference kernel's rate does not grow with the dot product's length.
FIXED = {"ref.k_half"}
#: Bounds that keep a fit to few samples from extrapolating to nonsense.
BOUNDS = {"peak": (1e7, 3e11), "k_half": (0.1, 1e4), "t0": (1e-6, 1e-3), "byte_s": (1e-12, 1e-8)}


def _formulation(plan: Any, dtype: str, name: str) -> Any:
    from mxconv_server.compute import conv, cost

    if name == "auto":
        return conv.estimate(plan, dtype)
    shape = conv.cost_shape(plan, dtype, "cpu")
    if name == "direct":
        return cost.direct(shape)
    ph, pw = (int(v) for v in name.split("x"))
    return cost.phase(shape, (ph, pw))


def measure() -> list[tuple[Any, Any, float]]:
    """(cost shape, estimate, measured seconds) for every calibration case."""
    from mxconv_server.compute import conv

    rng = np.random.default_rng(0)
    out = []
    for xs, ws, options, dtype, name in CALIBRATION:
        plan = conv.plan_conv2d(xs, ws, **options)
        est = _formulation(plan, dtype, name)
        x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
        conv.conv2d(x, w, dtype=dtype, plan=plan, formulation=est)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            conv.conv2d(x, w, dtype=dtype, plan=plan, formulation=est)
            times.append(time.perf_counter() - t)
        seconds = statistics.median(times)
        out.append((conv.cost_shape(plan, dtype, "cpu"), est, seconds))
        print(
            f"  {xs}x{ws} {options} {dtype} {est.label}: {seconds * 1e3:.2f} ms", file=sys.stderr, flush=True
        )
    return out


def fit(samples: list[tuple[Any, Any, float]]) -> dict[str, Any]:
    from mxconv_server.compute import cost
    from scipy.optimize import least_squares

    start = cost.coefficients()
    classes = sorted({est.kernel_class for _, est, _ in samples})
    names = [n for n in PARAMS + [f"{c}.{p}" for c in classes for p in CLASS_PARAMS] if n not in FIXED]

    def unpack(v: np.ndarray) -> dict[str, Any]:
        co = json.loads(json.dumps(start))
        for name, value in zip(names, np.exp(v), strict=True):
            if "." in name:
                cls, p = name.split(".")
                co["classes"][cls][p] = float(value)
            else:
                co[name] = float(value)
        return co

    def predict(co: dict[str, Any], shape: Any, est: Any) -> float:
        cost.coefficients.cache_clear()
        cost.choose.cache_clear()
        original = cost.coefficients
        cost.coefficients = lambda: co  # type: ignore[assignment]
        try:
            again = cost.direct(shape) if est.split is None else cost.phase(shape, est.split.phases)
            if est.path == "gemm-1x1":
                again = cost.direct(shape, fused_1x1=True)
        finally:
            cost.coefficients = original  # type: ignore[assignment]
        assert again is not None
        return again.seconds

    def residuals(v: np.ndarray) -> np.ndarray:
        co = unpack(v)
        return np.array([np.log(predict(co, s, e) / m) for s, e, m in samples])

    x0 = []
    for name in names:
        if "." in name:
            cls, p = name.split(".")
            x0.append(np.log(max(start["classes"][cls][p], 1e-3)))
        else:
            x0.append(np.log(start[name]))
    lo = [np.log(BOUNDS.get(n.split(".")[-1], BOUNDS["byte_s"])[0]) for n in names]
    hi = [np.log(BOUNDS.get(n.split(".")[-1], BOUNDS["byte_s"])[1]) for n in names]
    x0 = np.clip(np.array(x0), np.array(lo) + 1e-9, np.array(hi) - 1e-9)
    result = least_squares(residuals, x0, bounds=(lo, hi), method="trf", loss="soft_l1", f_scale=0.3)
    fitted = unpack(result.x)
    cost.coefficients.cache_clear()
    cost.choose.cache_clear()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fitted["calibrated"] = (
        f"python -m benchmarks.calibrate --write, {now}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, {len(samples)} shapes, "
        f"worst residual {np.exp(np.abs(result.fun)).max():.2f}x"
    )
    for (_, est, m), r in zip(samples, result.fun, strict=True):
        print(f"  {est.label:11s} {est.kernel_class:9s} pred/meas {np.exp(r):.2f}  ({m * 1e3:.2f} ms)")
    return fitted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibrate", description=__doc__)
    parser.add_argument("--write", action="store_true", help="save the fit to compute/cost_model.json")
    args = parser.parse_args(argv)
    from mxconv_server.config import Settings

    for key, value in Settings().worker_env().items():
        os.environ.setdefault(key, value)
    from mxconv_server.compute import cost

    fitted = fit(measure())
    text = json.dumps(fitted, indent=2) + "\n"
    print(text)
    if args.write:
        cost.COEFFICIENTS_FILE.write_text(text)
        print(f"written to {cost.COEFFICIENTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
