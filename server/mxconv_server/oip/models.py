"""mxconv's compute operations (``ops.registry()``) as the protocol's models: their names,
inputs, outputs and parameters, and how a protocol request becomes the operation's own request.

A model's inputs are the operation's tensors under their /v1 names; every other field of its
/v1 request model is a request parameter. The request is then validated by that same pydantic
model, so a wrong option gets the message /v1 gives it, naming the field the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mxconv.schemas import ChannelMixRequest, Conv1dRequest, Conv2dRequest, Corr2dRequest, ImageFilterRequest
from pydantic import BaseModel

from ..api import common, images
from ..errors import ApiError
from ..ops import Operation, registry

VERSION = "1"
#: The protocol's name for the framework behind a model (KServe's list of platforms).
PLATFORM = "mxnet_mxnet"
#: /v1 request fields that mean nothing here: the protocol says how outputs travel.
_NOT_PARAMETERS = frozenset({"output_encoding"})
#: Parameters Triton reserves, and why mxconv does not take them.
_STATELESS = "mxconv's models are stateless: there are no sequences"
_RESERVED = {
    "sequence_id": _STATELESS,
    "sequence_start": _STATELESS,
    "sequence_end": _STATELESS,
    "priority": "mxconv serves requests as they come: there are no priorities",
    "timeout": "the deadline is the server's, MXCONV_MAX_REQUEST_SECONDS ({limit:g} s here)",
    "headers": "mxconv forwards no headers as parameters",
}


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]  # -1: any size
    optional: bool = False


Fields = dict[str, Any]


@dataclass(frozen=True)
class Model:
    name: str
    op: Operation
    request: type[BaseModel]  # the /v1 request model: its non-tensor fields are the parameters
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    #: The request dict (inputs as arrays, parameters) -> what ``op`` runs on.
    build: Callable[[dict[str, Any]], Any]
    #: The operation's result fields -> the output tensors it gave, by name.
    results: Callable[[Fields], dict[str, np.ndarray]] = lambda f: {"y": f["y"]}
    #: The operation's result fields -> scalars for the response's parameters (besides flops).
    info: Callable[[Fields], dict[str, Any]] = lambda f: {}
    #: Outputs that only come with a parameter set: output -> (parameter, value).
    implies: dict[str, tuple[str, Any]] = field(default_factory=dict)
    #: The metrics label of its inferences; None: its own path (trained models share one).
    label: str | None = None

    @property
    def parameters(self) -> tuple[str, ...]:
        tensors = {t.name for t in self.inputs}
        return tuple(f for f in self.request.model_fields if f not in tensors and f not in _NOT_PARAMETERS)

    def _names(self, tensors: tuple[Tensor, ...]) -> str:
        return ", ".join(t.name for t in tensors)

    def check_outputs(self, names: list[str]) -> None:
        known = {t.name for t in self.outputs}
        for name in names:
            if name not in known:
                raise ApiError(
                    400,
                    f"model {self.name!r} has no output {name!r}; "
                    f"its outputs are {self._names(self.outputs)}",
                )

    def build_request(
        self, inputs: dict[str, np.ndarray], parameters: dict[str, Any], outputs: list[str] | None
    ) -> Any:
        """The operation's request from the protocol's inputs and parameters, validated by the
        /v1 request model (a pydantic error is the 400 /v1 would give as a 422)."""
        known = {t.name for t in self.inputs}
        for name in inputs:
            if name not in known:
                raise ApiError(
                    400,
                    f"model {self.name!r} has no input {name!r}; its inputs are {self._names(self.inputs)}",
                )
        for t in self.inputs:
            if not t.optional and t.name not in inputs:
                raise ApiError(
                    400,
                    f"model {self.name!r} needs the input {t.name!r}; "
                    f"its inputs are {self._names(self.inputs)}"
                    + "".join(f" ({i.name} is optional)" for i in self.inputs if i.optional),
                )
        for key in parameters:
            if key in _RESERVED:
                reason = _RESERVED[key].format(limit=common.settings().max_request_seconds)
                raise ApiError(400, f"parameter {key!r} is not supported: {reason}; leave it out")
            if key not in self.parameters:
                raise ApiError(
                    400,
                    f"model {self.name!r} takes no parameter {key!r}; its parameters are "
                    f"{', '.join(self.parameters)} (and binary_data_output)",
                )
        data: dict[str, Any] = {key: _json_text(value) for key, value in parameters.items()}
        for name in outputs or ():
            if name in self.implies:
                key, value = self.implies[name]
                if data.setdefault(key, value) != value:
                    raise ApiError(400, f"output {name!r} needs the parameter {key}={json.dumps(value)}")
        if "dtype" in self.parameters and "dtype" not in data and "x" in inputs:
            data["dtype"] = inputs["x"].dtype.name  # FP64 inputs are computed in float64
        data.update(inputs)
        return self.build(data)


def _json_text(value: Any) -> Any:
    """``"[1, 2]"`` as the list it spells (parameters are strings, numbers or booleans)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _channel_mix_results(f: Fields) -> dict[str, np.ndarray]:
    return {"y": f["y"], **(f.get("matrix_view") or {})}


def _filter_results(f: Fields) -> dict[str, np.ndarray]:
    return {"y": f["y"], "kernel": np.asarray(f["kernel"], dtype=np.float32)}


ANY4, ANY3, ANY2, ANY1 = (-1,) * 4, (-1,) * 3, (-1,) * 2, (-1,)


@functools.cache
def models() -> dict[str, Model]:
    """Every model, by name, in the order the repository index lists them."""
    ops = {op.name: op for op in registry()}
    conv_inputs = (Tensor("x", ANY4), Tensor("weight", ANY4), Tensor("bias", ANY1, optional=True))
    table = [
        Model(
            "conv2d",
            ops["conv2d"],
            Conv2dRequest,
            conv_inputs,
            (Tensor("y", ANY4),),
            Conv2dRequest.model_validate,
        ),
        Model(
            "conv1d",
            ops["conv1d"],
            Conv1dRequest,
            (Tensor("x", ANY3), Tensor("weight", ANY3), Tensor("bias", ANY1, optional=True)),
            (Tensor("y", ANY3),),
            Conv1dRequest.model_validate,
        ),
        Model(
            "corr2d",
            ops["corr2d"],
            Corr2dRequest,
            (Tensor("x", ANY2), Tensor("kernel", ANY2)),
            (Tensor("y", ANY2),),
            Corr2dRequest.model_validate,
        ),
        Model(
            "channel_mix",
            ops["channel-mix"],
            ChannelMixRequest,
            (Tensor("x", ANY4), Tensor("weight", ANY2), Tensor("bias", ANY1, optional=True)),
            (Tensor("y", ANY4), Tensor("x_flat", ANY2), Tensor("w", ANY2), Tensor("y_flat", ANY2)),
            ChannelMixRequest.model_validate,
            results=_channel_mix_results,
            implies={name: ("matrix_view", True) for name in ("x_flat", "w", "y_flat")},
        ),
        Model(
            "image_filter",
            ops["images/filter"],
            ImageFilterRequest,
            (Tensor("image", ANY3),),
            (Tensor("y", ANY3), Tensor("kernel", ANY2)),
            images.filter_input,
            results=_filter_results,
            info=lambda f: {"mapping": f["mapping"]},
        ),
    ]
    return {m.name: m for m in table}


def find(name: str, version: str | None = None) -> Model:
    """The model ``name`` (at ``version``, if given), or a 404 that names the ones there are."""
    model = models().get(name)
    if model is None:
        raise ApiError(
            404,
            f"unknown model {name!r}; the models are {', '.join(models())} "
            "(POST /v2/repository/index lists them)",
        )
    if version is not None and version != VERSION:
        raise ApiError(404, f"model {name!r} has no version {version!r}; its one version is {VERSION!r}")
    return model
