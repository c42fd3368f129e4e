"""The time grid of a simulated response, t_n = n·dt, and the checks every spec value gets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgument, OverBudget

Array = npt.NDArray[np.float64]


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


def finite(name: str, value: Any) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(name, f"must be a finite number, got {value}")
    return v


def on_grid(value: float, dt: float) -> int | None:
    """The grid index of ``value`` if it is a grid point, to within rounding; else None."""
    k = round(value / dt)
    return int(k) if abs(value - k * dt) <= 1e-9 * max(1.0, abs(value)) else None
