"""2-D convolution, the seed's corr2d, and channel mixing."""

from __future__ import annotations

from typing import Any

from flask_openapi3 import APIBlueprint, Tag
from mxconv.schemas import (
    ChannelMixRequest,
    ChannelMixResult,
    Conv2dRequest,
    Corr2dRequest,
    TensorResult,
)

from .. import binary
from ..compute import conv
from . import common

bp = APIBlueprint("conv", __name__, url_prefix="/v1", abp_tags=[Tag(name="convolution")])


@bp.post("/conv2d", responses={200: TensorResult, **common.COMPUTE_ERRORS})
@binary.tensor_io
def conv2d(body: Conv2dRequest) -> Any:
    """2-D cross-correlation (flip=false) or convolution (flip=true), with padding, stride,
    dilation, groups, channels, batches and bias."""
    common.check_inputs(x=body.x, weight=body.weight, bias=body.bias)
    bias_shape = None if body.bias is None else body.bias.shape
    plan = conv.plan_conv2d(body.x.shape, body.weight.shape, bias_shape, **common.conv_geometry(body))
    est = common.check_plan(plan, body.dtype)
    y, ms = common.timed(
        lambda: conv.conv2d(
            body.x,
            body.weight,
            body.bias,
            flip=body.flip,
            dtype=body.dtype,
            ctx=common.device(),
            plan=plan,
            formulation=est,
        )
    )
    return common.tensor_result(y, body.output_encoding, plan.flops, ms)


@bp.post("/corr2d", responses={200: TensorResult, **common.COMPUTE_ERRORS})
@binary.tensor_io
def corr2d(body: Corr2dRequest) -> Any:
    """The seed's corr2d: valid cross-correlation of a 2-D input with a 2-D kernel."""
    common.check_inputs(x=body.x, kernel=body.kernel)
    plan = conv.plan_corr2d(body.x.shape, body.kernel.shape)
    common.check_plan(plan, body.dtype)
    y, ms = common.timed(
        lambda: conv.corr2d(body.x, body.kernel, dtype=body.dtype, ctx=common.device(), plan=plan)
    )
    return common.tensor_result(y, body.output_encoding, plan.flops, ms)


@bp.post("/channel-mix", responses={200: ChannelMixResult, **common.COMPUTE_ERRORS})
@binary.tensor_io
def channel_mix(body: ChannelMixRequest) -> Any:
    """A 1x1 convolution mixing C channels into O; optionally the matrix view Y' = W X'."""
    common.check_inputs(x=body.x, weight=body.weight, bias=body.bias)
    plan = conv.plan_channel_mix(
        body.x.shape, body.weight.shape, None if body.bias is None else body.bias.shape
    )
    common.check_plan(plan, body.dtype)
    mix, ms = common.timed(
        lambda: conv.channel_mix(
            body.x,
            body.weight,
            body.bias,
            matrix_view=body.matrix_view,
            dtype=body.dtype,
            ctx=common.device(),
            plan=plan,
        )
    )
    out = common.tensor_result(mix.y, body.output_encoding, plan.flops, ms)
    if body.matrix_view:
        out["matrix_view"] = {
            name: common.encode(getattr(mix, name), body.output_encoding)
            for name in ("x_flat", "w", "y_flat")
        }
    return out
