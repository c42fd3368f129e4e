"""LTI system responses, by discrete convolution on MXNet.

``lti_response`` simulates ``y(t) = ∫_0^t x(τ) h(t-τ) dτ`` on the grid ``t_n = n·dt`` with the
trapezoid rule. The convolution sum runs on MXNet (float64); the rule's end-point weights are an
O(N) correction on top of it. See :data:`TRAPEZOID` for the exact rule. The grid is
:mod:`.grid`, the inputs :mod:`.lti_inputs`, the systems :mod:`.lti_systems`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import conv
from .errors import InvalidArgument
from .grid import Array, Grid, plan_grid
from .lti_inputs import sample_input
from .lti_systems import expm, impulse_response  # noqa: F401  (expm: re-exported for its tests)
from .mx import mxnet as mx
from .plan import estimate
from .plan1d import Conv1dPlan, plan_conv1d


def _rows_plan(grid: Grid) -> Conv1dPlan:
    """The batch of rows :func:`causal_convolve` hands conv1d."""
    return plan_conv1d((grid.rows, 1, grid.n + grid.chunk - 1), (1, 1, grid.n), flip=True)


def convolve_seconds(grid: Grid, device: str = "cpu") -> float:
    """The cost model's time for the convolution sum of a response on ``grid``."""
    return estimate(_rows_plan(grid).plan2d, "float64", device).seconds


def causal_convolve(x: Array, h: Array, *, ctx: mx.Context | None = None) -> Array:
    """``c[n] = sum_{k=0..n} x[k] h[n-k]`` for n < N, computed by MXNet in float64.

    One 1-D convolution with an N-tap kernel would make MXNet's im2col buffer N x N. Instead
    the N outputs are split into rows of B ~ sqrt(N): row m is the stretch of x that outputs
    m·B ... m·B+B-1 read, and the rows go to MXNet as a batch, so the buffer is N x B and the
    input about N^2/B: O(N^1.5) memory for the same 2·N^2 FLOPs.
    """
    n = len(x)
    grid = Grid(dt=1.0, n=n)
    b, m = grid.chunk, grid.rows
    padded = np.zeros(n - 1 + m * b, dtype=np.float64)
    padded[n - 1 : 2 * n - 1] = x
    rows = np.lib.stride_tricks.sliding_window_view(padded, n + b - 1)[::b][:m]
    plan = _rows_plan(grid)
    out = conv.conv1d(rows[:, None, :], h[None, None, :], flip=True, dtype="float64", ctx=ctx, plan=plan)
    return np.asarray(out, dtype=np.float64).reshape(-1)[:n]


# -- the response ----------------------------------------------------------------------------

RULE = "trapezoid"
RULE_ORDER = 2
TRAPEZOID = (
    "trapezoid rule on t_n = n·dt: y(t_n) ≈ dt·[½·x(0+)·h(t_n) + Σ_{k=1}^{n−1} x(t_k)·h(t_n − t_k) "
    "+ ½·x(t_n−)·h(0+)], y(0) = 0. For the window input x is integrated exactly over each cell "
    "against h interpolated linearly (product trapezoid), so its edges need not lie on the grid; "
    "an edge on the grid reduces to the mean of x's one-sided limits. An impulse of area A is a "
    "discrete delta A/dt on the first sample, weighted dt, adding A·h(t_n) exactly. The sum runs "
    "on MXNet (float64); the error is O(dt²) for every built-in input and system."
)


@dataclass
class LtiResponse:
    t: Array
    x: Array
    h: Array
    y: Array
    y_analytic: Array | None
    max_abs_error: float | None
    analytic: str | None
    dt: float
    flops: int
    input_label: str
    system_label: str
    delta_area: float
    notes: list[str]
    rule: str = RULE
    order: int = RULE_ORDER
    discretization: str = TRAPEZOID


def lti_response(
    input: Mapping[str, Any],
    system: Mapping[str, Any],
    *,
    dt: float,
    duration: float,
    max_samples: int = 20_000,
    max_flops: int | None = None,
    ctx: mx.Context | None = None,
    grid: Grid | None = None,
) -> LtiResponse:
    """The response of an LTI system at rest to ``input``, by discrete convolution on MXNet.
    ``grid``: the one :func:`plan_grid` already made for ``dt`` and ``duration``."""
    grid = grid or plan_grid(dt, duration, max_samples=max_samples, max_flops=max_flops)
    x = sample_input(input, grid)
    sys = impulse_response(system, grid)
    h = sys.h
    driven = x.values.copy()
    driven[0] += x.delta_area / grid.dt  # the impulse as a discrete delta of area A
    y = grid.dt * causal_convolve(driven, h, ctx=ctx)
    # The trapezoid's end-point weights: ½ at τ = 0 and at τ = t_n (where x takes its left limit).
    y[1:] -= grid.dt * (0.5 * x.values[0] * h[1:] + (x.values[1:] - 0.5 * x.left[1:]) * h[0])
    y[0] = x.delta_area * h[0]
    if not np.isfinite(y).all():
        raise InvalidArgument("system", "the response overflows float64; scale the input or the gain down")
    closed = sys.closed_forms.get(str(input.get("kind")))
    y_exact, formula, err = None, None, None
    if closed is not None:
        y_exact, formula = closed(input, grid.t)
        err = float(np.max(np.abs(y - y_exact)))
    return LtiResponse(
        t=grid.t,
        x=driven,
        h=h,
        y=y,
        y_analytic=y_exact,
        max_abs_error=err,
        analytic=formula,
        dt=grid.dt,
        flops=grid.flops,
        input_label=x.label,
        system_label=sys.label,
        delta_area=x.delta_area,
        notes=x.notes + sys.notes,
    )
