"""Planning a 1-D convolution: the 2-D plan of the same problem with height 1.

:func:`plan_conv1d` checks the 1-D arguments (with 1-D messages) and hands
:func:`.plan.plan_conv2d` the same problem with a unit height, so padding, groups, flip and
budgets behave exactly as they do in 2-D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidArgument
from .padding import check as check_padding
from .plan import Conv2dPlan, _resolve_padding, plan_conv2d


@dataclass(frozen=True)
class Conv1dPlan:
    """A checked conv1d: the equivalent height-1 conv2d plan and the 1-D output shape."""

    plan2d: Conv2dPlan
    out_shape: tuple[int, ...]
    pads: tuple[int, int]  # left, right

    @property
    def flops(self) -> int:
        return self.plan2d.flops


def _int_param(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(name, f"expected a single integer for 1-D, got {value!r}")
    if value < minimum:
        raise InvalidArgument(name, f"must be at least {minimum}, got {value}")
    return int(value)


def plan_conv1d(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    padding_mode: str = "zeros",
    dilation: Any = 1,
    groups: int = 1,
    flip: bool = False,
) -> Conv1dPlan:
    """Check every conv1d argument and work out the output shape, without touching MXNet.

    ``x`` is (L,), (C,L) or (N,C,L); ``weight`` is (k,), (O,C/groups,k), or (O,k) / (C,k)
    where that is unambiguous (as for conv2d's 3-D weights). ``padding`` is an int,
    ``[left, right]`` or ``"valid"``/``"same"``/``"full"``.
    """
    x_shape, weight_shape = tuple(x_shape), tuple(weight_shape)
    if not 1 <= len(x_shape) <= 3:
        raise InvalidArgument("x", f"expected (L,), (C,L) or (N,C,L), got shape {list(x_shape)}")
    if not 1 <= len(weight_shape) <= 3:
        raise InvalidArgument(
            "weight", f"expected (k,), (O,C/groups,k) or a 2-D form, got shape {list(weight_shape)}"
        )
    s = _int_param("stride", stride, 1)
    d = _int_param("dilation", dilation, 1)
    if groups < 1:
        raise InvalidArgument("groups", f"must be at least 1, got {groups}")
    length = x_shape[-1]
    channels = x_shape[-2] if len(x_shape) >= 2 else 1
    if channels % groups:
        raise InvalidArgument(
            "groups", f"input has {channels} channels, which is not divisible by groups={groups}"
        )
    in_per_group = channels // groups
    if len(weight_shape) == 2:
        rows = weight_shape[0]
        if not ((groups == 1 and rows == in_per_group) or in_per_group == 1):
            raise InvalidArgument(
                "weight",
                f"a 2-D weight {list(weight_shape)} is ambiguous for {in_per_group} input channels "
                "per group; give it as (O, C/groups, k)",
            )
    if len(weight_shape) == 3 and weight_shape[1] * groups != channels:
        raise InvalidArgument(
            "weight",
            f"weight {list(weight_shape)} expects {weight_shape[1] * groups} input channels "
            f"({weight_shape[1]} per group x {groups} groups), but x has {channels}",
        )
    k = weight_shape[-1]
    if isinstance(padding, str):
        if padding == "same" and s != 1:
            raise InvalidArgument("padding", f"'same' needs stride 1 (got {s}); give explicit padding")
        _, _, left, right = _resolve_padding(padding, (1, k), (1, d), (1, s), flip)
    else:
        if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
            left = right = int(padding)
        elif isinstance(padding, (list, tuple)) and len(padding) == 2:
            left, right = int(padding[0]), int(padding[1])
        else:
            raise InvalidArgument(
                "padding", f"expected an int, [left, right], valid, same or full; got {padding!r}"
            )
        if min(left, right) < 0:
            raise InvalidArgument("padding", f"must not be negative, got {[left, right]}")
    check_padding(padding_mode, max(left, right), length, "length")
    span = d * (k - 1) + 1
    if span > length + left + right:
        raise InvalidArgument(
            "weight",
            f"kernel spans {span} samples (with dilation {d}) but the padded input has only "
            f"{length + left + right}; use a smaller kernel or dilation, or more padding",
        )
    # The same problem in 2-D with height 1: (..., L) -> (..., 1, L).
    plan2d = plan_conv2d(
        (*x_shape[:-1], 1, length),
        (*weight_shape[:-1], 1, k),
        bias_shape,
        stride=(1, s),
        padding=[0, 0, left, right],
        padding_mode=padding_mode,
        dilation=(1, d),
        groups=groups,
        flip=flip,
    )
    out2 = plan2d.out_shape
    return Conv1dPlan(plan2d=plan2d, out_shape=(*out2[:-2], out2[-1]), pads=(left, right))
