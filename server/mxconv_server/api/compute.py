"""One handler for every compute operation (``mxconv_server.ops``): check, price, run, answer.

For each request: the input tensors' sizes, the operation's plan (shapes, FLOPs, predicted
seconds) against the budgets, the run under the deadline, the compute-time and FLOP metrics,
then the answer in the negotiated form: JSON (tensors as lists or base64), a ``.npy`` body for a
single tensor, or one of the operation's own renderers (a PNG).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from .. import metrics
from ..ops import Operation, registry
from ..transport import codec, io
from . import common

Reader = Callable[[], Any]


def _input(body: Any, dotted: str) -> np.ndarray | None:
    value = body
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value if isinstance(value, np.ndarray) else None


@dataclass(frozen=True)
class Computed:
    fields: dict[str, Any]  # what the operation's run returned
    flops: int
    ms: float  # compute time


def compute(op: Operation, body: Any) -> Computed:
    """Check, price and run ``op`` on a validated request: the input sizes, the plan against
    the budgets, the run under the deadline, the metrics. Every protocol's handler (this
    module's /v1, ``oip``'s /v2) computes through here, and only encodes differently."""
    common.check_inputs(**{name: _input(body, name) for name in op.inputs})
    work = op.plan(body, common.settings(), common.device().device_type)
    common.check_work(work)
    fields, ms = common.timed(lambda: op.run(body, work, common.device()))
    metrics.count_flops(work.flops)
    return Computed(fields, work.flops, ms)


def handle(op: Operation, body: Any) -> Any:
    done = compute(op, body)
    fields, ms = done.fields, done.ms
    answer = io.negotiated(op.io)
    if answer in op.renderers:
        rendered = op.renderers[answer](fields, body)
        data, headers = rendered if isinstance(rendered, tuple) else (rendered, {})
        resp = Response(data, mimetype=answer)
        resp.headers.update(headers)
        resp.headers.update(_work_headers(done.flops, ms))
        return _vary(op, resp)
    result = {name: fields[name] for name in op.result.model_fields if name in fields}
    result.update(flops=done.flops, elapsed_ms=round(ms, 3))
    if answer == io.NPY:
        return codec.npy_response(result)
    return _vary(op, jsonify(_encoded(result, getattr(body, "output_encoding", "list"))))


def _encoded(value: Any, encoding: str) -> Any:
    if isinstance(value, np.ndarray):
        return common.encode(value, encoding)
    if isinstance(value, dict):
        return {k: _encoded(v, encoding) for k, v in value.items()}
    return value


def _work_headers(flops: int, ms: float) -> dict[str, str]:
    return {"X-Flops": str(flops), "X-Elapsed-Ms": f"{ms:.3f}"}


def _vary(op: Operation, resp: Response) -> Response:
    if len(op.io.produces) > 1:
        resp.headers["Vary"] = "Accept"
    return resp


def view(op: Operation, reader: Reader | None = None) -> Callable[..., Any]:
    """The Flask view of ``op``: its request model as the typed ``body`` that flask-openapi3
    validates and documents, or, with a ``reader``, whatever the reader makes of the request."""
    if reader is None:

        def serve(body: Any) -> Any:
            return handle(op, body)

        serve.__annotations__ = {"body": op.request, "return": Any}
    else:

        def serve() -> Any:  # type: ignore[misc]
            return handle(op, reader())

    serve.__name__ = op.endpoint
    serve.__doc__ = op.summary
    return io.describe(op.io)(serve)


def blueprint(readers: dict[str, Reader], extensions: dict[str, dict[str, Any]]) -> APIBlueprint:
    """Every operation under /v1, each tagged with its resource. ``readers`` and
    ``extensions`` are, by operation name, how to read a body that is not JSON and the
    OpenAPI fields that describe it."""
    bp = APIBlueprint("compute", __name__, url_prefix="/v1")
    for op in registry():
        responses: dict[Any, Any] = {200: op.result, **common.COMPUTE_ERRORS}
        if io.JSON not in op.io.produces:
            binary = {t: {"schema": {"type": "string", "format": "binary"}} for t in op.io.produces}
            responses[200] = {"description": op.summary, "content": binary}
        bp.post(
            f"/{op.name}",
            responses=responses,
            tags=[Tag(name=op.tag)],
            openapi_extensions=extensions.get(op.name),
        )(view(op, readers.get(op.name)))
    return bp
