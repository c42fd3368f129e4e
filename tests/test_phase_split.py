"""The phase split and the cost model that chooses it: every formulation against the loop
oracle and scipy, the pieces a long convolution runs in, and the oneDNN kernel each one gets."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from mxconv_server.compute import conv, cost, deadline, kernels
from scipy import signal

from . import oracle

SHAPES = [
    # x shape, w shape, plan options
    ((1, 1, 23, 21), (1, 1, 7, 9), {}),
    ((2, 3, 17, 19), (2, 3, 8, 5), {"stride": 2}),
    ((1, 4, 19, 21), (4, 2, 5, 6), {"groups": 2, "dilation": (2, 3)}),
    ((1, 1, 1, 300), (1, 1, 1, 70), {}),
    ((2, 2, 1, 129), (4, 2, 1, 17), {"stride": (1, 3), "padding": [0, 0, 5, 4]}),
    ((1, 2, 16, 17), (3, 2, 7, 7), {"padding": "same", "padding_mode": "reflect"}),
    ((1, 1, 16, 17), (1, 1, 9, 9), {"padding": [3, 4, 5, 2], "padding_mode": "circular"}),
    ((1, 1, 16, 17), (1, 1, 9, 9), {"padding": "full", "padding_mode": "replicate", "flip": True}),
    ((2, 1, 40, 40), (1, 1, 8, 8), {"stride": (3, 2)}),
    ((1, 6, 15, 15), (6, 1, 4, 4), {"groups": 6}),
]


def _every_formulation(plan: conv.Conv2dPlan, dtype: str) -> list[cost.Estimate]:
    return cost.candidates(conv.cost_shape(plan, dtype, "cpu"), exhaustive=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("xs", "ws", "options"), SHAPES)
def test_every_formulation_matches_the_oracle(xs, ws, options, dtype) -> None:
    rng = np.random.default_rng(hash((xs, ws)) % 2**32)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    plan = conv.plan_conv2d(xs, ws, b.shape, **options)
    flip = options.get("flip", False)
    expected = oracle.conv2d(
        x,
        w[:, :, ::-1, ::-1] if flip else w,
        b,
        stride=plan.stride,
        pads=plan.pads,
        padding_mode=plan.padding_mode,
        dilation=plan.dilation,
        groups=plan.groups,
    )
    formulations = _every_formulation(plan, dtype)
    assert len({f.label for f in formulations}) >= 4  # the direct call and several splits
    for est in formulations:
        y = conv.conv2d(x, w, b, flip=flip, dtype=dtype, plan=plan, formulation=est)
        assert y.shape == expected.shape and y.dtype == np.dtype(dtype), est.label
        tol = 1e-4 if dtype == "float32" else 1e-10
        np.testing.assert_allclose(y, expected, rtol=tol, atol=tol, err_msg=est.label)


def test_a_single_large_filter_takes_the_phase_split_and_matches_scipy() -> None:
    """The image-filtering shape that used to run at 0.16 GFLOP/s (oneDNN's reference kernel)."""
    rng = np.random.default_rng(1)
    x, k = rng.random((300, 280)).astype(np.float32), rng.random((40, 33)).astype(np.float32)
    plan = conv.plan_conv2d(x.shape, k.shape)
    est = conv.estimate(plan)
    assert est.path == "phase" and est.kernel_class == "avx512", est
    y = conv.conv2d(x, k, plan=plan)
    np.testing.assert_allclose(y, signal.correlate2d(x, k, mode="valid"), rtol=2e-5, atol=2e-3)


def test_a_long_signal_kernel_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    x, k = rng.standard_normal(20_000), rng.standard_normal(5_000)
    plan = conv.plan_conv2d((1, 1, 1, x.size), (1, 1, 1, k.size))
    assert conv.choose_path(plan, "float64") == "phase"
    y = conv.conv2d(x.reshape(1, 1, 1, -1), k.reshape(1, 1, 1, -1), dtype="float64", plan=plan)
    np.testing.assert_allclose(y.ravel(), np.correlate(x, k, mode="valid"), rtol=1e-9, atol=1e-9)


def test_long_work_runs_in_pieces_with_the_same_answer(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 2, 30, 26)), rng.standard_normal((4, 2, 5, 5))
    whole = conv.conv2d(x, w, padding=2, padding_mode="reflect", dtype="float64")
    seen: list[int] = []
    real_check = deadline.check
    monkeypatch.setattr(kernels.deadline, "check", lambda: (seen.append(1), real_check()))
    monkeypatch.setattr(kernels, "TILE_SECONDS", 1e-7)  # every estimate is now "long"
    pieced = conv.conv2d(x, w, padding=2, padding_mode="reflect", dtype="float64")
    assert len(seen) > 3 * 10  # every batch item, in many row pieces
    np.testing.assert_allclose(pieced, whole, rtol=1e-12, atol=1e-12)


def test_a_passed_deadline_stops_the_work_between_pieces(monkeypatch) -> None:
    monkeypatch.setattr(kernels, "TILE_SECONDS", 1e-7)
    x, w = np.ones((1, 1, 64, 64)), np.ones((1, 1, 9, 9))
    with deadline.limit(0.0), pytest.raises(deadline.DeadlineExceeded, match="past its limit of 0 s"):
        conv.conv2d(x, w)
    assert conv.conv2d(x, w).shape == (1, 1, 56, 56)  # outside the block there is no deadline


# The kernel oneDNN prints for each class of the model (DNNL_VERBOSE's implementation field).
_IMPLEMENTATIONS = {
    "avx512": "jit:avx512_common",
    "avx2": "jit:avx2",
    "depthwise": "jit_dw:avx512_common",
    "gemm": "gemm:jit",
    "ref": "ref:any",
}
_GUARD = """
import json, sys
import numpy as np
from mxconv_server.compute import conv
for xs, ws, groups in json.loads(sys.argv[1]):
    plan = conv.plan_conv2d(xs, ws, groups=groups)
    est = conv.estimate(plan)
    print("CASE", est.label, est.kernel_class, flush=True)
    conv.conv2d(np.ones(xs, np.float32), np.ones(ws, np.float32), plan=plan)
"""
GUARD_CASES = [
    ((1, 16, 40, 40), (32, 16, 3, 3), 1),  # avx512 direct
    ((1, 16, 40, 40), (8, 16, 3, 3), 1),  # avx2 direct (too small to split)
    ((1, 32, 40, 40), (32, 1, 5, 5), 32),  # depthwise direct
    ((1, 4, 30, 30), (2, 4, 3, 3), 1),  # gemm (too small to split)
    ((1, 1, 30, 30), (1, 1, 7, 7), 1),  # ref (too small to split)
    ((1, 1, 600, 600), (1, 1, 48, 48), 1),  # a large single filter: split, then avx512
    ((1, 1, 1, 80_000), (1, 1, 1, 2_000), 1),  # a long 1-D kernel: split, then avx512
    ((1, 64, 200, 200), (1, 64, 9, 9), 1),  # a channel reduction: split, then avx512
]


def test_each_class_gets_the_onednn_kernel_the_model_assumes() -> None:
    """The model's kernel classes are oneDNN 2.4's choices (mxnet==1.9.1 is pinned): if an
    upgrade changed them, the phase split could land on a slow kernel and nothing else would
    notice."""
    proc = subprocess.run(
        [sys.executable, "-c", _GUARD, json.dumps(GUARD_CASES)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "DNNL_VERBOSE": "1", "OMP_NUM_THREADS": "1"},
        check=True,
    )
    runs: list[tuple[str, str, list[str]]] = []
    for line in proc.stdout.splitlines():
        if line.startswith("CASE"):
            _, label, cls = line.split()
            runs.append((label, cls, []))
        elif line.startswith("dnnl_verbose,exec,cpu,convolution,"):
            runs[-1][2].append(line.split(",")[4])
    assert len(runs) == len(GUARD_CASES)
    for (label, cls, impls), case in zip(runs, GUARD_CASES, strict=True):
        assert impls, f"{case}: no oneDNN convolution ran"
        assert all(_IMPLEMENTATIONS[cls] in impl for impl in impls), (case, label, cls, impls)
    assert [label.split("-")[0] for label, _, _ in runs[-3:]] == ["phase"] * 3
