"""Planning a convolution: every argument checked, the output shape, the FLOPs and the
formulation it will run as, without MXNet (importable where MXNet is not installed).

Every argument is checked here before MXNet sees it, so a bad request costs no compute and gets
a message naming the field to change. :mod:`.conv` runs what this plans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import cost
from .errors import InvalidArgument, OverBudget
from .padding import check as check_padding

PaddingSpec = int | list[int] | tuple[int, ...] | str
Pair = int | list[int] | tuple[int, ...]
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


def pair(name: str, value: Pair, minimum: int) -> tuple[int, int]:
    if isinstance(value, int):
        pair = (value, value)
    elif len(value) == 2:
        pair = (int(value[0]), int(value[1]))
    else:
        raise InvalidArgument(name, f"expected an int or [h, w], got {list(value)}")
    if min(pair) < minimum:
        raise InvalidArgument(name, f"must be at least {minimum}, got {list(pair)}")
    return pair


def x_as_4d(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
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


def same_padding(kernel: tuple[int, ...], dilation: Pair, flip: bool) -> tuple[int, int, int, int]:
    """The pads of ``"same"`` at stride 1, for a 2-D kernel: see :func:`_resolve_padding`."""
    return _resolve_padding("same", kernel, pair("dilation", dilation, 1), (1, 1), flip)  # type: ignore[arg-type]


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
    x4 = x_as_4d(tuple(x_shape))
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
    stride2 = pair("stride", stride, 1)
    dilation2 = pair("dilation", dilation, 1)
    pads = _resolve_padding(padding, (kh, kw), dilation2, stride2, flip)
    top, bottom, left, right = pads
    check_padding(padding_mode, max(top, bottom), h, "height")
    check_padding(padding_mode, max(left, right), w, "width")
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


def cost_shape(plan: Conv2dPlan, dtype: str, device: str = "cpu") -> cost.Shape:
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
        device=device,
    )


def estimate(plan: Conv2dPlan, dtype: str = "float32", device: str = "cpu") -> cost.Estimate:
    """The formulation this convolution runs as, and its predicted seconds (see :mod:`.cost`).

    ``gemm-1x1`` (a 1x1, stride-1 convolution without padding, groups 1, on the CPU) beat oneDNN
    on (1,256,56,56)x(64,256,1,1): 1.8 ms against 2.2, as oneDNN's input reorder (3.2 MB)
    costs more than its faster 1x1 kernel saves. Every other shape takes whichever of the
    direct ``onednn`` call and its phase splits the cost model predicts fastest: the direct
    call wherever oneDNN has a vectorized kernel for it (16 or more output channels per group,
    depthwise), a phase split where it falls back to im2col + GEMM or its reference kernel.
    """
    _, _, kh, kw = plan.weight_shape
    fused_1x1 = (
        device == "cpu"
        and plan.groups == 1
        and (kh, kw) == (1, 1)
        and plan.stride == (1, 1)
        and operator_padding(plan) in (None, (0, 0))  # no padding, or padded before the call
    )
    return cost.choose(cost_shape(plan, dtype, device), fused_1x1=fused_1x1)


def choose_path(plan: Conv2dPlan, dtype: str = "float32", device: str = "cpu") -> str:
    """The path name :func:`estimate` picks: ``onednn``, ``gemm-1x1`` or ``phase``."""
    return estimate(plan, dtype, device).path


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


def plan_channel_mix(
    x_shape: tuple[int, ...], weight_shape: tuple[int, ...], bias_shape: tuple[int, ...] | None
) -> Conv2dPlan:
    if len(x_shape) not in (3, 4):
        raise InvalidArgument("x", f"expected (C,H,W) or (N,C,H,W), got shape {list(x_shape)}")
    if len(weight_shape) != 2:
        raise InvalidArgument("weight", f"expected a matrix (O,C), got shape {list(weight_shape)}")
    return plan_conv2d(x_shape, (*weight_shape, 1, 1), bias_shape)
