"""2-D convolution, the seed's corr2d and channel mixing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .common import ComputeOptions, OutTensor, Tensor, TensorResult
from .geometry import ConvGeometry


class Conv2dRequest(ConvGeometry, ComputeOptions):
    # "example" (one, OpenAPI 3.0 style): flask-openapi3 keeps it in /openapi.json, where the
    # Swagger UI and fuzzers (schemathesis) start from it; it drops the JSON Schema "examples".
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "x": [[[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]]],
                "weight": [[[[1, 0], [0, -1]]]],
                "bias": [0.5],
                "padding": "same",
                "padding_mode": "reflect",
                "output_encoding": "base64",
            }
        }
    )

    x: Tensor = Field(description="Input: (H,W), (C,H,W) or (N,C,H,W).")
    weight: Tensor = Field(
        description="Kernel: (kh,kw), (O,C/groups,kh,kw), or a 3-D form that is unambiguous."
    )
    bias: Tensor | None = Field(None, description="Per-output-channel bias, shape (O,).")


class Corr2dRequest(ComputeOptions):
    """The seed's ``corr2d``: 2-D input, 2-D kernel, valid cross-correlation."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"x": [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "kernel": [[0, 1], [2, 3]]}}
    )

    x: Tensor = Field(description="2-D input (H,W).")
    kernel: Tensor = Field(description="2-D kernel (kh,kw).")


class ChannelMixRequest(ComputeOptions):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "x": [[[1, 2], [3, 4]], [[5, 6], [7, 8]], [[1, 0], [0, 1]]],
                "weight": [[1, 1, 0], [0, 1, -1]],
                "matrix_view": True,
            }
        }
    )

    x: Tensor = Field(description="Input: (C,H,W) or (N,C,H,W).")
    weight: Tensor = Field(description="Mixing matrix W, shape (O,C).")
    bias: Tensor | None = Field(None, description="Per-output-channel bias, shape (O,).")
    matrix_view: bool = Field(False, description="Also return X' (C x N), W and Y' = W X'.")


class MatrixView(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    x_flat: OutTensor = Field(description="X', the input with space flattened: C x (N*H*W).")
    w: OutTensor = Field(description="W, the mixing matrix: O x C.")
    y_flat: OutTensor = Field(description="Y' = W X' (+ bias): O x (N*H*W).")


class ChannelMixResult(TensorResult):
    matrix_view: MatrixView | None = None
