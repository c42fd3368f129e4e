"""What every blueprint shares: settings, the device, the budgets, output encoding, timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from flask import current_app, g, request
from mxconv.schemas import ErrorResponse
from mxconv.wire import b64

from .. import metrics
from ..compute import deadline
from ..compute.errors import OverBudget
from ..config import Settings
from ..ops import Work
from ..transport import compat
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


def check_work(work: Work) -> None:
    """Refuse work over the element, FLOP or time budget, before any of it is done (413)."""
    s = settings()
    if work.out_elements > s.max_tensor_elements:
        raise OverBudget(
            f"{work.what}: its output has {work.out_elements} elements, over the limit of "
            f"{s.max_tensor_elements} (MXCONV_MAX_TENSOR_ELEMENTS); {work.fix}"
        )
    if work.flops > s.max_flops:
        raise OverBudget(
            f"{work.what} needs {work.flops:.3g} FLOPs, over the limit of {s.max_flops:.3g} "
            f"(MXCONV_MAX_FLOPS); {work.fix}"
        )
    if work.seconds > s.max_request_seconds:
        raise OverBudget(
            f"{work.what} is predicted to take {work.seconds:.3g} s, over the limit of "
            f"{s.max_request_seconds:g} s (MXCONV_MAX_REQUEST_SECONDS); {work.fix}"
        )


def encode(arr: np.ndarray, encoding: str) -> Any:
    # Results go straight to orjson (app.OrjsonProvider): lists as the ndarray itself, which
    # orjson writes without a Python-level tolist(); base64 as a ready-made JSON fragment.
    return b64.to_b64_orjson(arr) if encoding == "base64" else np.ascontiguousarray(arr)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run a request's compute under its deadline (504 past it), and time it."""
    limit = settings().max_request_seconds
    sock = compat.client_socket(request.environ)
    start = time.perf_counter()
    with deadline.limit(limit), WATCHDOG.guard(limit, sock, g.get("request_id", "-"), request.path):
        result = fn()
    seconds = time.perf_counter() - start
    metrics.observe_compute(seconds)
    return result, seconds * 1000
