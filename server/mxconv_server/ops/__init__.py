"""The compute operations, each a plan/run pair, and the registry the API serves them from.

An :class:`Operation` is what one endpoint computes: its request and result models, a ``plan``
that checks the request and prices it without doing any of the work (shapes, FLOPs, the cost
model's seconds), and a ``run`` that does it on MXNet. One generic handler
(``api/compute.py``) serves every operation under ``/v1``, doing the limits, the budget, the
deadline, timing, metrics and encoding the same way for all of them; the operations know
nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..transport.io import TENSOR_IO, ViewIO


@dataclass(frozen=True)
class Work:
    """A checked request, priced before any of it is done."""

    flops: int
    out_elements: int
    seconds: float  # the cost model's prediction
    what: str  # the work in words, for a refusal: "this convolution (3.2e+10 FLOPs, as phase-4x4)"
    fix: str  # what to change when it is over a limit
    plan: Any = None  # what run needs (a Conv2dPlan, a grid ...)


@dataclass(frozen=True)
class Operation:
    name: str  # the route under /v1, e.g. "conv2d" or "lti/response"
    request: type[BaseModel]
    result: type[BaseModel]
    inputs: tuple[str, ...]  # the request's tensor fields (their sizes are limited)
    plan: Callable[[Any, Any, str], Work]  # (request, settings, device type) -> Work
    run: Callable[[Any, Work, Any], dict[str, Any]]  # (request, work, MXNet context) -> result fields
    summary: str
    tag: str
    io: ViewIO = TENSOR_IO
    #: Answers in other media types than JSON: media type -> (result fields, request) -> the
    #: body, or the body and extra headers.
    renderers: dict[str, Callable[[dict[str, Any], Any], Any]] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.name.replace("/", "_").replace("-", "_").replace(".", "_")


def tensor(y: np.ndarray) -> dict[str, Any]:
    """The fields of a one-tensor result (``TensorResult``)."""
    return {"y": y, "shape": list(y.shape), "dtype": y.dtype.name}


def registry() -> list[Operation]:
    """Every operation the service computes, in the order the API lists them."""
    from . import conv, images, lti, networks

    return [*conv.OPERATIONS, *lti.OPERATIONS, *images.OPERATIONS, *networks.OPERATIONS]
