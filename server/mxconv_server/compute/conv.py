"""Running a planned convolution on MXNet: conv2d, the seed's corr2d, channel mixing, conv1d.

:mod:`.plan` checks every argument and works out the shapes first (without MXNet); the
formulations themselves (direct, 1x1 GEMM, phase split, in pieces) are :mod:`.kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import cost, kernels
from .errors import InvalidArgument
from .mx import mxnet as mx
from .mx import nd
from .padding import pad as pad_input
from .plan import (  # noqa: F401  (the planning names, re-exported for code that plans and runs)
    BUILTIN_PAD_MAX,
    DTYPES,
    Conv2dPlan,
    PaddingSpec,
    Pair,
    check_budget,
    choose_path,
    cost_shape,
    estimate,
    operator_padding,
    plan_channel_mix,
    plan_conv2d,
    plan_corr2d,
)
from .plan1d import Conv1dPlan, plan_conv1d  # noqa: F401  (re-exported, as above)


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
    est = formulation or estimate(plan, dtype, ctx.device_type)
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
    conv_pad = operator_padding(plan)
    if conv_pad is None:
        x4 = pad_input(np.asarray(x4, dtype=dtype), plan.pads, plan.padding_mode)
        conv_pad = (0, 0)
    data = kernels.as_input(x4, dtype, ctx)
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
    xp = pad_input(np.asarray(x4, dtype=dtype), plan.pads, plan.padding_mode)
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


def conv1d(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    flip: bool = False,
    dtype: str = "float32",
    ctx: mx.Context | None = None,
    plan: Conv1dPlan | None = None,
    **geometry: Any,
) -> npt.NDArray[Any]:
    """Batched, grouped 1-D cross-correlation (``flip=False``) or convolution (``flip=True``):
    :func:`conv2d` with height 1 (see :func:`.plan.plan_conv1d`)."""
    x_np, w_np = np.asarray(x), np.asarray(weight)
    b_np = None if bias is None else np.asarray(bias)
    if plan is None:
        bias_shape = None if b_np is None else b_np.shape
        plan = plan_conv1d(x_np.shape, w_np.shape, bias_shape, flip=flip, **geometry)
    y = conv2d(x_np, w_np, b_np, flip=flip, dtype=dtype, ctx=ctx, plan=plan.plan2d)
    return y.reshape(plan.out_shape)
