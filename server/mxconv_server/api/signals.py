"""1-D convolution and LTI system responses (JSON and a PNG plot)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from mxconv.schemas import (
    Conv1dRequest,
    LtiPlotRequest,
    LtiRequest,
    LtiResult,
    TensorResult,
)

from .. import binary, metrics
from ..compute import signals
from . import common

bp = APIBlueprint("signals", __name__, url_prefix="/v1", abp_tags=[Tag(name="signals")])

PNG_RESPONSE: dict[str, Any] = {
    "description": "The response plotted: y, the input and, where one exists, the closed form.",
    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
}


@bp.post("/conv1d", responses={200: TensorResult, **common.COMPUTE_ERRORS})
@binary.tensor_io
def conv1d(body: Conv1dRequest) -> Any:
    """1-D cross-correlation (flip=false) or convolution (flip=true), with padding, stride,
    dilation, groups, channels, batches and bias: conv2d with height 1."""
    common.check_inputs(x=body.x, weight=body.weight, bias=body.bias)
    bias_shape = None if body.bias is None else body.bias.shape
    plan = signals.plan_conv1d(body.x.shape, body.weight.shape, bias_shape, **common.conv_geometry(body))
    common.check_plan(plan.plan2d, body.dtype)
    y, ms = common.timed(
        lambda: signals.conv1d(
            body.x, body.weight, body.bias, flip=body.flip, dtype=body.dtype, ctx=common.device(), plan=plan
        )
    )
    return common.tensor_result(y, body.output_encoding, plan.flops, ms)


def _simulate(body: LtiRequest) -> tuple[signals.LtiResponse, float]:
    common.check_inputs(
        **{
            "input.samples": getattr(body.input, "samples", None),
            "system.h": getattr(body.system, "h", None),
        }
    )
    s = common.settings()
    r, ms = common.timed(
        lambda: signals.lti_response(
            dict(body.input),
            dict(body.system),
            dt=body.dt,
            duration=body.duration,
            max_samples=s.max_signal_samples,
            max_flops=s.max_flops,
            max_seconds=s.max_request_seconds,
            ctx=common.device(),
        )
    )
    metrics.count_flops(r.flops)  # not through common.tensor_result, so counted here
    return r, ms


@bp.post("/lti/response", responses={200: LtiResult, **common.COMPUTE_ERRORS})
def lti_response(body: LtiRequest) -> Any:
    """The response y = x * h of an LTI system at rest, by discrete convolution on MXNet.

    Inputs: step, impulse, window, ramp, sine, custom samples. Systems: first_order,
    second_order, custom h samples, transfer_function (strictly proper num/den in s). The
    rule (trapezoid, second order) is stated in the response; where a closed form exists it is
    returned with the maximum absolute error against it."""
    r, ms = _simulate(body)
    enc = body.output_encoding
    return {
        "t": common.encode(r.t, enc),
        "x": common.encode(r.x, enc),
        "h": common.encode(r.h, enc),
        "y": common.encode(r.y, enc),
        "y_analytic": None if r.y_analytic is None else common.encode(r.y_analytic, enc),
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
        "flops": r.flops,
        "elapsed_ms": round(ms, 3),
    }


@bp.post("/lti/response.png", responses={200: PNG_RESPONSE, **common.COMPUTE_ERRORS})
def lti_response_png(body: LtiPlotRequest) -> Any:
    """The same simulation as /v1/lti/response, plotted as a PNG of width x height pixels."""
    r, _ = _simulate(body)
    return Response(render_png(r, body.width, body.height), mimetype="image/png")


def render_png(r: signals.LtiResponse, width: int, height: int) -> bytes:
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
