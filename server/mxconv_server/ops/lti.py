"""LTI system responses, as numbers and as a plot."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import numpy as np
from mxconv.schemas import LtiPlotRequest, LtiRequest, LtiResult

from ..compute import lti
from ..transport.io import PNG, ViewIO
from . import Operation, Work


def plan_response(body: LtiRequest, settings: Any, device: str) -> Work:
    grid = lti.plan_grid(body.dt, body.duration, max_samples=settings.max_signal_samples)
    return Work(
        flops=grid.flops,
        out_elements=grid.n,
        seconds=lti.convolve_seconds(grid, device),
        what=f"a {grid.n}-sample response",
        fix="increase dt or shorten duration",
        plan=grid,
    )


def run_response(body: LtiRequest, work: Work, ctx: Any) -> dict[str, Any]:
    r = lti.lti_response(
        dict(body.input), dict(body.system), dt=body.dt, duration=body.duration, ctx=ctx, grid=work.plan
    )
    return {
        "t": r.t,
        "x": r.x,
        "h": r.h,
        "y": r.y,
        "y_analytic": r.y_analytic,
        "max_abs_error": r.max_abs_error,
        "analytic": r.analytic,
        "rule": r.rule,
        "order": r.order,
        "discretization": r.discretization,
        "dt": r.dt,
        "n_samples": len(r.t),
        "input": r.input_label,
        "system": r.system_label,
        "notes": r.notes,
        "delta_area": r.delta_area,  # for the plot; not a field of LtiResult
    }


def png(fields: dict[str, Any], body: LtiPlotRequest) -> bytes:
    r = SimpleNamespace(**fields, input_label=fields["input"], system_label=fields["system"])
    return render_png(r, body.width, body.height)


def render_png(r: Any, width: int, height: int) -> bytes:
    """y, the input and the closed form on one axes, exactly width x height pixels (Agg)."""
    # Imported here: matplotlib costs ~0.3 s to import, paid only by workers that plot.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    font = max(5.0, min(11.0, min(width, height) / 45))
    ax = fig.add_subplot()
    if r.delta_area:
        top = float(np.max(np.abs(r.y))) or 1.0
        ax.annotate(
            "",
            xy=(0, np.sign(r.delta_area) * top),
            xytext=(0, 0),
            arrowprops={"arrowstyle": "->", "color": "tab:gray", "lw": 1.5},
        )
        ax.plot([], [], color="tab:gray", label=f"input: {r.input_label} (arrow, not to scale)")
    else:
        ax.plot(r.t, r.x, color="tab:gray", ls="--", lw=1.2, label=f"input: {r.input_label}")
    ax.plot(r.t, r.y, color="tab:blue", lw=2, label=f"response y ({r.rule}, dt = {r.dt:g})")
    if r.y_analytic is not None:
        ax.plot(
            r.t,
            r.y_analytic,
            color="tab:red",
            ls=":",
            lw=2,
            label=f"closed form (max |error| {r.max_abs_error:.2g})",
        )
    ax.set_xlabel("t [s]", fontsize=font)
    ax.set_title(r.system_label, fontsize=font)
    ax.tick_params(labelsize=font)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=font * 0.9, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


OPERATIONS = [
    Operation(
        "lti/response",
        LtiRequest,
        LtiResult,
        ("input.samples", "system.h"),
        plan_response,
        run_response,
        "The response y = x * h of an LTI system at rest, by discrete convolution on MXNet. "
        "Inputs: step, impulse, window, ramp, sine, custom samples. Systems: first_order, "
        "second_order, custom h samples, transfer_function (strictly proper num/den in s). The "
        "rule (trapezoid, second order) is stated in the response; where a closed form exists it "
        "is returned with the maximum absolute error against it.",
        "signals",
        io=ViewIO(),
    ),
    Operation(
        "lti/response.png",
        LtiPlotRequest,
        LtiResult,
        ("input.samples", "system.h"),
        plan_response,
        run_response,
        "The same simulation as /v1/lti/response, plotted as a PNG of width x height pixels.",
        "signals",
        io=ViewIO(produces=(PNG,)),
        renderers={PNG: png},
    ),
]
