"""The inputs x(t) of an LTI simulation, sampled on the grid as the trapezoid rule needs them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidArgument
from .grid import Array, Grid, finite


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
        a = finite("input.amplitude", spec.get("amplitude", 1.0))
        v = np.full(grid.n, a)
        return Sampled(v, v, label=f"step, amplitude {a:g}")
    if kind == "impulse":
        area = finite("input.area", spec.get("area", 1.0))
        v = np.zeros(grid.n)
        return Sampled(v, v, delta_area=area, label=f"impulse, area {area:g}")
    if kind == "ramp":
        r = finite("input.slope", spec.get("slope", 1.0))
        v = r * t
        return Sampled(v, v, label=f"ramp, slope {r:g}")
    if kind == "sine":
        f = finite("input.freq", spec.get("freq", 1.0))
        a = finite("input.amplitude", spec.get("amplitude", 1.0))
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
        start = finite("input.start", spec.get("start", 0.0))
        width = finite("input.width", spec.get("width", 1.0))
        a = finite("input.amplitude", spec.get("amplitude", 1.0))
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
