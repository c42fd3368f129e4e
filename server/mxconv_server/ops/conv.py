"""conv2d, the seed's corr2d, channel mixing and conv1d."""

from __future__ import annotations

from typing import Any

from mxconv.schemas import (
    ChannelMixRequest,
    ChannelMixResult,
    Conv1dRequest,
    Conv2dRequest,
    Corr2dRequest,
    TensorResult,
)

from ..compute import plan as planning
from ..compute.plan1d import plan_conv1d as plan_1d
from . import Operation, Work, tensor

FIX = "use a smaller input, kernel or batch, or a larger stride"


def shape(t: Any) -> tuple[int, ...] | None:
    return None if t is None else tuple(t.shape)


def priced(p: planning.Conv2dPlan, dtype: str, device: str, detail: Any = None) -> Work:
    est = planning.estimate(p, dtype, device)
    return Work(
        flops=p.flops,
        out_elements=p.out_elements,
        seconds=est.seconds,
        what=f"this convolution ({p.flops:.3g} FLOPs, as {est.label})",
        fix=FIX,
        plan=detail or p,
    )


def plan_conv2d(body: Conv2dRequest, settings: Any, device: str) -> Work:
    p = planning.plan_conv2d(body.x.shape, body.weight.shape, shape(body.bias), **body.geometry())
    return priced(p, body.dtype, device)


def run_conv2d(body: Conv2dRequest, work: Work, ctx: Any) -> dict[str, Any]:
    from ..compute import conv

    y = conv.conv2d(body.x, body.weight, body.bias, flip=body.flip, dtype=body.dtype, ctx=ctx, plan=work.plan)
    return tensor(y)


def plan_corr2d(body: Corr2dRequest, settings: Any, device: str) -> Work:
    return priced(planning.plan_corr2d(body.x.shape, body.kernel.shape), body.dtype, device)


def run_corr2d(body: Corr2dRequest, work: Work, ctx: Any) -> dict[str, Any]:
    from ..compute import conv

    return tensor(conv.corr2d(body.x, body.kernel, dtype=body.dtype, ctx=ctx, plan=work.plan))


def plan_channel_mix(body: ChannelMixRequest, settings: Any, device: str) -> Work:
    p = planning.plan_channel_mix(body.x.shape, body.weight.shape, shape(body.bias))
    return priced(p, body.dtype, device)


def run_channel_mix(body: ChannelMixRequest, work: Work, ctx: Any) -> dict[str, Any]:
    from ..compute import conv

    mix = conv.channel_mix(
        body.x,
        body.weight,
        body.bias,
        matrix_view=body.matrix_view,
        dtype=body.dtype,
        ctx=ctx,
        plan=work.plan,
    )
    out = tensor(mix.y)
    if body.matrix_view:
        out["matrix_view"] = {"x_flat": mix.x_flat, "w": mix.w, "y_flat": mix.y_flat}
    return out


def plan_conv1d(body: Conv1dRequest, settings: Any, device: str) -> Work:
    p1 = plan_1d(body.x.shape, body.weight.shape, shape(body.bias), **body.geometry())
    return priced(p1.plan2d, body.dtype, device, detail=p1)


def run_conv1d(body: Conv1dRequest, work: Work, ctx: Any) -> dict[str, Any]:
    from ..compute import conv

    y = conv.conv1d(body.x, body.weight, body.bias, flip=body.flip, dtype=body.dtype, ctx=ctx, plan=work.plan)
    return tensor(y)


OPERATIONS = [
    Operation(
        "conv2d",
        Conv2dRequest,
        TensorResult,
        ("x", "weight", "bias"),
        plan_conv2d,
        run_conv2d,
        "2-D cross-correlation (flip=false) or convolution (flip=true), with padding, stride, "
        "dilation, groups, channels, batches and bias.",
        "convolution",
    ),
    Operation(
        "corr2d",
        Corr2dRequest,
        TensorResult,
        ("x", "kernel"),
        plan_corr2d,
        run_corr2d,
        "The seed's corr2d: valid cross-correlation of a 2-D input with a 2-D kernel.",
        "convolution",
    ),
    Operation(
        "channel-mix",
        ChannelMixRequest,
        ChannelMixResult,
        ("x", "weight", "bias"),
        plan_channel_mix,
        run_channel_mix,
        "A 1x1 convolution mixing C channels into O; optionally the matrix view Y' = W X'.",
        "convolution",
    ),
    Operation(
        "conv1d",
        Conv1dRequest,
        TensorResult,
        ("x", "weight", "bias"),
        plan_conv1d,
        run_conv1d,
        "1-D cross-correlation (flip=false) or convolution (flip=true), with padding, stride, "
        "dilation, groups, channels, batches and bias: conv2d with height 1.",
        "signals",
    ),
]
