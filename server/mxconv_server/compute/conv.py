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

from . import cost, kernels
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
    formulation: cost.Estimate | None = None,
) -> npt.NDArray[Any]:
    """Batched, grouped 2-D cross-correlation (``flip=False``) or convolution (``flip=True``).

    Shapes follow :func:`plan_conv2d`; pass a ``plan`` already made to skip re-checking, and a
    ``formulation`` (one of :func:`.cost.candidates`) to run that one instead of the fastest.
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
    x4 = x_np.reshape(plan.x_shape)
    est = formulation or estimate(plan, dtype, ctx)
    if est.path == "phase" or est.seconds > kernels.TILE_SECONDS:
        y = _run_padded(x4, w4, b_np, plan, est, dtype, ctx)
    else:
        y = _run_whole(x4, w4, b_np, plan, est.path, dtype, ctx)
    return y.reshape(plan.out_shape)


def _run_whole(
    x4: npt.NDArray[Any],
    w4: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    plan: Conv2dPlan,
    path: str,
    dtype: str,
    ctx: mx.Context,
) -> npt.NDArray[Any]:
    """One MXNet call on the whole input (``onednn`` or ``gemm-1x1``): the fast case."""
    weight = kernels.owned_copy(w4, dtype, ctx)
    bias = None if b is None else kernels.owned_copy(b.reshape(-1), dtype, ctx)
    data = kernels.as_input(x4, dtype, ctx)
    conv_pad = operator_padding(plan)
    if conv_pad is None:
        data = _pad(data, plan.pads, plan.padding_mode)
        conv_pad = (0, 0)
    if path == "gemm-1x1":
        return kernels.gemm_1x1(data, weight, bias, dtype)
    return kernels.convolution(
        data, weight, bias, stride=plan.stride, dilation=plan.dilation, pad=conv_pad, groups=plan.groups
    )


def _run_padded(
    x4: npt.NDArray[Any],
    w4: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    plan: Conv2dPlan,
    est: cost.Estimate,
    dtype: str,
    ctx: mx.Context,
) -> npt.NDArray[Any]:
    """The phase split, or a long direct convolution: padded first, then run in pieces."""
    xp = kernels.pad_numpy(np.asarray(x4, dtype=dtype), plan.pads, plan.padding_mode)
    if est.split is not None:
        return kernels.phase_split(
            xp,
            w4,
            b,
            est.split,
            plan.out_shape4,
            groups=plan.groups,
            dtype=dtype,
            ctx=ctx,
            seconds=est.seconds,
        )
    weight = kernels.owned_copy(w4, dtype, ctx)
    bias = None if b is None else kernels.owned_copy(b.reshape(-1), dtype, ctx)
    return kernels.direct_tiled(
        xp,
        weight,
        bias,
        plan.out_shape4,
        stride=plan.stride,
        dilation=plan.dilation,
        groups=plan.groups,
        dtype=dtype,
        ctx=ctx,
        seconds=est.seconds,
    )


#: Zero padding up to this many pixels is left to the convolution operator itself; more is
#: padded explicitly first (one copy of the input). oneDNN's own padding falls off a cliff for
#: wide padding (1 thread, (1,8,H,H)x(8,8,25,25), pad 12: H=128 62 ms vs 31 ms padded first;
#: H=256 16.6 s vs 0.12 s), while for pad <= 3 (3x3 to 7x7 "same") both take the same time.
BUILTIN_PAD_MAX = 3


def operator_padding(plan: Conv2dPlan) -> tuple[int, int] | None:
    """The padding ``nd.Convolution`` applies itself (symmetric zeros, narrow), or None when
    the input must be padded first."""
    top, bottom, left, right = plan.pads
    if plan.padding_mode == "zeros" and top == bottom and left == right and max(top, left) <= BUILTIN_PAD_MAX:
        return (top, left)
    return None if any(plan.pads) else (0, 0)


def cost_shape(plan: Conv2dPlan, dtype: str, ctx: mx.Context) -> cost.Shape:
    n, c, h, w = plan.x_shape
    top, bottom, left, right = plan.pads
    return cost.Shape(
        n=n,
        c=c,
        o=plan.weight_shape[0],
        groups=plan.groups,
        kernel=plan.weight_shape[2:],  # type: ignore[arg-type]
        stride=plan.stride,
        dilation=plan.dilation,
        padded_hw=(h + top + bottom, w + left + right),
        out_hw=plan.out_shape4[2:],  # type: ignore[arg-type]
        itemsize=np.dtype(dtype).itemsize,
        device=ctx.device_type,
    )


def estimate(plan: Conv2dPlan, dtype: str = "float32", ctx: mx.Context | None = None) -> cost.Estimate:
    """The formulation this convolution runs as, and its predicted seconds (see :mod:`.cost`).

    ``gemm-1x1`` (a 1x1, stride-1 convolution without padding, groups 1, on the CPU) beat oneDNN
    on (1,256,56,56)x(64,256,1,1): 1.8 ms against 2.2, as oneDNN's input reorder (3.2 MB)
    costs more than its faster 1x1 kernel saves. Every other shape takes whichever of the
    direct ``onednn`` call and its phase splits the cost model predicts fastest: the direct
    call wherever oneDNN has a vectorized kernel for it (16 or more output channels per group,
    depthwise), a phase split where it falls back to im2col + GEMM or its reference kernel.
    """
    ctx = ctx or mx.cpu()
    _, _, kh, kw = plan.weight_shape
    fused_1x1 = (
        ctx.device_type == "cpu"
        and plan.groups == 1
        and (kh, kw) == (1, 1)
        and plan.stride == (1, 1)
        and operator_padding(plan) in (None, (0, 0))  # no padding, or padded before the call
    )
    return cost.choose(cost_shape(plan, dtype, ctx), fused_1x1=fused_1x1)


def choose_path(plan: Conv2dPlan, dtype: str = "float32", ctx: mx.Context | None = None) -> str:
    """The path name :func:`estimate` picks: ``onednn``, ``gemm-1x1`` or ``phase``."""
    return estimate(plan, dtype, ctx).path


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
