"""The tuned compute paths (oneDNN conv, 1x1 GEMM) against the numpy-loop oracle,
and the zero-copy rules: inputs are never written, results never alias anything MXNet reuses."""

from __future__ import annotations

import numpy as np
import pytest
from mxconv_server.compute import conv, kernels

from . import oracle

CASES = [
    # x shape, w shape, stride, pads, dilation, padding_mode, path
    ((1, 3, 12, 11), (32, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), "zeros", "onednn"),
    ((2, 2, 9, 10), (16, 2, 2, 3), (2, 1), (0, 0, 0, 0), (1, 2), "zeros", "onednn"),
    ((2, 3, 10, 10), (32, 3, 3, 3), (1, 2), (1, 0, 2, 1), (1, 1), "reflect", "onednn"),
    ((1, 8, 7, 9), (5, 8, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), "zeros", "gemm-1x1"),
    ((3, 8, 7, 9), (5, 8, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), "zeros", "gemm-1x1"),
    ((2, 8, 7, 9), (5, 8, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), "zeros", "onednn"),
    ((2, 16, 9, 9), (4, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), "zeros", "onednn"),
    ((1, 1, 6, 6), (1, 1, 1, 2), (1, 1), (0, 0, 0, 0), (1, 1), "zeros", "onednn"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("xs", "ws", "stride", "pads", "dilation", "mode", "path"), CASES)
def test_each_path_matches_the_oracle(xs, ws, stride, pads, dilation, mode, path, bias, dtype) -> None:
    rng = np.random.default_rng(hash((xs, ws)) % 2**32)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    plan = conv.plan_conv2d(
        xs,
        ws,
        None if b is None else b.shape,
        stride=stride,
        padding=list(pads),
        padding_mode=mode,
        dilation=dilation,
    )
    assert conv.choose_path(plan, dtype, "cpu") == path
    y = conv.conv2d(
        x, w, b, stride=stride, padding=list(pads), padding_mode=mode, dilation=dilation, dtype=dtype
    )
    expected = oracle.conv2d(x, w, b, stride=stride, pads=pads, padding_mode=mode, dilation=dilation)
    assert y.dtype == np.dtype(dtype) and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4 if dtype == "float32" else 1e-10, atol=1e-4)
    assert y.flags.writeable and y.flags.c_contiguous


@pytest.mark.parametrize(
    ("xs", "ws"),
    [
        ((1, 3, 16, 16), (16, 3, 3, 3)),
        ((2, 8, 5, 5), (4, 8, 1, 1)),
        ((1, 16, 8, 8), (16, 16, 3, 3)),
        ((1, 16, 64, 64), (16, 16, 3, 3)),  # over ZERO_COPY_MIN_BYTES: wrapped, not copied
        ((1, 3, 128, 128), (32, 3, 3, 3)),
        ((1, 64, 32, 32), (8, 64, 1, 1)),
    ],
)
def test_inputs_are_never_modified(xs, ws) -> None:
    """A large x travels to MXNet without a copy: MXNet must only read it. The weight is
    copied, because oneDNN reorders a weight NDArray in place."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
    x0, w0 = x.copy(), w.copy()
    for _ in range(3):  # the in-place weight reorder happens on a repeat call
        conv.conv2d(x, w, padding=ws[2] // 2)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    assert x.flags.writeable and w.flags.writeable  # from_numpy marks only its own view


def test_read_only_misaligned_and_strided_inputs() -> None:
    rng = np.random.default_rng(8)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 3, 160, 160)).astype(np.float32)  # over ZERO_COPY_MIN_BYTES
    assert x.nbytes >= kernels.ZERO_COPY_MIN_BYTES
    expected = oracle.conv2d(x, w)
    ro = np.frombuffer(x.tobytes(), dtype=np.float32).reshape(x.shape)  # read-only, like a .npy part
    raw = np.frombuffer(b"\0" + x.tobytes(), dtype=np.uint8)[1:]  # 1 byte off alignment
    misaligned = (
        raw.view(np.float32).reshape(x.shape) if raw.ctypes.data % 4 == 0 else raw.copy().view(np.float32)
    )
    strided = np.repeat(x, 2, axis=3)[..., ::2]
    for arr in (ro, misaligned.reshape(x.shape), strided):
        np.testing.assert_allclose(conv.conv2d(arr, w), expected, rtol=1e-4, atol=1e-4)


def test_results_do_not_alias_between_calls() -> None:
    """Outputs are fresh numpy arrays, never views of a buffer the next call reuses."""
    x1, x2 = np.ones((1, 4, 5, 5), np.float32), np.full((1, 4, 5, 5), 2, np.float32)
    w = np.ones((3, 4, 1, 1), np.float32)
    y1 = conv.conv2d(x1, w)
    y2 = conv.conv2d(x2, w)
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, 4)
    np.testing.assert_array_equal(y2, 8)


_FAULTS_SCRIPT = """
import resource, sys
import numpy as np, orjson, pybase64
import mxconv_server.compute.mx  # noqa: F401  (sets the allocator up, as every worker does)
from mxconv_server.compute import conv

x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
w = np.ones((64, 3, 3, 3), np.float32)
doc = b'{"b64": "' + pybase64.b64encode(np.zeros(1_600_000, np.float32).tobytes()) + b'"}'
work = {"conv": lambda: conv.conv2d(x, w, padding=1), "json": lambda: orjson.loads(doc)}
for name, fn in work.items():
    fn(), fn()  # the first calls grow the heap
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        fn()
    print(name, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def test_repeated_requests_reuse_freed_memory() -> None:
    """A 12.8 MB conv output and a 8.5 MB JSON document (which orjson parses in a 100 MB
    reservation) cost ~3,000 and ~2,000 page faults per call on fresh mappings; from kept heap
    memory, next to none (compute.mx.keep_freed_memory)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _FAULTS_SCRIPT], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    faults = {name: int(n) for name, n in (line.split() for line in out.splitlines())}
    assert faults["conv"] < 100, faults
    assert faults["json"] < 100, faults
