"""1-D convolution and LTI system responses on MXNet.

``conv1d`` is the 2-D convolution of :mod:`.conv` with height 1: :func:`plan_conv1d` checks the
1-D arguments (with 1-D messages) and hands :func:`.conv.plan_conv2d` the same problem with a
unit height, so padding, groups, flip and budgets behave exactly as they do in 2-D.

``lti_response`` simulates ``y(t) = ∫_0^t x(τ) h(t-τ) dτ`` on the grid ``t_n = n·dt`` with the
trapezoid rule. The convolution sum runs on MXNet (float64); the rule's end-point weights are an
O(N) correction on top of it. See :data:`TRAPEZOID` for the exact rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import conv
from .errors import InvalidArgument, OverBudget
from .mx import mxnet as mx

Array = npt.NDArray[np.float64]

# -- conv1d ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conv1dPlan:
    """A checked conv1d: the equivalent height-1 conv2d plan and the 1-D output shape."""

    plan2d: conv.Conv2dPlan
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
        _, _, left, right = conv._resolve_padding(padding, (1, k), (1, d), (1, s), flip)
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
    if padding_mode == "reflect" and max(left, right) >= length:
        raise InvalidArgument(
            "padding", f"reflect padding {[left, right]} must be smaller than the input length {length}"
        )
    if padding_mode == "circular" and max(left, right) > length:
        raise InvalidArgument(
            "padding", f"circular padding {[left, right]} must not exceed the input length {length}"
        )
    span = d * (k - 1) + 1
    if span > length + left + right:
        raise InvalidArgument(
            "weight",
            f"kernel spans {span} samples (with dilation {d}) but the padded input has only "
            f"{length + left + right}; use a smaller kernel or dilation, or more padding",
        )
    # The same problem in 2-D with height 1: (..., L) -> (..., 1, L).
    plan2d = conv.plan_conv2d(
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


def conv1d(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    padding_mode: str = "zeros",
    dilation: Any = 1,
    groups: int = 1,
    flip: bool = False,
    dtype: str = "float32",
    ctx: mx.Context | None = None,
    plan: Conv1dPlan | None = None,
) -> npt.NDArray[Any]:
    """Batched, grouped 1-D cross-correlation (``flip=False``) or convolution (``flip=True``)."""
    x_np, w_np = np.asarray(x), np.asarray(weight)
    b_np = None if bias is None else np.asarray(bias)
    if plan is None:
        plan = plan_conv1d(
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
    y = conv.conv2d(x_np, w_np, b_np, flip=flip, dtype=dtype, ctx=ctx, plan=plan.plan2d)
    return y.reshape(plan.out_shape)


# -- the time grid ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    dt: float
    n: int  # samples t_0 = 0 ... t_{n-1} = (n-1) dt

    @property
    def t(self) -> Array:
        return np.arange(self.n, dtype=np.float64) * self.dt

    @property
    def chunk(self) -> int:
        """Outputs per batch row of the chunked convolution (see :func:`causal_convolve`)."""
        return max(1, math.isqrt(self.n - 1) + 1)

    @property
    def rows(self) -> int:
        return -(-self.n // self.chunk)

    @property
    def flops(self) -> int:
        return 2 * self.rows * self.chunk * self.n


def plan_grid(dt: float, duration: float, *, max_samples: int, max_flops: int | None = None) -> Grid:
    """The grid 0, dt, ..., floor(duration/dt)·dt, refused before any work if over budget."""
    if not (math.isfinite(dt) and dt > 0):
        raise InvalidArgument("dt", f"must be a finite number > 0, got {dt}")
    if not (math.isfinite(duration) and duration > 0):
        raise InvalidArgument("duration", f"must be a finite number > 0, got {duration}")
    steps = duration / dt
    if not math.isfinite(steps) or steps + 1 > max_samples:
        raise OverBudget(
            f"duration/dt = {duration:g}/{dt:g} asks for {steps + 1:.4g} samples, over the limit of "
            f"{max_samples} (MXCONV_MAX_SIGNAL_SAMPLES); increase dt or shorten duration"
        )
    n = int(math.floor(steps + 1e-9)) + 1
    if n < 2:
        raise InvalidArgument("dt", f"dt = {dt:g} is longer than duration = {duration:g}; make dt smaller")
    grid = Grid(dt=dt, n=n)
    if max_flops is not None and grid.flops > max_flops:
        raise OverBudget(
            f"a {n}-sample response needs {grid.flops:.3g} FLOPs, over the limit of {max_flops:.3g}; "
            "increase dt or shorten duration"
        )
    return grid


def _rows_plan(grid: Grid) -> Conv1dPlan:
    """The batch of rows :func:`causal_convolve` hands conv1d."""
    return plan_conv1d((grid.rows, 1, grid.n + grid.chunk - 1), (1, 1, grid.n), flip=True)


def convolve_seconds(grid: Grid, ctx: mx.Context | None = None) -> float:
    """The cost model's time for the convolution sum of a response on ``grid``."""
    return conv.estimate(_rows_plan(grid).plan2d, "float64", ctx).seconds


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
    out = conv1d(rows[:, None, :], h[None, None, :], flip=True, dtype="float64", ctx=ctx, plan=plan)
    return np.asarray(out, dtype=np.float64).reshape(-1)[:n]


# -- inputs ----------------------------------------------------------------------------------


@dataclass
class Sampled:
    """An input on the grid, in the form the trapezoid rule needs.

    ``values[k]`` is the weight node k carries: x(t_k) for a smooth input (x(0+) at k = 0);
    ``left[k]`` is x(t_k-), the end point's value; for the window both come from exact cell
    integrals (see :func:`_cell_weights`). ``delta_area`` is the weight of a Dirac impulse at 0.
    """

    values: Array
    left: Array
    delta_area: float = 0.0
    label: str = ""
    notes: list[str] = field(default_factory=list)


def _finite(name: str, value: Any) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(name, f"must be a finite number, got {value}")
    return v


def _on_grid(value: float, dt: float) -> int | None:
    """The grid index of ``value`` if it is a grid point, to within rounding; else None."""
    k = round(value / dt)
    return int(k) if abs(value - k * dt) <= 1e-9 * max(1.0, abs(value)) else None


def _cell_weights(a: float, start: float, end: float, grid: Grid) -> tuple[Array, Array]:
    """Node values for x = a on [start, end], integrated exactly over every grid cell.

    On the cell [t_k, t_k+1] with h linear in between (what the trapezoid assumes), the cell's
    integral is dt·(A_k·h(t_n − t_k) + B_k·h(t_n − t_k+1)) with A_k = ∫ x·(1−θ) dθ and
    B_k = ∫ x·θ dθ over θ ∈ [0, 1]. For x = a on [p, q] ⊂ [0, 1] these are closed forms, so
    an edge anywhere in a cell keeps the rule second order. Node k then carries B_k−1 + A_k
    (= x(t_k) where x is constant, the mean of the two limits at an edge on the grid), the
    end point 2·B_n−1 (= x(t_n−)), and the first node 2·A_0 (= x(0+)).
    """
    tk = np.arange(grid.n, dtype=np.float64) * grid.dt
    p = np.clip((start - tk) / grid.dt, 0.0, 1.0)
    q = np.clip((end - tk) / grid.dt, 0.0, 1.0)
    cell_a = a * ((q - q * q / 2) - (p - p * p / 2))
    cell_b = a * (q * q - p * p) / 2
    values = np.empty(grid.n)
    values[0] = 2 * cell_a[0]
    values[1:] = cell_b[:-1] + cell_a[1:]
    left = np.empty(grid.n)
    left[0] = values[0]
    left[1:] = 2 * cell_b[:-1]
    return values, left


def sample_input(spec: Mapping[str, Any], grid: Grid) -> Sampled:
    """Sample one of the input kinds: step, impulse, window, ramp, sine or custom."""
    kind = spec.get("kind")
    t = grid.t
    if kind == "step":
        a = _finite("input.amplitude", spec.get("amplitude", 1.0))
        v = np.full(grid.n, a)
        return Sampled(v, v, label=f"step, amplitude {a:g}")
    if kind == "impulse":
        area = _finite("input.area", spec.get("area", 1.0))
        v = np.zeros(grid.n)
        return Sampled(v, v, delta_area=area, label=f"impulse, area {area:g}")
    if kind == "ramp":
        r = _finite("input.slope", spec.get("slope", 1.0))
        v = r * t
        return Sampled(v, v, label=f"ramp, slope {r:g}")
    if kind == "sine":
        f = _finite("input.freq", spec.get("freq", 1.0))
        a = _finite("input.amplitude", spec.get("amplitude", 1.0))
        nyquist = 0.5 / grid.dt
        if f <= 0:
            raise InvalidArgument("input.freq", f"must be > 0, got {f:g}")
        if f >= nyquist:
            raise InvalidArgument(
                "input.freq",
                f"{f:g} Hz is at or above the grid's Nyquist frequency 1/(2·dt) = {nyquist:g} Hz; "
                "make dt smaller",
            )
        v = a * np.sin(2 * np.pi * f * t)
        notes = []
        if f * grid.dt > 0.05:
            notes.append(
                f"only {1 / (f * grid.dt):.1f} samples per period of the sine: expect a coarse result"
            )
        return Sampled(v, v, label=f"sine, {f:g} Hz, amplitude {a:g}", notes=notes)
    if kind == "window":
        start = _finite("input.start", spec.get("start", 0.0))
        width = _finite("input.width", spec.get("width", 1.0))
        a = _finite("input.amplitude", spec.get("amplitude", 1.0))
        if start < 0:
            raise InvalidArgument(
                "input.start", f"must be >= 0 (the system is at rest until t = 0), got {start:g}"
            )
        if width <= 0:
            raise InvalidArgument("input.width", f"must be > 0, got {width:g}")
        end = start + width
        values, left = _cell_weights(a, start, end, grid)
        return Sampled(values, left, label=f"window [{start:g}, {end:g}], amplitude {a:g}")
    if kind == "custom":
        samples = np.asarray(spec.get("samples"), dtype=np.float64)
        if samples.ndim != 1:
            raise InvalidArgument(
                "input.samples", f"expected a 1-D array x(k·dt), got shape {list(samples.shape)}"
            )
        if len(samples) > grid.n:
            raise InvalidArgument(
                "input.samples",
                f"{len(samples)} samples do not fit the grid of {grid.n} (duration/dt + 1); "
                "lengthen duration or give fewer samples",
            )
        if not np.isfinite(samples).all():
            raise InvalidArgument("input.samples", "holds NaN or Inf; every value must be finite")
        v = np.zeros(grid.n)
        v[: len(samples)] = samples
        notes = (
            []
            if len(samples) == grid.n
            else [f"input.samples padded with zeros from t = {len(samples) * grid.dt:g}"]
        )
        return Sampled(v, v, label=f"custom input, {len(samples)} samples", notes=notes)
    raise InvalidArgument(
        "input.kind", f"unknown input {kind!r}; use step, impulse, window, ramp, sine or custom"
    )


# -- systems ---------------------------------------------------------------------------------


def expm(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Matrix exponential: [6/6] Padé approximant with scaling and squaring.

    Golub & Van Loan, Matrix Computations, algorithm 11.3.1: scale so that ||A/2^j||_inf <= 1/2,
    where the [6/6] approximant's relative error is below 4e-16, then square j times.
    """
    a = np.asarray(a, dtype=np.float64)
    norm = float(np.abs(a).sum(axis=1).max()) if a.size else 0.0
    j = max(0, int(math.floor(math.log2(norm))) + 2) if norm > 0 else 0
    a = a / 2.0**j
    q = 6
    eye = np.eye(len(a))
    x, num, den, c = eye, eye.copy(), eye.copy(), 1.0
    for k in range(1, q + 1):
        c = c * (q - k + 1) / ((2 * q - k + 1) * k)
        x = a @ x
        num = num + c * x
        den = den + (-c if k % 2 else c) * x
    f = np.linalg.solve(den, num)
    for _ in range(j):
        f = f @ f
    return f  # type: ignore[no-any-return]


def _poly(name: str, coeffs: Any) -> Array:
    arr = np.asarray(coeffs, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise InvalidArgument(name, "needs at least one coefficient")
    if not np.isfinite(arr).all():
        raise InvalidArgument(name, "holds NaN or Inf; every coefficient must be finite")
    nonzero = np.flatnonzero(arr)
    return arr[nonzero[0] :] if nonzero.size else arr[-1:]


MAX_TF_ORDER = 20


def tf_impulse_response(num: Any, den: Any, grid: Grid) -> Array:
    """Exact samples h(k·dt) of the inverse Laplace transform of a strictly proper num(s)/den(s).

    Controllable canonical state space (A, B, C), so h(t) = C e^{At} B; the samples follow from
    one matrix exponential Φ = e^{A·dt}: h_k = C Φ^k B, propagated in blocks. Repeated poles
    (critical damping) need no special case, unlike partial fractions.
    """
    b, a = _poly("system.num", num), _poly("system.den", den)
    if not a.any():
        raise InvalidArgument("system.den", "is the zero polynomial")
    order = len(a) - 1
    if order > MAX_TF_ORDER:
        raise InvalidArgument("system.den", f"degree {order} is over the limit of {MAX_TF_ORDER}")
    if b.any() and len(b) - 1 >= order:
        raise InvalidArgument(
            "system.num",
            f"the transfer function must be strictly proper: num has degree {len(b) - 1} and den degree "
            f"{order}, so h(t) would hold a Dirac impulse (or its derivatives) that a sampled response "
            "cannot carry; make deg(num) < deg(den)",
        )
    if not b.any():
        return np.zeros(grid.n)
    b, a = b / a[0], a / a[0]
    c_row = np.zeros(order)
    c_row[order - len(b) :] = b
    a_mat = np.zeros((order, order))
    a_mat[0, :] = -a[1:]
    a_mat[1:, :-1] = np.eye(order - 1)
    phi = expm(a_mat * grid.dt)
    block = min(64, grid.n)
    states = np.empty((order, grid.n))
    v = np.zeros(order)
    v[0] = 1.0
    for k in range(block):
        states[:, k] = v
        v = phi @ v
    jump = np.linalg.matrix_power(phi, block)
    for start in range(block, grid.n, block):
        stop = min(start + block, grid.n)
        states[:, start:stop] = (jump @ states[:, start - block : start])[:, : stop - start]
    h = c_row @ states
    if not np.isfinite(h).all():
        poles = np.roots(a)
        raise InvalidArgument(
            "system.den",
            f"the impulse response overflows on this grid: the system is unstable (largest pole real part "
            f"{poles.real.max():.3g}); shorten duration",
        )
    return h  # type: ignore[no-any-return]


@dataclass
class System:
    h: Array
    label: str
    notes: list[str] = field(default_factory=list)
    # Closed forms of y for the inputs that have one: input kind -> (y(t), formula).
    closed_forms: dict[str, Callable[[Mapping[str, Any], Array], tuple[Array, str]]] = field(
        default_factory=dict
    )


def _first_order(spec: Mapping[str, Any], grid: Grid) -> System:
    tau = _finite("system.T", spec.get("T"))
    k = _finite("system.gain", spec.get("gain", 1.0))
    if tau <= 0:
        raise InvalidArgument("system.T", f"the time constant must be > 0, got {tau:g}")
    t = grid.t
    h = (k / tau) * np.exp(-t / tau)

    def step(s: Mapping[str, Any], t: Array) -> tuple[Array, str]:
        a = float(s.get("amplitude", 1.0))
        return a * k * (1 - np.exp(-t / tau)), "A·K·(1 − e^{−t/T})"

    def impulse(s: Mapping[str, Any], t: Array) -> tuple[Array, str]:
        area = float(s.get("area", 1.0))
        return area * (k / tau) * np.exp(-t / tau), "A·(K/T)·e^{−t/T}"

    def window(s: Mapping[str, Any], t: Array) -> tuple[Array, str]:
        a, t0, w = float(s.get("amplitude", 1.0)), float(s.get("start", 0.0)), float(s.get("width", 1.0))
        u = t - t0
        rising = 1 - np.exp(-np.clip(u, 0, None) / tau)
        # (e^{w/T} − 1)·e^{−u/T}, written so that it cannot overflow for w >> T
        decay = np.exp(-np.clip(u - w, 0, None) / tau) - np.exp(-np.clip(u, 0, None) / tau)
        y = np.where(u < 0, 0.0, np.where(u <= w, rising, decay))
        return a * k * y, "A·K·(1 − e^{−(t−s)/T}) on [s, s+w]; A·K·(e^{w/T} − 1)·e^{−(t−s)/T} after"

    def ramp(s: Mapping[str, Any], t: Array) -> tuple[Array, str]:
        r = float(s.get("slope", 1.0))
        return r * k * (t - tau + tau * np.exp(-t / tau)), "r·K·(t − T + T·e^{−t/T})"

    def sine(s: Mapping[str, Any], t: Array) -> tuple[Array, str]:
        a, f = float(s.get("amplitude", 1.0)), float(s.get("freq", 1.0))
        w = 2 * np.pi * f
        y = (
            a
            * k
            / (1 + (w * tau) ** 2)
            * (np.sin(w * t) - w * tau * np.cos(w * t) + w * tau * np.exp(-t / tau))
        )
        return y, "A·K/(1+ω²T²)·(sin ωt − ωT·cos ωt + ωT·e^{−t/T})"

    return System(
        h=h,
        label=f"first order K/(Ts+1), T = {tau:g}, K = {k:g}",
        closed_forms={"step": step, "impulse": impulse, "window": window, "ramp": ramp, "sine": sine},
    )


def _second_order(spec: Mapping[str, Any], grid: Grid) -> System:
    wn = _finite("system.wn", spec.get("wn"))
    zeta = _finite("system.zeta", spec.get("zeta"))
    k = _finite("system.gain", spec.get("gain", 1.0))
    if wn <= 0:
        raise InvalidArgument("system.wn", f"the natural frequency must be > 0, got {wn:g}")
    if zeta < 0:
        raise InvalidArgument("system.zeta", f"the damping ratio must be >= 0, got {zeta:g}")
    h = tf_impulse_response([k * wn * wn], [1.0, 2 * zeta * wn, wn * wn], grid)

    def unit_step(t: Array) -> tuple[Array, str]:
        if abs(zeta - 1) < 1e-9:
            return 1 - np.exp(-wn * t) * (1 + wn * t), "A·K·(1 − e^{−ωn·t}(1 + ωn·t))"
        if zeta < 1:
            wd = wn * math.sqrt(1 - zeta * zeta)
            y = 1 - np.exp(-zeta * wn * t) * (
                np.cos(wd * t) + zeta / math.sqrt(1 - zeta * zeta) * np.sin(wd * t)
            )
            return y, "A·K·(1 − e^{−ζωn·t}(cos ωd·t + ζ/√(1−ζ²)·sin ωd·t)), ωd = ωn√(1−ζ²)"
        r = math.sqrt(zeta * zeta - 1)
        s1, s2 = -wn * (zeta - r), -wn * (zeta + r)
        y = 1 + (s2 * np.exp(s1 * t) - s1 * np.exp(s2 * t)) / (s1 - s2)
        return y, "A·K·(1 + (s₂e^{s₁t} − s₁e^{s₂t})/(s₁ − s₂)), s₁,₂ = −ωn(ζ ∓ √(ζ²−1))"

    def step(s: Mapping[str, Any], t: Array) -> tuple[Array, str]:
        y, formula = unit_step(t)
        return float(s.get("amplitude", 1.0)) * k * y, formula

    return System(
        h=h,
        label=f"second order K·ωn²/(s² + 2ζωn·s + ωn²), ωn = {wn:g}, ζ = {zeta:g}, K = {k:g}",
        closed_forms={"step": step},
    )


def _custom_system(spec: Mapping[str, Any], grid: Grid) -> System:
    h_in = np.asarray(spec.get("h"), dtype=np.float64)
    t0 = _finite("system.t0", spec.get("t0", 0.0))
    if h_in.ndim != 1:
        raise InvalidArgument("system.h", f"expected a 1-D array h(t0 + k·dt), got shape {list(h_in.shape)}")
    if not np.isfinite(h_in).all():
        raise InvalidArgument("system.h", "holds NaN or Inf; every value must be finite")
    if t0 < 0:
        raise InvalidArgument(
            "system.t0",
            f"h starts at t0 = {t0:g} < 0: a causal system's impulse response is zero for negative time; "
            "drop the samples before t = 0 and set t0 = 0",
        )
    delay = _on_grid(t0, grid.dt)
    if delay is None:
        raise InvalidArgument("system.t0", f"t0 = {t0:g} must be a multiple of dt = {grid.dt:g}")
    h = np.zeros(grid.n)
    take = max(0, min(len(h_in), grid.n - delay))
    h[delay : delay + take] = h_in[:take]
    notes = []
    if take < len(h_in):
        notes.append(f"system.h: {len(h_in) - take} samples beyond t = {(grid.n - 1) * grid.dt:g} unused")
    return System(h=h, label=f"custom h, {len(h_in)} samples from t0 = {t0:g}", notes=notes)


def _transfer_function(spec: Mapping[str, Any], grid: Grid) -> System:
    num, den = spec.get("num"), spec.get("den")
    h = tf_impulse_response(num, den, grid)
    return System(h=h, label=f"transfer function num {list(np.ravel(num))} / den {list(np.ravel(den))}")


_SYSTEMS = {
    "first_order": _first_order,
    "second_order": _second_order,
    "custom": _custom_system,
    "transfer_function": _transfer_function,
}


def impulse_response(spec: Mapping[str, Any], grid: Grid) -> System:
    kind = spec.get("kind")
    if kind not in _SYSTEMS:
        raise InvalidArgument("system.kind", f"unknown system {kind!r}; use one of {', '.join(_SYSTEMS)}")
    return _SYSTEMS[str(kind)](spec, grid)


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
    max_seconds: float | None = None,
    ctx: mx.Context | None = None,
) -> LtiResponse:
    """The response of an LTI system at rest to ``input``, by discrete convolution on MXNet."""
    grid = plan_grid(dt, duration, max_samples=max_samples, max_flops=max_flops)
    seconds = convolve_seconds(grid, ctx)
    if max_seconds is not None and seconds > max_seconds:
        raise OverBudget(
            f"a {grid.n}-sample response is predicted to take {seconds:.3g} s, over the limit of "
            f"{max_seconds:g} s (MXCONV_MAX_REQUEST_SECONDS); increase dt or shorten duration"
        )
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
