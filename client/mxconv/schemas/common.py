"""What every resource's models share: tensors on the wire, strictness, results, errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    WrapValidator,
)
from pydantic import ValidationError as PydanticValidationError

from .. import wire


def _nested_lists(max_rank: int, leaf: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON Schemas of nested lists of ``leaf``, rank 1 to ``max_rank`` (rectangularity and
    finiteness cannot be said in JSON Schema; the validators check them)."""
    out: list[dict[str, Any]] = []
    items = leaf
    for _ in range(max_rank):
        items = {"type": "array", "minItems": 1, "items": items}
        out.append(items)
    return out


def _tensor_schema(leaf: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "anyOf": [*_nested_lists(wire.MAX_RANK, leaf), _B64_SCHEMA],
    }


_B64_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["dtype", "shape", "b64"],
    "additionalProperties": False,
    "properties": {
        "dtype": {"type": "string", "enum": sorted(wire.DTYPES)},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "minItems": 1,
            "maxItems": wire.MAX_RANK,
        },
        "b64": {"type": "string", "format": "byte"},
    },
}
_TENSOR_SCHEMA = _tensor_schema(
    {"type": "number"},
    "A tensor: nested lists of finite numbers (row-major), or "
    '{"dtype": "float32"|"float64", "shape": [...], "b64": "<little-endian bytes>"}.',
)
#: Outputs can overflow to Inf (or hold NaN); JSON has no such numbers, so lists carry null.
_OUT_TENSOR_SCHEMA = _tensor_schema(
    {"anyOf": [{"type": "number"}, {"type": "null"}]},
    "A tensor: nested lists of numbers (row-major; null stands for NaN or Inf, which JSON "
    'cannot hold), or {"dtype": "float32"|"float64", "shape": [...], "b64": "<little-endian bytes>"}.',
)


def _decode_finite(value: Any) -> npt.NDArray[Any]:
    return wire.decode(value, require_finite=True)


def _decode_any(value: Any) -> npt.NDArray[Any]:
    arr = wire.decode(value, require_finite=False)
    # A result is the caller's to keep and change: never a read-only view of a response buffer.
    return arr if arr.flags.writeable else arr.copy()


def _serialize(arr: npt.NDArray[Any]) -> Any:
    return np.asarray(arr).tolist()


#: A request tensor: finite numbers only.
Tensor = Annotated[
    npt.NDArray[Any],
    PlainValidator(_decode_finite),
    PlainSerializer(_serialize),
    WithJsonSchema(_TENSOR_SCHEMA),
]
#: A response tensor: whatever the computation produced.
OutTensor = Annotated[
    npt.NDArray[Any],
    PlainValidator(_decode_any),
    PlainSerializer(_serialize),
    WithJsonSchema(_OUT_TENSOR_SCHEMA),
]


def _one_of(expected: str) -> WrapValidator:
    """One clear message for a union field, instead of one error per branch of the union."""

    def check(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except PydanticValidationError:
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ValueError(f"expected {expected}; got {shown}") from None

    return WrapValidator(check)


DType = Literal["float32", "float64"]  # = mxconv.wire.DTYPES (tests/test_wire.py holds them equal)
Encoding = Literal["list", "base64"]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    """Unknown fields are mistakes: reject them rather than ignore them."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class ComputeOptions(Strict):
    dtype: DType = Field("float32", description="Compute dtype; float64 where MXNet supports it.")
    output_encoding: Encoding = Field("list", description="How the output tensor is encoded.")


class TensorResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    y: OutTensor
    shape: list[int]
    dtype: str
    flops: int = Field(description="Multiply-adds x 2 that the computation performed.")
    elapsed_ms: float = Field(description="Compute time on the server, in milliseconds.")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


class Info(BaseModel):
    service: str
    version: str
    versions: dict[str, str]
    device: str
    limits: dict[str, int]
    features: list[str]
