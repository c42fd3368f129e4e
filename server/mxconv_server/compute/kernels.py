"""The formulations a 2-D convolution runs as on MXNet, chosen per shape by :mod:`.cost`.

* ``onednn``: ``nd.Convolution`` as asked. oneDNN computes in a blocked layout (nChw16c) and
  the result is reordered once, into the numpy output.
* ``gemm-1x1``: a 1x1 convolution with stride 1 is ``Y[n] = W @ X[n]``: one ``nd.dot``
  (``batch_dot`` for batches) writing the numpy output in place, no layout change.
* ``phase``: the phase split of :mod:`.phases`, for the shapes on which oneDNN's direct kernel
  is slow (few output channels per group, long kernels, float64).

A convolution predicted to take more than :data:`TILE_SECONDS` runs in pieces of output rows
(and batch items), with :func:`.deadline.check` between them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from . import deadline, phases
from .mx import mxnet as mx
from .mx import nd

#: Work predicted over this many seconds is cut into pieces of about this long, so that a
#: deadline is noticed within a piece's time and no buffer grows with the whole problem.
TILE_SECONDS = 0.1
#: Inputs at least this big reach MXNet without a copy (nd.from_numpy); smaller ones are copied,
#: because wrapping a buffer through DLPack has a fixed cost (~25 us, measured) that a copy of a
#: small array (~16 us for the seed's 3x3) undercuts.
ZERO_COPY_MIN_BYTES = 128 * 1024


def as_input(x: npt.NDArray[Any], dtype: str, ctx: mx.Context) -> Any:
    """x as an NDArray; on the CPU without a copy when it is large and numpy already holds it as
    MXNet needs.

    ``nd.array`` copies (0.3 ms for 6 MB); ``nd.from_numpy`` wraps the buffer via DLPack.
    MXNet only reads ``data`` (checked by test_input_is_never_modified). It marks the array it
    wraps read-only, so it gets a view: the caller's array keeps its flags.
    """
    if ctx.device_type != "cpu" or x.nbytes < ZERO_COPY_MIN_BYTES:
        return owned_copy(x, dtype, ctx)
    if x.dtype != np.dtype(dtype) or not x.flags.c_contiguous or x.ctypes.data % x.itemsize:
        x = np.ascontiguousarray(x, dtype=dtype)  # the copy MXNet would have made anyway
    return nd.from_numpy(x.view(), zero_copy=True)


def owned_copy(a: npt.NDArray[Any], dtype: str, ctx: mx.Context) -> Any:
    """A copy of ``a`` in memory MXNet owns. ``nd.empty`` + ``_sync_copyfrom`` is what
    ``nd.array`` does, without its generic ``__setitem__`` path: 57 us instead of 130-180 us per
    array (measured), which is a third of a seed-sized request's compute time.

    Weights always take this: in inference, MXNet's oneDNN convolution reorders its weight
    NDArray in place into a blocked layout, so a zero-copy weight would scribble over the
    caller's numpy array (measured: it does)."""
    out = nd.empty(a.shape, ctx=ctx, dtype=dtype)
    out._sync_copyfrom(np.ascontiguousarray(a, dtype=dtype))
    return out


def _output(shape: tuple[int, ...], dtype: str) -> tuple[npt.NDArray[Any], Any]:
    """A numpy array and an NDArray over the same memory: MXNet writes the result in place,
    so there is no ``asnumpy()`` copy at the end."""
    y = np.empty(shape, dtype=dtype)
    return y, nd.from_numpy(y.view(), zero_copy=True)


def to_numpy(out: Any) -> npt.NDArray[Any]:
    """A result NDArray as a new numpy array, in NCHW whatever layout oneDNN left it in.

    ``asnumpy()`` reorders a blocked (nChw16c) result into a temporary NCHW array and then
    copies that into numpy; ``copyto()`` a numpy-backed NDArray reorders straight into the
    numpy memory: one pass instead of two ((8,64,56,56), 1 thread: -0.4 ms, measured). Below
    ZERO_COPY_MIN_BYTES, wrapping the numpy array (~40 us) costs more than the extra copy, so
    small results take ``asnumpy()``. (Handing the numpy-backed array to the operator itself,
    ``out=``, does not help: MXNet stores the blocked layout there and reorders on read.)
    """
    if out.size * np.dtype(out.dtype).itemsize < ZERO_COPY_MIN_BYTES:
        return out.asnumpy()  # type: ignore[no-any-return]
    y, y_nd = _output(out.shape, out.dtype)
    out.copyto(y_nd)
    y_nd.wait_to_read()
    return y


def convolution(
    data: Any,
    weight: Any,
    bias: Any,
    *,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
    groups: int = 1,
) -> npt.NDArray[Any]:
    """One ``nd.Convolution``, its result as numpy."""
    o, _, kh, kw = weight.shape
    out = nd.Convolution(
        data=data,
        weight=weight,
        bias=bias,
        kernel=(kh, kw),
        stride=stride,
        dilate=dilation,
        pad=pad,
        num_filter=o,
        num_group=groups,
        no_bias=bias is None,
    )
    return to_numpy(out)


def gemm_1x1(data: Any, weight: Any, bias: Any, dtype: str) -> npt.NDArray[Any]:
    n, c, h, w = data.shape
    o = weight.shape[0]
    y, out = _output((n, o, h * w), dtype)
    w2 = weight.reshape((o, c))
    if n == 1:
        nd.dot(w2, data.reshape((c, h * w)), out=out.reshape((o, h * w)))
    else:
        nd.batch_dot(nd.broadcast_to(w2.expand_dims(0), (n, o, c)), data.reshape((n, c, h * w)), out=out)
    if bias is not None:
        nd.broadcast_add(out, bias.reshape((1, o, 1)), out=out)
    out.wait_to_read()
    return y.reshape(n, o, h, w)


def pieces(n: int, rows: int, seconds: float) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    """(batch range, row range) pieces of about TILE_SECONDS each: batch items first, then rows."""
    count = max(1, math.ceil(seconds / TILE_SECONDS))
    batch_pieces = min(n, count)
    row_pieces = min(rows, max(1, math.ceil(count / batch_pieces)))
    for b in range(batch_pieces):
        n0, n1 = b * n // batch_pieces, (b + 1) * n // batch_pieces
        for r in range(row_pieces):
            yield (n0, n1), (r * rows // row_pieces, (r + 1) * rows // row_pieces)


def direct_tiled(
    xp: npt.NDArray[Any],
    weight: Any,
    bias: Any,
    out_shape: tuple[int, int, int, int],
    *,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    dtype: str,
    ctx: mx.Context,
    seconds: float,
) -> npt.NDArray[Any]:
    """``onednn`` on an already padded input, in pieces of output rows."""
    n, _, ho, _ = out_shape
    span = dilation[0] * (weight.shape[2] - 1) + 1
    y = np.empty(out_shape, dtype=dtype)
    for (n0, n1), (r0, r1) in pieces(n, ho, seconds):
        deadline.check()
        rows = xp[n0:n1, :, r0 * stride[0] : (r1 - 1) * stride[0] + span]
        data = as_input(np.ascontiguousarray(rows), dtype, ctx)
        y[n0:n1, :, r0:r1] = convolution(data, weight, bias, stride=stride, dilation=dilation, groups=groups)
    return y


def phase_split(
    xp: npt.NDArray[Any],
    w4: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    split: phases.PhaseSplit,
    out_shape: tuple[int, int, int, int],
    *,
    groups: int,
    dtype: str,
    ctx: mx.Context,
    seconds: float,
) -> npt.NDArray[Any]:
    """``phase`` on an already padded input, in pieces of block rows."""
    n = out_shape[0]
    ph, _ = split.phases
    cout = split.channel_factors[1]
    weight = owned_copy(phases.block_weight(np.asarray(w4, dtype=dtype), split), dtype, ctx)
    bias = None if b is None else owned_copy(np.repeat(b.reshape(-1), cout), dtype, ctx)
    kbh = split.block_kernel[0]
    y = np.empty(out_shape, dtype=dtype)
    for (n0, n1), (u0, u1) in pieces(n, split.block_out[0], seconds):
        deadline.check()
        blocks = phases.block_input(xp[n0:n1], split, rows=(u0, u1 + kbh - 1))
        yb = convolution(as_input(blocks, dtype, ctx), weight, bias, groups=groups)
        phases.unblock_output(yb, split, y[n0:n1, :, u0 * ph : min(u1 * ph, out_shape[2])])
    return y
