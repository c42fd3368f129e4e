"""Helpers every compute blueprint shares: settings, budgets, output encoding."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from flask import current_app, g, request
from mxconv import tensors
from mxconv.schemas import ErrorResponse

from .. import binary, metrics
from ..compute import cost, deadline
from ..compute.conv import Conv2dPlan, check_budget, estimate
from ..compute.errors import OverBudget
from ..config import Settings
from ..watchdog import WATCHDOG

T = TypeVar("T")

#: Error responses every compute endpoint declares in the OpenAPI spec.
COMPUTE_ERRORS: dict[int, Any] = {
    400: ErrorResponse,
    401: ErrorResponse,
    406: ErrorResponse,
    413: ErrorResponse,
    415: ErrorResponse,
    422: ErrorResponse,
    504: ErrorResponse,
}


def settings() -> Settings:
    return current_app.config["MXCONV"]  # type: ignore[no-any-return]


def device() -> Any:
    return current_app.extensions["mxconv.device"]


def check_inputs(**arrays: np.ndarray | None) -> None:
    """Refuse any input tensor over MXCONV_MAX_TENSOR_ELEMENTS."""
    limit = settings().max_tensor_elements
    for name, arr in arrays.items():
        if arr is not None and arr.size > limit:
            raise OverBudget(
                f"{name} has {arr.size} elements, over the limit of {limit} (MXCONV_MAX_TENSOR_ELEMENTS)"
            )


def conv_geometry(body: Any) -> dict[str, Any]:
    """The fields conv1d and conv2d requests share (mxconv.schemas.ConvOptions plus stride,
    padding and dilation), as the keyword arguments of their plan functions."""
    return {
        "stride": body.stride,
        "padding": body.padding,
        "padding_mode": body.padding_mode,
        "dilation": body.dilation,
        "groups": body.groups,
        "flip": body.flip,
    }


def check_plan(plan: Conv2dPlan, dtype: str = "float32") -> cost.Estimate:
    """Refuse a convolution over the element, FLOP or time budget; the formulation it runs as."""
    s = settings()
    check_budget(plan, max_elements=s.max_tensor_elements, max_flops=s.max_flops)
    est = estimate(plan, dtype, device())
    check_seconds(
        est.seconds,
        f"this convolution ({plan.flops:.3g} FLOPs, as {est.label})",
        "use a smaller input, kernel or batch, or a larger stride",
    )
    return est


def check_seconds(seconds: float, what: str, fix: str) -> None:
    """413 before any work when the cost model predicts it over MXCONV_MAX_REQUEST_SECONDS."""
    limit = settings().max_request_seconds
    if seconds > limit:
        raise OverBudget(
            f"{what} is predicted to take {seconds:.3g} s, over the limit of {limit:g} s "
            f"(MXCONV_MAX_REQUEST_SECONDS); {fix}"
        )


def encode(arr: np.ndarray, encoding: str) -> Any:
    # Results go straight to orjson (app.OrjsonProvider): lists as the ndarray itself, which
    # orjson writes without a Python-level tolist(); base64 as a ready-made JSON fragment.
    return tensors.to_b64_orjson(arr) if encoding == "base64" else np.ascontiguousarray(arr)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run a request's compute under its deadline (504 past it), and time it."""
    limit = settings().max_request_seconds
    sock = request.environ.get("gunicorn.socket")
    start = time.perf_counter()
    with deadline.limit(limit), WATCHDOG.guard(limit, sock, g.get("request_id", "-")):
        result = fn()
    seconds = time.perf_counter() - start
    metrics.observe_compute(seconds)
    return result, seconds * 1000


def tensor_result(y: np.ndarray, encoding: str, flops: int, elapsed_ms: float) -> dict[str, Any]:
    metrics.count_flops(flops)  # every compute endpoint answers through here
    return {
        # For Accept: application/x-npy, binary.tensor_io sends the array itself: no encoding.
        "y": y if binary.wants_npy() else encode(y, encoding),
        "shape": list(y.shape),
        "dtype": y.dtype.name,
        "flops": flops,
        "elapsed_ms": round(elapsed_ms, 3),
    }
