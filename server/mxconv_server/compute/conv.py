"""2-D convolution and channel mixing on MXNet.

Every argument is checked by :func:`plan_conv2d` before MXNet sees it, so a bad request
costs no compute and gets a message naming the field to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgument, OverBudget
from .mx import mxnet as mx
from .mx import nd

PaddingSpec = int | list[int] | tuple[int, ...] | str
Pair = int | list[int] | tuple[int, ...]
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Conv2dPlan:
    """Validated geometry of one conv2d call: everything but the numbers."""

    x_shape: tuple[int, int, int, int]  # N, C, H, W
    weight_shape: tuple[int, int, int, int]  # O, C/groups, kh, kw
    out_shape: tuple[int, ...]  # as returned to the caller (batch/channel dims squeezed back)
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    padding_mode: str
    groups: int
    has_bias: bool

    @property
    def out_shape4(self) -> tuple[int, int, int, int]:
        n, _, _, _ = self.x_shape
        return (n, self.weight_shape[0], *self.out_shape[-2:])  # type: ignore[return-value]

    @property
    def flops(self) -> int:
        n, o, ho, wo = self.out_shape4
        _, cg, kh, kw = self.weight_shape
        return 2 * n * o * ho * wo * cg * kh * kw

    @property
    def out_elements(self) -> int:
        return math.prod(self.out_shape4)  # Python ints: exact, and 10x faster than np.prod here


def _pair(name: str, value: Pair, minimum: int) -> tuple[int, int]:
    if isinstance(value, int):
        pair = (value, value)
    elif len(value) == 2:
        pair = (int(value[0]), int(value[1]))
    else:
        raise InvalidArgument(name, f"expected an int or [h, w], got {list(value)}")
    if min(pair) < minimum:
        raise InvalidArgument(name, f"must be at least {minimum}, got {list(pair)}")
    return pair


def _x_as_4d(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) == 2:
        return (1, 1, *shape)  # type: ignore[return-value]
    if len(shape) == 3:
        return (1, *shape)  # type: ignore[return-value]
    if len(shape) == 4:
        return shape  # type: ignore[return-value]
    raise InvalidArgument("x", f"expected (H,W), (C,H,W) or (N,C,H,W), got shape {list(shape)}")


def _weight_as_4d(shape: tuple[int, ...], in_per_group: int, groups: int) -> tuple[int, ...]:
    """Read a 2-, 3- or 4-D weight as (O, C/groups, kh, kw) where that is unambiguous."""
    if len(shape) == 2:
        return (1, 1, *shape)
    if len(shape) == 3:
        k = shape[0]
        if groups == 1 and k == in_per_group:
            return (1, *shape)  # one filter spanning every input channel
        if in_per_group == 1:
            return (k, 1, *shape[1:])  # k filters over a single channel
        raise InvalidArgument(
            "weight",
            f"a 3-D weight {list(shape)} is ambiguous for {in_per_group} input channels per "
            "group; give it as (O, C/groups, kh, kw)",
        )
    if len(shape) == 4:
        return shape
    raise InvalidArgument(
        "weight", f"expected (kh,kw), (O,C/groups,kh,kw) or a 3-D form, got shape {list(shape)}"
    )


def _resolve_padding(
    padding: PaddingSpec,
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    stride: tuple[int, int],
    flip: bool,
) -> tuple[int, int, int, int]:
    span_h, span_w = (dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1))
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "full":
            return (span_h, span_h, span_w, span_w)
        if padding == "same":
            if stride != (1, 1):
                raise InvalidArgument(
                    "padding", f"'same' needs stride 1 (got {list(stride)}); give explicit padding"
                )
            # An even kernel cannot be centred. The kernel's origin stays at index (k-1)//2 of
            # the kernel as given, so for cross-correlation the extra row/column goes
            # bottom/right (PyTorch); with flip=True the flipped kernel moves it top/left,
            # which is what scipy.signal.convolve2d(mode="same") computes.
            small_h, small_w = span_h // 2, span_w // 2
            if flip:
                return (span_h - small_h, small_h, span_w - small_w, small_w)
            return (small_h, span_h - small_h, small_w, span_w - small_w)
        raise InvalidArgument("padding", f"unknown padding {padding!r}; use valid, same or full")
    if isinstance(padding, int):
        pads: tuple[int, ...] = (padding,) * 4
    elif len(padding) == 2:
        pads = (padding[0], padding[0], padding[1], padding[1])
    elif len(padding) == 4:
        pads = tuple(padding)
    else:
        raise InvalidArgument("padding", "a list must be [ph, pw] or [top, bottom, left, right]")
    if min(pads) < 0:
        raise InvalidArgument("padding", f"must not be negative, got {list(pads)}")
    return pads  # type: ignore[return-value]


def plan_conv2d(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None = None,
    *,
    stride: Pair = 1,
    padding: PaddingSpec = 0,
    padding_mode: str = "zeros",
    dilation: Pair = 1,
    groups: int = 1,
    flip: bool = False,
) -> Conv2dPlan:
    """Check every argument and work out the output shape, without touching MXNet."""
    x4 = _x_as_4d(tuple(x_shape))
    n, c, h, w = x4
    if groups < 1:
        raise InvalidArgument("groups", f"must be at least 1, got {groups}")
    if c % groups:
        raise InvalidArgument("groups", f"input has {c} channels, which is not divisible by groups={groups}")
    w4 = _weight_as_4d(tuple(weight_shape), c // groups, groups)
    o, cg, kh, kw = w4
    if cg * groups != c:
        raise InvalidArgument(
            "weight",
            f"weight {list(weight_shape)} expects {cg * groups} input channels "
            f"({cg} per group x {groups} groups), but x has {c}",
        )
    if o % groups:
        raise InvalidArgument("weight", f"{o} output channels is not divisible by groups={groups}")
    if bias_shape is not None and tuple(bias_shape) != (o,):
        raise InvalidArgument(
            "bias", f"expected shape [{o}] (one per output channel), got {list(bias_shape)}"
        )
    stride2 = _pair("stride", stride, 1)
    dilation2 = _pair("dilation", dilation, 1)
    if padding_mode not in PADDING_MODES:
        raise InvalidArgument("padding_mode", f"unknown mode {padding_mode!r}; use one of {PADDING_MODES}")
    pads = _resolve_padding(padding, (kh, kw), dilation2, stride2, flip)
    top, bottom, left, right = pads
    if padding_mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise InvalidArgument(
            "padding",
            f"reflect padding {list(pads)} must be smaller than the input's height {h} and width {w}",
        )
    if padding_mode == "circular" and (max(top, bottom) > h or max(left, right) > w):
        raise InvalidArgument(
            "padding",
            f"circular padding {list(pads)} must not exceed the input's height {h} and width {w}",
        )
    eff_h, eff_w = dilation2[0] * (kh - 1) + 1, dilation2[1] * (kw - 1) + 1
    ph, pw = h + top + bottom, w + left + right
    if eff_h > ph or eff_w > pw:
        raise InvalidArgument(
            "weight",
            f"kernel spans {eff_h}x{eff_w} (with dilation {list(dilation2)}) but the padded input "
            f"is only {ph}x{pw}; use a smaller kernel or dilation, or more padding",
        )
    ho = (ph - eff_h) // stride2[0] + 1
    wo = (pw - eff_w) // stride2[1] + 1
    if len(x_shape) == 4:
        out: tuple[int, ...] = (n, o, ho, wo)
    elif len(x_shape) == 2 and len(weight_shape) == 2:
        out = (ho, wo)
    else:
        out = (o, ho, wo)
    return Conv2dPlan(
        x_shape=x4,
        weight_shape=w4,  # type: ignore[arg-type]
        out_shape=out,
        stride=stride2,
        dilation=dilation2,
        pads=pads,
        padding_mode=padding_mode,
        groups=groups,
        has_bias=bias_shape is not None,
    )


def check_budget(plan: Conv2dPlan, *, max_elements: int, max_flops: int) -> None:
    """Refuse work over the configured budget before any of it is done."""
    if plan.out_elements > max_elements:
        raise OverBudget(
            f"output {list(plan.out_shape)} has {plan.out_elements} elements, over the limit of "
            f"{max_elements}; use a smaller input or a larger stride"
        )
    if plan.flops > max_flops:
        raise OverBudget(
            f"this convolution needs {plan.flops:.3g} FLOPs, over the limit of {max_flops:.3g}; "
            "split the batch or use a smaller input"
        )


def _pad(data: Any, pads: tuple[int, int, int, int], mode: str) -> Any:
    top, bottom, left, right = pads
    if mode == "circular":
        # MXNet's Pad has no circular mode: wrap by concatenating slices from the far side.
        h, w = data.shape[2], data.shape[3]
        parts = []
        if top:
            parts.append(nd.slice_axis(data, axis=2, begin=h - top, end=h))
        parts.append(data)
        if bottom:
            parts.append(nd.slice_axis(data, axis=2, begin=0, end=bottom))
        data = nd.concat(*parts, dim=2) if len(parts) > 1 else data
        parts = []
        if left:
            parts.append(nd.slice_axis(data, axis=3, begin=w - left, end=w))
        parts.append(data)
        if right:
            parts.append(nd.slice_axis(data, axis=3, begin=0, end=right))
        return nd.concat(*parts, dim=3) if len(parts) > 1 else data
    mx_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}[mode]
    return nd.pad(data, mode=mx_mode, pad_width=(0, 0, 0, 0, top, bottom, left, right))


def conv2d(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    stride: Pair = 1,
    padding: PaddingSpec = 0,
    padding_mode: str = "zeros",
    dilation: Pair = 1,
    groups: int = 1,
    flip: bool = False,
    dtype: str = "float32",
    ctx: mx.Context | None = None,
    plan: Conv2dPlan | None = None,
) -> npt.NDArray[Any]:
    """Batched, grouped 2-D cross-correlation (``flip=False``) or convolution (``flip=True``).

    Shapes follow :func:`plan_conv2d`; pass a ``plan`` already made to skip re-checking.
    """
    if dtype not in DTYPES:
        raise InvalidArgument("dtype", f"unsupported dtype {dtype!r}; use one of {DTYPES}")
    x_np, w_np = np.asarray(x), np.asarray(weight)
    b_np = None if bias is None else np.asarray(bias)
    if plan is None:
        plan = plan_conv2d(
            x_np.shape,
            w_np.shape,
            None if b_np is None else b_np.shape,
            stride=stride,
            padding=padding,
            padding_mode=padding_mode,
            dilation=dilation,
            groups=groups,
            flip=flip,
        )
    w4 = w_np.reshape(plan.weight_shape)
    if flip:  # true convolution = cross-correlation with the kernel rotated 180 degrees
        w4 = w4[:, :, ::-1, ::-1]
    ctx = ctx or mx.cpu()
    # The weight is always copied: in inference, MXNet's oneDNN convolution reorders its
    # weight NDArray in place into a blocked layout, so a zero-copy weight would scribble over
    # the caller's numpy array (measured: it does). Weights are small; the copy costs ~nothing.
    weight = _owned_copy(w4, dtype, ctx)
    bias_nd = None if b_np is None else _owned_copy(b_np.reshape(-1), dtype, ctx)
    data = _input(x_np.reshape(plan.x_shape), dtype, ctx)
    top, bottom, left, right = plan.pads
    symmetric = top == bottom and left == right
    if plan.padding_mode == "zeros" and symmetric and max(top, left) <= BUILTIN_PAD_MAX:
        conv_pad = (top, left)  # the operators pad symmetrically with zeros themselves: no copy
    else:
        data = _pad(data, plan.pads, plan.padding_mode) if any(plan.pads) else data
        conv_pad = (0, 0)
    path = choose_path(plan, conv_pad, ctx)
    if path == "gemm-1x1":
        y = _conv_1x1_gemm(data, weight, bias_nd, plan, dtype)
    else:
        y = _conv_onednn(data, weight, bias_nd, plan, conv_pad)
    return y.reshape(plan.out_shape)


#: Zero padding up to this many pixels is left to the convolution operator itself; more is
#: padded explicitly first (one copy of the input). oneDNN's own padding falls off a cliff for
#: wide padding (1 thread, (1,8,H,H)x(8,8,25,25), pad 12: H=128 62 ms vs 31 ms padded first;
#: H=256 16.6 s vs 0.12 s), while for pad <= 3 (3x3 to 7x7 "same") both take the same time.
BUILTIN_PAD_MAX = 3


def choose_path(plan: Conv2dPlan, conv_pad: tuple[int, int], ctx: mx.Context) -> str:
    """Which operator computes this convolution on this device, chosen by measurement.

    Measured on the benchmark machine (2-core AVX-512 EPYC, MXNet 1.9.1 with oneDNN 2.4 capped
    as in ``compute.mx``, 1 thread, medians, see ``make bench``):

    * ``onednn``: ``nd.Convolution``. oneDNN computes in a blocked layout (nChw16c) and the
      result is reordered once, into the numpy output. (8,64,56,56)x(64,64,3,3): 18.9 ms.
      An im2col + OpenBLAS GEMM path used to win where the im2col matrix is short, but only
      while page faults and NHWC reorders slowed oneDNN down; with those gone (``compute.mx``)
      oneDNN was faster on all six such shapes tried, e.g. (1,3,224,224)x(64,3,3,3) 4.3 ms
      against 5.1, (1,3,512,512)x(16,3,3,3) 5.7 against 11.8.
    * ``gemm-1x1``: a 1x1 convolution with stride 1 is exactly ``Y[n] = W @ X[n]``: one
      ``nd.dot`` (``batch_dot`` for batches) writing the numpy output in place, no layout
      change at all. (1,256,56,56)x(64,256,1,1): 1.8 ms against 2.2 ms for oneDNN, whose 1x1
      kernel is faster but whose input reorder (3.2 MB) costs more than that.

    GPUs always take ``onednn`` (cuDNN there; its output is plain NCHW already).
    """
    if ctx.device_type != "cpu" or plan.groups != 1:
        return "onednn"
    _, _, kh, kw = plan.weight_shape
    if (kh, kw) == (1, 1) and plan.stride == (1, 1) and conv_pad == (0, 0):
        return "gemm-1x1"
    return "onednn"


#: Inputs at least this big reach MXNet without a copy (nd.from_numpy); smaller ones are copied,
#: because wrapping a buffer through DLPack has a fixed cost (~25 us, measured) that a copy of a
#: small array (~16 us for the seed's 3x3) undercuts.
ZERO_COPY_MIN_BYTES = 128 * 1024


def _input(x: npt.NDArray[Any], dtype: str, ctx: mx.Context) -> Any:
    """x as an NDArray; on the CPU without a copy when it is large and numpy already holds it as
    MXNet needs.

    ``nd.array`` copies (0.3 ms for 6 MB); ``nd.from_numpy`` wraps the buffer via DLPack.
    MXNet only reads ``data`` (checked by test_input_is_never_modified). It marks the array it
    wraps read-only, so it gets a view: the caller's array keeps its flags.
    """
    if ctx.device_type != "cpu" or x.nbytes < ZERO_COPY_MIN_BYTES:
        return _owned_copy(x, dtype, ctx)
    if x.dtype != np.dtype(dtype) or not x.flags.c_contiguous or x.ctypes.data % x.itemsize:
        x = np.ascontiguousarray(x, dtype=dtype)  # the copy MXNet would have made anyway
    return nd.from_numpy(x.view(), zero_copy=True)


def _owned_copy(a: npt.NDArray[Any], dtype: str, ctx: mx.Context) -> Any:
    """A copy of ``a`` in memory MXNet owns. ``nd.empty`` + ``_sync_copyfrom`` is what
    ``nd.array`` does, without its generic ``__setitem__`` path: 57 us instead of 130-180 us per
    array (measured), which is a third of a seed-sized request's compute time."""
    out = nd.empty(a.shape, ctx=ctx, dtype=dtype)
    out._sync_copyfrom(np.ascontiguousarray(a, dtype=dtype))
    return out


def _output(shape: tuple[int, ...], dtype: str) -> tuple[npt.NDArray[Any], Any]:
    """A numpy array and an NDArray over the same memory: MXNet writes the result in place,
    so there is no ``asnumpy()`` copy at the end."""
    y = np.empty(shape, dtype=dtype)
    return y, nd.from_numpy(y.view(), zero_copy=True)


def _conv_onednn(data: Any, weight: Any, bias: Any, plan: Conv2dPlan, conv_pad: tuple[int, int]) -> Any:
    o, _, kh, kw = plan.weight_shape
    out = nd.Convolution(
        data=data,
        weight=weight,
        bias=bias,
        kernel=(kh, kw),
        stride=plan.stride,
        dilate=plan.dilation,
        pad=conv_pad,
        num_filter=o,
        num_group=plan.groups,
        no_bias=bias is None,
    )
    return _to_numpy(out)


def _to_numpy(out: Any) -> npt.NDArray[Any]:
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


def _conv_1x1_gemm(data: Any, weight: Any, bias: Any, plan: Conv2dPlan, dtype: str) -> Any:
    n, c, h, w = data.shape  # already padded, when there is padding
    o = plan.weight_shape[0]
    y, out = _output((n, o, h * w), dtype)
    w2 = weight.reshape((o, c))
    if n == 1:
        nd.dot(w2, data.reshape((c, h * w)), out=out.reshape((o, h * w)))
    else:
        nd.batch_dot(nd.broadcast_to(w2.expand_dims(0), (n, o, c)), data.reshape((n, c, h * w)), out=out)
    if bias is not None:
        nd.broadcast_add(out, bias.reshape((1, o, 1)), out=out)
    out.wait_to_read()
    return y


def plan_corr2d(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...]) -> Conv2dPlan:
    """The seed's ``corr2d`` takes a 2-D input and a 2-D kernel, valid padding only."""
    if len(x_shape) != 2:
        raise InvalidArgument("x", f"corr2d takes a 2-D input (H,W), got shape {list(x_shape)}")
    if len(kernel_shape) != 2:
        raise InvalidArgument("kernel", f"corr2d takes a 2-D kernel (kh,kw), got shape {list(kernel_shape)}")
    if kernel_shape[0] > x_shape[0] or kernel_shape[1] > x_shape[1]:
        raise InvalidArgument(
            "kernel",
            f"the kernel {list(kernel_shape)} does not fit inside x {list(x_shape)}: corr2d slides it "
            "over x without padding; use a smaller kernel, or /v1/conv2d with padding",
        )
    return plan_conv2d(x_shape, kernel_shape)


def corr2d(
    x: npt.ArrayLike, kernel: npt.ArrayLike, *, plan: Conv2dPlan | None = None, **kwargs: Any
) -> npt.NDArray[Any]:
    """The seed's ``corr2d``: valid cross-correlation of a 2-D input with a 2-D kernel."""
    x_np, k_np = np.asarray(x), np.asarray(kernel)
    return conv2d(x_np, k_np, plan=plan or plan_corr2d(x_np.shape, k_np.shape), **kwargs)


@dataclass(frozen=True)
class ChannelMix:
    y: npt.NDArray[Any]
    x_flat: npt.NDArray[Any] | None = None  # X': C x (N*H*W)
    w: npt.NDArray[Any] | None = None  # W: O x C
    y_flat: npt.NDArray[Any] | None = None  # Y' = W X' (+ b): O x (N*H*W)


def plan_channel_mix(
    x_shape: tuple[int, ...], weight_shape: tuple[int, ...], bias_shape: tuple[int, ...] | None
) -> Conv2dPlan:
    if len(x_shape) not in (3, 4):
        raise InvalidArgument("x", f"expected (C,H,W) or (N,C,H,W), got shape {list(x_shape)}")
    if len(weight_shape) != 2:
        raise InvalidArgument("weight", f"expected a matrix (O,C), got shape {list(weight_shape)}")
    return plan_conv2d(x_shape, (*weight_shape, 1, 1), bias_shape)


def channel_mix(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    matrix_view: bool = False,
    dtype: str = "float32",
    ctx: mx.Context | None = None,
    plan: Conv2dPlan | None = None,
) -> ChannelMix:
    """A 1x1 convolution: every pixel's C channels mixed into O by the matrix ``weight``."""
    x_np, w_np = np.asarray(x), np.asarray(weight)
    b_np = None if bias is None else np.asarray(bias)
    plan = plan or plan_channel_mix(x_np.shape, w_np.shape, None if b_np is None else b_np.shape)
    y = conv2d(x_np, w_np, b_np, dtype=dtype, ctx=ctx, plan=plan)
    if not matrix_view:
        return ChannelMix(y=y)
    # The seed's matrix view: flatten space, Y' = W X'. Batches sit side by side in X'.
    ctx = ctx or mx.cpu()
    n, c, h, w = plan.x_shape
    x_flat = x_np.reshape(n, c, h * w).transpose(1, 0, 2).reshape(c, n * h * w)
    y_flat_nd = nd.dot(nd.array(w_np, ctx=ctx, dtype=dtype), nd.array(x_flat, ctx=ctx, dtype=dtype))
    if b_np is not None:
        y_flat_nd = nd.broadcast_add(y_flat_nd, nd.array(b_np.reshape(-1, 1), ctx=ctx, dtype=dtype))
    return ChannelMix(
        y=y,
        x_flat=x_flat.astype(dtype),
        w=w_np.astype(dtype),
        y_flat=y_flat_nd.asnumpy(),
    )
