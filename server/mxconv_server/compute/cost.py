"""The cost model: a convolution's compute time in seconds, predicted from its path and shape.

It serves twice: :func:`choose` picks the fastest formulation of a convolution, and the API
refuses a request predicted over ``MXCONV_MAX_REQUEST_SECONDS`` before any work starts.

A direct convolution costs ``t0 + bytes·byte_s + flops / rate``. The rate is that of the kernel
oneDNN 2.4 (MXNet 1.9.1) runs for the shape, whose choice was read from ``DNNL_VERBOSE`` and is
checked by ``tests/test_cost_model.py``:

* ``avx512``: 16 or more output channels per group and a kernel at most 52 wide: oneDNN's
  direct AVX-512 kernel, 30-75 GFLOP/s on one core;
* ``avx2``: 8 to 15 output channels per group, or a wider kernel: its AVX2 kernel;
* ``depthwise``: one input and one output channel per group: its depthwise kernel;
* ``gemm``: fewer than 8 output channels per group: im2col + GEMM, 1-9 GFLOP/s, growing with the
  output channels; ``ref`` for one input and one output channel and 49 taps or more, where
  oneDNN falls back to its reference kernel (0.15 GFLOP/s; it does so for some other small
  channel counts too, depending on the image size, which the model does not try to follow:
  those shapes take a phase split anyway once they are big enough to matter);
* ``native64``: float64, which oneDNN does not compute: MXNet's own im2col + OpenBLAS dgemm;
* ``gpu``: cuDNN. Not calibrated on these machines (none has a GPU): a nominal rate, so the
  deadline is what bounds GPU requests.

Every rate is ``peak · K / (K + k_half)`` with ``K`` the multiply-adds per output element, since
short dot products cannot fill the vector units. The coefficients come from
``python -m benchmarks.calibrate``, which measures a calibration set, fits them, and writes
``cost_model.json`` beside this file; ``make bench`` prints predicted against measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from .phases import PhaseSplit

COEFFICIENTS_FILE = Path(__file__).with_name("cost_model.json")
#: Below this many FLOPs a convolution always runs direct: even oneDNN's reference kernel
#: takes under 20 ms, less than choosing and rearranging would save.
SMALL_FLOPS = 3_000_000
#: Output phases tried per dimension (with 1-D signals, up to 16 along the signal).
PHASES_2D = (1, 2, 4, 8)
PHASES_1D = (1, 2, 4, 8, 16)
#: The largest block weight a phase split may build, in elements (it is built per request).
MAX_BLOCK_WEIGHT = 16 * 1024 * 1024
#: oneDNN's reference kernel takes over from im2col + GEMM at this many taps (one channel).
REF_TAPS = 49
#: Its AVX-512 direct kernel takes kernels up to this wide; wider ones get the AVX2 kernel.
AVX512_MAX_WIDTH = 52


#: Multiplies every prediction (MXCONV_COST_SCALE): a machine slower than the calibration one.
_scale = 1.0


def configure(scale: float) -> None:
    global _scale
    _scale = float(scale)
    choose.cache_clear()


@cache
def coefficients() -> dict[str, Any]:
    return json.loads(COEFFICIENTS_FILE.read_text())  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Shape:
    """What the model reads of a convolution: sizes after padding, nothing of the numbers."""

    n: int
    c: int
    o: int
    groups: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padded_hw: tuple[int, int]
    out_hw: tuple[int, int]
    itemsize: int = 4
    device: str = "cpu"

    @property
    def flops(self) -> int:
        (ho, wo), (kh, kw) = self.out_hw, self.kernel
        return 2 * self.n * self.o * ho * wo * (self.c // self.groups) * kh * kw

    @property
    def one_dimensional(self) -> bool:
        return self.padded_hw[0] == 1 and self.kernel[0] == 1


@dataclass(frozen=True)
class Estimate:
    path: str  # "onednn", "gemm-1x1" or "phase"
    seconds: float
    kernel_class: str
    flops: int  # the FLOPs actually computed (a phase split's zero taps included)
    split: PhaseSplit | None = None

    @property
    def label(self) -> str:
        if self.split is None:
            return self.path
        ph, pw = self.split.phases
        return f"phase-{ph}x{pw}"


def kernel_class(
    out_per_group: int, in_per_group: int, groups: int, kernel: tuple[int, int], itemsize: int, device: str
) -> str:
    """The kernel oneDNN 2.4 picks for a direct convolution, as observed with DNNL_VERBOSE."""
    if device != "cpu":
        return "gpu"
    if itemsize == 8:
        return "native64"
    if groups > 1 and in_per_group == 1 and out_per_group == 1:
        return "depthwise"
    if out_per_group >= 16 and kernel[1] <= AVX512_MAX_WIDTH:
        return "avx512"
    if out_per_group >= 8:
        return "avx2"
    single = groups == 1 and in_per_group == 1 and out_per_group == 1
    return "ref" if single and kernel[0] * kernel[1] >= REF_TAPS else "gemm"


def _rate(cls: str, macs_per_output: int, out_per_group: int) -> float:
    k = coefficients()["classes"][cls]
    rate = k["peak"] * macs_per_output / (macs_per_output + k["k_half"])
    if cls in ("gemm", "native64"):  # a GEMM's M dimension is the output channels per group
        rate *= min(out_per_group, 16) / 16
    return float(rate)


def direct(s: Shape, *, fused_1x1: bool = False) -> Estimate:
    co = coefficients()
    og, cg = s.o // s.groups, s.c // s.groups
    taps = s.kernel[0] * s.kernel[1]
    cls = "gemm1x1" if fused_1x1 else kernel_class(og, cg, s.groups, s.kernel, s.itemsize, s.device)
    moved = s.n * (s.c * s.padded_hw[0] * s.padded_hw[1] + s.o * s.out_hw[0] * s.out_hw[1]) * s.itemsize
    seconds = co["t0"] + moved * co["byte_s"] + s.flops / _rate(cls, cg * taps, og)
    return Estimate("gemm-1x1" if fused_1x1 else "onednn", seconds * _scale, cls, s.flops)


def per_call() -> float:
    """The fixed cost of one call (``t0``): what a network's training step pays per layer in
    its own overhead instead (:mod:`.netjob`)."""
    return float(coefficients()["t0"]) * _scale


def dense(n: int, in_units: int, units: int) -> float:
    """A dense layer's forward pass over ``n`` samples, without the per-call cost: a GEMM at
    the 1x1 convolution's rate, plus its bytes."""
    co = coefficients()
    moved = n * (in_units + units) * 4
    return (moved * co["byte_s"] + 2 * n * in_units * units / _rate("gemm1x1", in_units, units)) * _scale


def elementwise(n_elements: int) -> float:
    """An elementwise layer (activation, pooling, batchnorm) over ``n_elements`` in and out."""
    return float(2 * n_elements * 4 * coefficients()["byte_s"]) * _scale


def phase(s: Shape, phases: tuple[int, int]) -> Estimate | None:
    """A phase split's estimate, or None where it cannot apply or would build too big a weight."""
    split = PhaseSplit(phases, s.stride, s.dilation, s.kernel, s.out_hw)
    cin, cout = split.channel_factors
    og, cg = s.o // s.groups * cout, s.c // s.groups * cin
    kbh, kbw = split.block_kernel
    if s.o * cout * cg * kbh * kbw > MAX_BLOCK_WEIGHT:
        return None
    co = coefficients()
    (uo, vo), (hb, wb) = split.block_out, split.block_in
    blocked_in = s.n * s.c * cin * hb * wb * s.itemsize
    blocked_out = s.n * s.o * cout * uo * vo * s.itemsize
    flops = split.flops(s.n, s.o, s.c // s.groups)
    cls = kernel_class(og, cg, s.groups, (kbh, kbw), s.itemsize, s.device)
    # The rearranging copies come on top of a direct convolution's own reorders.
    seconds = (
        co["t0"]
        + (blocked_in + blocked_out) * (co["byte_s"] + co["rearrange_byte_s"])
        + flops / _rate(cls, cg * kbh * kbw, og)
    )
    return Estimate("phase", seconds * _scale, cls, flops, split)


#: Direct kernels a phase split cannot beat by enough to pay for its copies (measured: on
#: (1,16,H,W)x(16,16,3,3), the best split came within 10% of the 28 GFLOP/s direct kernel).
FAST_CLASSES = frozenset({"avx512", "depthwise", "gemm1x1", "gpu"})


def candidates(s: Shape, *, fused_1x1: bool = False, exhaustive: bool = False) -> list[Estimate]:
    """The formulations of ``s`` worth weighing, with their predicted times; ``exhaustive``
    gives every one this service can run (the tests run each against the oracle)."""
    first = direct(s, fused_1x1=fused_1x1)
    if not exhaustive and (first.kernel_class in FAST_CLASSES or s.flops < SMALL_FLOPS):
        return [first]
    found = [first]
    options_h = (1,) if s.one_dimensional else PHASES_2D
    options_w = PHASES_1D if s.one_dimensional else PHASES_2D
    for ph in options_h:
        for pw in options_w:
            if (ph, pw) == (1, 1) and s.stride == (1, 1):
                continue  # that is the direct convolution itself
            est = phase(s, (ph, pw))
            if est is not None:
                found.append(est)
    return found


@lru_cache(maxsize=4096)
def choose(s: Shape, *, fused_1x1: bool = False) -> Estimate:
    """The formulation predicted fastest (cached: requests repeat their shapes)."""
    return min(candidates(s, fused_1x1=fused_1x1), key=lambda e: e.seconds)
