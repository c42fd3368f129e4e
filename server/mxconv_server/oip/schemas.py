"""The Open Inference Protocol's JSON objects (KServe's required API, Triton's binary tensor data
and parameters extensions), as pydantic models: they validate the request's envelope, and
/openapi.json is generated from them. What is inside a tensor, and which parameters a model
takes, the models themselves check (``models.py``), with mxconv's own request models.
"""

from __future__ import annotations

from typing import Annotated, Any

from mxconv import wire
from pydantic import BaseModel, ConfigDict, Field

#: A parameter's value. The protocol has strings, numbers and booleans; a list (``[1, 2]`` for
#: a stride) is taken too, as is its JSON text (``"[1, 2]"``).
Parameters = Annotated[
    dict[str, Any],
    Field(
        default_factory=dict,
        json_schema_extra={
            "additionalProperties": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "array", "items": {"type": "number"}},
                ]
            }
        },
    ),
]
Dim = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestInput(_Strict):
    name: str = Field(
        description="The input's name: x, weight, bias, kernel or image (see the model's metadata)."
    )
    shape: list[Dim] = Field(max_length=wire.MAX_RANK, description="The tensor's shape.")
    datatype: str = Field(description="FP32 or FP64; mxconv's models take no other datatype.")
    parameters: Parameters = Field(
        description='{"binary_data_size": N}: the data follows the JSON, as N bytes.'
    )
    data: Any = Field(
        None,
        description="The values, flat in row-major order (or nested); absent with binary data.",
        json_schema_extra={"type": "array", "items": {}},
    )


class RequestOutput(_Strict):
    name: str
    parameters: Parameters = Field(description='{"binary_data": true}: this output as binary data.')


class InferenceRequest(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "inputs": [
                    {"name": "x", "shape": [3, 3], "datatype": "FP32", "data": [0, 1, 2, 3, 4, 5, 6, 7, 8]},
                    {"name": "kernel", "shape": [2, 2], "datatype": "FP32", "data": [0, 1, 2, 3]},
                ]
            }
        },
    )

    id: str | None = Field(None, description="Given back in the response.")
    model_name: str | None = Field(None, description="If given, the model named in the URL.")
    model_version: str | None = Field(None, description="If given, the version named in the URL.")
    parameters: Parameters = Field(
        description="The model's options (stride, padding, ...), and binary_data_output: true for "
        "every output as binary data."
    )
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(None, description="Which outputs, and how; default all.")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = Field(None, description='{"binary_data_size": N} for binary data.')
    data: list[float | None] | None = Field(
        None, description="The values, flat in row-major order; null stands for NaN or Inf."
    )


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="flops and elapsed_ms, as /v1 answers them (and the mapping)."
    )
    outputs: list[ResponseOutput]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size.")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RepositoryIndexRequest(_Strict):
    ready: bool = Field(False, description="Only the models that are ready (all of them are).")


class RepositoryModel(BaseModel):
    name: str
    version: str
    state: str
