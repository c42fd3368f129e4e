"""Networks: the summary of a network spec, and predicting with (or exporting) a trained one.

``networks/summary`` is an operation like any other: the generic handler serves it at
``POST /v1/networks/summary``; its work is arithmetic on shapes, no MXNet at all.

A trained model is a succeeded job's network and weights (:class:`TrainedModel`; a layer job
is a network of its one conv2d layer). :func:`predict_operation` is what serves it: an
operation whose request, a :class:`PredictCall`, carries the model and the inputs; the /v1
route (``POST /v1/models/<job_id>/predict``) hands it to the generic handler, and another
protocol (the /v2 Open Inference Protocol) can do the same with the same operation.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from mxconv.schemas import NetworkSummary, NetworkSummaryRequest, PredictRequest, TensorResult

from ..compute import netjob, netplan
from ..compute.errors import InvalidArgument, OverBudget
from ..transport.io import PLAIN, TENSOR_IO
from . import Operation, Work, tensor

#: Trained networks kept built and hybridized per process, most recently used last.
CACHED_MODELS = 8


def plan_summary(body: NetworkSummaryRequest, settings: Any, device: str) -> Work:
    """Arithmetic on shapes only; a sample or a layer output over MXCONV_MAX_TENSOR_ELEMENTS
    is refused, as it would be anywhere else (and keeps every count within 64 bits)."""
    limit = settings.max_tensor_elements
    if math.prod(body.input_shape) > limit:
        raise OverBudget(
            f"input_shape {body.input_shape} holds {math.prod(body.input_shape)} elements, over the "
            f"limit of {limit} (MXCONV_MAX_TENSOR_ELEMENTS)"
        )
    plan = netplan.plan_network([layer.model_dump() for layer in body.network], body.input_shape)
    for lp in plan.layers:
        if lp.out_elements > limit:
            raise OverBudget(
                f"layer {lp.index} ({lp.type}) outputs {list(lp.out_shape)}, {lp.out_elements} elements a "
                f"sample, over the limit of {limit} (MXCONV_MAX_TENSOR_ELEMENTS); use a smaller input or "
                "fewer channels"
            )
    return Work(flops=0, out_elements=0, seconds=0.0, what="this summary", fix="", plan=plan)


def run_summary(body: NetworkSummaryRequest, work: Work, ctx: Any) -> dict[str, Any]:
    return netplan.summary(work.plan)


@dataclass(frozen=True)
class TrainedModel:
    """What a succeeded job learned: the planned network and its weights ("<layer>.<param>")."""

    job_id: str
    plan: netplan.NetworkPlan
    weights: dict[str, np.ndarray]
    classes: int | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.plan.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.plan.output_shape


@dataclass(frozen=True)
class PredictCall:
    """A predict request with its model: what the generic handler passes to plan and run."""

    model: TrainedModel
    x: np.ndarray
    output_encoding: str = "list"


def plan_predict(call: PredictCall, settings: Any, device: str) -> Work:
    m = call.model
    x_shape = tuple(call.x.shape)
    if len(x_shape) != len(m.sample_shape) + 1 or x_shape[1:] != m.sample_shape:
        raise InvalidArgument(
            "x",
            f"the model of job {m.job_id} takes x of shape {['N', *m.sample_shape]} (N samples of the "
            f"shape it was trained on); got {list(x_shape)}",
        )
    n = x_shape[0]
    return Work(
        flops=n * m.plan.flops,
        out_elements=n * math.prod(m.output_shape),
        seconds=netjob.forward_seconds(m.plan, n),
        what=f"this prediction ({n} samples, {n * m.plan.flops:.3g} FLOPs)",
        fix="send fewer samples at a time",
    )


_cache: OrderedDict[tuple[str, str], Any] = OrderedDict()
_lock = threading.Lock()


def built(model: TrainedModel, ctx: Any) -> Any:
    """The model's network, built once per process (and context), hybridized."""
    from ..compute import network

    key = (model.job_id, str(ctx))
    with _lock:
        net = _cache.get(key)
        if net is not None:
            _cache.move_to_end(key)
            return net
    net = network.ready(model.plan, model.weights, ctx)
    with _lock:
        _cache[key] = net
        while len(_cache) > CACHED_MODELS:
            _cache.popitem(last=False)
    return net


def run_predict(call: PredictCall, work: Work, ctx: Any) -> dict[str, Any]:
    from ..compute import network

    return tensor(network.predict(built(call.model, ctx), call.x, ctx))


def predict_operation() -> Operation:
    """The operation that runs a trained model on new inputs (its request: a PredictCall)."""
    return PREDICT


def export(model: TrainedModel, fmt: str, spec: dict[str, Any]) -> bytes:
    """The model as a .zip of MXNet's symbol JSON and params (``mxnet``) or as ONNX."""
    from ..compute import export as exporting

    if fmt == "onnx":
        return exporting.onnx_model(model.plan, model.weights)
    return exporting.mxnet_zip(model.plan, model.weights, spec)


PREDICT = Operation(
    "models/predict",
    PredictRequest,
    TensorResult,
    ("x",),
    plan_predict,
    run_predict,
    "Run a succeeded job's trained network (or layer) on new inputs x: [N, *its sample shape].",
    "models",
    io=TENSOR_IO,
)

OPERATIONS = [
    Operation(
        "networks/summary",
        NetworkSummaryRequest,
        NetworkSummary,
        (),
        plan_summary,
        run_summary,
        "A network's layers: output shapes, parameters, FLOPs and receptive fields (against the "
        "original input), with the parameters a dense layer would need for the same mapping.",
        "networks",
        io=PLAIN,
    )
]
