"""The phase split: a convolution with few output channels rewritten as one with many.

oneDNN's fast direct kernels vectorize over blocks of 16 output channels. A convolution with
fewer (one filter: image filtering, edge detection, 1-D signals, a channel reduction) gets a
GEMM or reference kernel instead, at 0.15-9 GFLOP/s against 30-75 (benchmarks/sweep.py). Cut
the input into blocks (space to depth) and every output phase becomes an output channel of its
own. Per spatial dimension, with stride ``s``, dilation ``d``, ``P`` output phases and blocks of
``B = s·P`` samples:

    y[u·P + p] = Σ_a x[(u·P + p)·s + a·d] k[a]
               = Σ_{r<B} Σ_α X_r[u + α] K[p, r, α],   X_r[v] = x[v·B + r],
                                                      K[p, r, α] = k[a] where B·α + r = p·s + a·d

a stride-1 convolution with ``C·B`` input and ``O·P`` output channels (per dimension) and
``kb = ((P-1)·s + (k-1)·d) // B + 1`` taps, which oneDNN runs at its full rate. ``P = 1`` with
``s > 1`` is the plain stride fold. The price is the taps that are zero in ``K`` (the FLOPs grow
by about ``((k + P - 1)/k)^2`` at stride 1) and one rearranging copy of the input and output;
:mod:`.cost` weighs both against the direct kernel's rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class PhaseSplit:
    """The block geometry of one phase-split convolution (pure arithmetic, no MXNet)."""

    phases: tuple[int, int]  # output phases P per dimension
    stride: tuple[int, int]
    dilation: tuple[int, int]
    kernel: tuple[int, int]  # the original kh, kw
    out_hw: tuple[int, int]  # the original Ho, Wo

    @property
    def blocks(self) -> tuple[int, int]:
        return (self.stride[0] * self.phases[0], self.stride[1] * self.phases[1])

    @property
    def block_kernel(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            ((p - 1) * s + (k - 1) * d) // b + 1
            for p, s, d, k, b in zip(
                self.phases, self.stride, self.dilation, self.kernel, self.blocks, strict=True
            )
        )

    @property
    def block_out(self) -> tuple[int, int]:
        """Outputs per phase: ceil(Ho / Ph), ceil(Wo / Pw)."""
        return (-(-self.out_hw[0] // self.phases[0]), -(-self.out_hw[1] // self.phases[1]))

    @property
    def block_in(self) -> tuple[int, int]:
        """Input blocks the stride-1 convolution reads, per dimension."""
        (uo, vo), (kbh, kbw) = self.block_out, self.block_kernel
        return (uo + kbh - 1, vo + kbw - 1)

    @property
    def channel_factors(self) -> tuple[int, int]:
        """How many times the input and output channel counts grow."""
        bh, bw = self.blocks
        return (bh * bw, self.phases[0] * self.phases[1])

    def flops(self, n: int, out_channels: int, in_per_group: int) -> int:
        """FLOPs of the stride-1 block convolution, zero taps included."""
        (uo, vo), (kbh, kbw) = self.block_out, self.block_kernel
        cin, cout = self.channel_factors
        return 2 * n * out_channels * cout * uo * vo * in_per_group * cin * kbh * kbw


def _taps(phases: int, stride: int, dilation: int, kernel: int, block: int, kb: int) -> npt.NDArray[np.intp]:
    """``idx[p, r, α]``: the tap of the original kernel at block position (p, r, α), or
    ``kernel`` (the index of an appended zero) where there is none."""
    p = np.arange(phases)[:, None, None]
    r = np.arange(block)[None, :, None]
    alpha = np.arange(kb)[None, None, :]
    offset = block * alpha + r - p * stride  # = a·d where a tap exists
    a, rem = np.divmod(offset, dilation)
    valid = (rem == 0) & (a >= 0) & (a < kernel)
    return np.where(valid, a, kernel)


def block_weight(w: npt.NDArray[Any], split: PhaseSplit) -> npt.NDArray[Any]:
    """(O, C/groups, kh, kw) -> (O·Ph·Pw, C/groups·Bh·Bw, kbh, kbw), output-channel major so
    that groups stay contiguous."""
    o, cg, kh, kw = w.shape
    (ph, pw), (bh, bw), (kbh, kbw) = split.phases, split.blocks, split.block_kernel
    idx_h = _taps(ph, split.stride[0], split.dilation[0], kh, bh, kbh)
    idx_w = _taps(pw, split.stride[1], split.dilation[1], kw, bw, kbw)
    padded = np.zeros((o, cg, kh + 1, kw + 1), dtype=w.dtype)
    padded[:, :, :kh, :kw] = w
    # (O, Cg, Ph, Bh, kbh, Pw, Bw, kbw) -> (O, Ph, Pw, Cg, Bh, Bw, kbh, kbw)
    taps = padded[:, :, idx_h[:, :, :, None, None, None], idx_w[None, None, None, :, :, :]]
    taps = taps.transpose(0, 2, 5, 1, 3, 6, 4, 7)
    return np.ascontiguousarray(taps.reshape(o * ph * pw, cg * bh * bw, kbh, kbw))


def block_input(
    xp: npt.NDArray[Any], split: PhaseSplit, rows: tuple[int, int] | None = None
) -> npt.NDArray[Any]:
    """The padded input (N, C, Hp, Wp) as (N, C·Bh·Bw, r1 - r0, Wb): block rows ``rows`` (all
    by default) of the space-to-depth rearrangement, with zeros past the input's end."""
    n, c, hp, wp = xp.shape
    (bh, bw), (hb, wb) = split.blocks, split.block_in
    r0, r1 = rows or (0, hb)
    h0, h1, w1 = r0 * bh, r1 * bh, wb * bw
    src = xp[:, :, h0 : min(h1, hp), : min(w1, wp)]
    if src.shape[2:] != (h1 - h0, w1):
        grown = np.zeros((n, c, h1 - h0, w1), dtype=xp.dtype)
        grown[:, :, : src.shape[2], : src.shape[3]] = src
        src = grown
    blocks = src.reshape(n, c, r1 - r0, bh, wb, bw).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(blocks).reshape(n, c * bh * bw, r1 - r0, wb)


def unblock_output(yb: npt.NDArray[Any], split: PhaseSplit, out: npt.NDArray[Any]) -> None:
    """Write the block convolution's (N, O·Ph·Pw, U, V) result into ``out`` (N, O, rows, Wo):
    phases interleaved back into rows and columns, cropped to ``out``'s size."""
    n, _, u, v = yb.shape
    ph, pw = split.phases
    o, rows, cols = out.shape[1:]
    phased = yb.reshape(n, o, ph, pw, u, v).transpose(0, 1, 4, 2, 5, 3)  # (N, O, U, Ph, V, Pw)
    if (rows, cols) == (u * ph, v * pw) and out.flags.c_contiguous:
        out.reshape(n, o, u, ph, v, pw)[...] = phased  # one strided copy, no temporary
    else:
        out[...] = phased.reshape(n, o, u * ph, v * pw)[:, :, :rows, :cols]
