"""The systems of an LTI simulation: impulse responses h(t) on the grid, with closed forms."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgument
from .grid import Array, Grid, finite, on_grid


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
    tau = finite("system.T", spec.get("T"))
    k = finite("system.gain", spec.get("gain", 1.0))
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
    wn = finite("system.wn", spec.get("wn"))
    zeta = finite("system.zeta", spec.get("zeta"))
    k = finite("system.gain", spec.get("gain", 1.0))
    if wn <= 0:
        raise InvalidArgument("system.wn", f"the natural frequency must be > 0, got {wn:g}")
    if zeta < 0:
        raise InvalidArgument("system.zeta", f"the damping ratio must be >= 0, got {zeta:g}")
    # The transfer function's coefficients are derived: an overflow names the fields sent.
    for value, fields in (
        (k * wn * wn, "system.gain and system.wn"),
        (2 * zeta * wn, "system.zeta and system.wn"),
    ):
        if not math.isfinite(value):
            raise InvalidArgument(
                fields.split(" and ")[0],
                f"K·ωn² or 2ζωn overflows float64 (K = {k:g}, ωn = {wn:g}, ζ = {zeta:g}); "
                f"make {fields} smaller",
            )
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
    t0 = finite("system.t0", spec.get("t0", 0.0))
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
    delay = on_grid(t0, grid.dt)
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
