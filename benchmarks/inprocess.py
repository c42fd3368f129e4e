"""Section 1: the full compute.conv2d (numpy in, numpy out) against PyTorch and scipy."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import CASES, Case, Report, interleaved_ms, reps_for


def _torch(threads: int) -> Any:
    try:
        import torch
        import torch.nn.functional as F  # noqa: N812
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch, F


def competitors(case: Case, threads: int) -> dict[str, Any]:
    """The callables to time for one case: mxconv, torch and scipy where they apply."""
    from mxconv_server.compute import conv

    x, w = case.arrays()
    fns: dict[str, Any] = {"mxconv": lambda: conv.conv2d(x, w, padding=case.padding)}
    tf = _torch(threads)
    if tf is not None:
        torch, F = tf
        x4 = torch.from_numpy(x.reshape((1,) * (4 - x.ndim) + x.shape))
        w4 = torch.from_numpy(w.reshape((1,) * (4 - w.ndim) + w.shape))
        fns["torch"] = lambda: _torch_conv(torch, F, x4, w4, case.padding)
    if x.ndim == 2 and case.padding == 0:  # scipy.signal.correlate is plain 2-D correlation
        import scipy.signal

        fns["scipy"] = lambda: scipy.signal.correlate(x, w, mode="valid")
    return fns


def _torch_conv(torch: Any, F: Any, x: Any, w: Any, padding: int) -> np.ndarray:  # noqa: N803
    with torch.inference_mode():
        return F.conv2d(x, w, padding=padding).numpy()


def check(fns: dict[str, Any]) -> None:
    ref = np.asarray(fns["mxconv"]())
    for name, fn in fns.items():
        got = np.asarray(fn()).reshape(ref.shape)
        scale = max(1.0, float(np.abs(ref).max()))
        assert np.abs(got - ref).max() / scale < 1e-3, f"{name} disagrees with mxconv"


def run(report: Report, threads: int, quick: bool = False) -> dict[str, float]:
    """Times every case; returns the mxconv in-process median per case (for section 2)."""
    from mxconv_server.compute import conv

    medians: dict[str, float] = {}
    for case in CASES:
        fns = competitors(case, threads)
        check(fns)
        first = interleaved_ms({"mxconv": fns["mxconv"]}, reps=3, warmup=1)["mxconv"]
        reps = reps_for(first, 600 if quick else 1800, lo=5, hi=41)
        ms = interleaved_ms(fns, reps=reps)
        medians[case.name] = ms["mxconv"]
        x, w = case.arrays()
        flops = conv.plan_conv2d(x.shape, w.shape, padding=case.padding).flops
        path = _path(case)
        gflops = flops / (ms["mxconv"] * 1e-3) / 1e9
        label = f"{case.label} [{path}]"
        report.add("1 in-process", label, "compute.conv2d", f"{ms['mxconv']:.3f} ms", f"{gflops:.3g} GFLOP/s")
        for other in ("torch", "scipy"):
            if other not in ms:
                if other == "torch" or x.ndim == 2:
                    report.add("1 in-process", label, other, "n/a (not installed)")
                continue
            ratio = ms[other] / ms["mxconv"]
            what = "torch F.conv2d+.numpy()" if other == "torch" else "scipy.signal.correlate"
            target = ""
            if other == "torch" and case.large:
                target = report.target(
                    f"in-process {case.name} >= torch",
                    ratio >= 1.0,
                    f"{ratio:.2f}x torch ({ms['mxconv']:.2f} vs {ms[other]:.2f} ms)",
                )
                target = f">=1.0 {target}"
            gf = flops / (ms[other] * 1e-3) / 1e9
            report.add(
                "1 in-process",
                label,
                what,
                f"{ms[other]:.3f} ms",
                f"{gf:.3g} GFLOP/s",
                f"{ratio:.2f}",
                target,
            )
    return medians


def _path(case: Case) -> str:
    from mxconv_server.compute import conv

    plan = conv.plan_conv2d(case.x_shape, case.w_shape, padding=case.padding)
    return conv.estimate(plan, "float32", "cpu").label
