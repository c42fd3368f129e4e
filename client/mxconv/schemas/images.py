"""Image filtering and the kernel presets."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .common import Encoding, OutTensor, Tensor
from .geometry import ConvGeometry, Padding, PaddingMode

ImageMapping = Literal["clip", "minmax", "abs"]
KernelSpec = str | Annotated[list[list[float]], Field(min_length=1, max_length=64)]
#: Options that may arrive as query parameters or form fields, where lists are JSON text.
_JSON_TEXT_FIELDS = ("kernel", "padding", "stride")


class ImageFilterOptions(ConvGeometry):
    """How /v1/images/filter filters. As query parameters (raw image bodies) or form fields
    (multipart), give matrices and lists as JSON text: ``kernel=[[1,-1]]``, ``padding=[0,1]``."""

    kernel: KernelSpec = Field(
        "identity",
        description=(
            "A preset name (GET /v1/kernels lists them) or a custom matrix, e.g. [[1,-1]]. "
            "It is cross-correlated with each channel (convolved, with flip=true), as conv2d does."
        ),
    )
    size: Annotated[int, Field(ge=1, le=31)] | None = Field(
        None, description="Window size for the box and gaussian presets (odd)."
    )
    sigma: Annotated[float, Field(gt=0, le=10)] | None = Field(
        None, description="Standard deviation for the gaussian preset (default 1)."
    )
    padding: Padding = Field(
        "same", description='As for conv2d; "same" keeps the image size (even kernels pad bottom/right).'
    )
    padding_mode: PaddingMode = Field("replicate", description="How the border is extended.")
    groups: Literal[1] = Field(1, description="Always 1: every colour channel is filtered on its own.")
    mapping: ImageMapping | None = Field(
        None,
        description=(
            "How the output becomes 0-255 in the PNG: clip, minmax (stretch min..max) or abs. "
            "Default: the preset's own (abs for edge, sobel and laplacian; clip otherwise)."
        ),
    )
    grayscale: bool = Field(False, description="Convert the image to greyscale before filtering.")
    output_encoding: Encoding = Field("list", description="JSON responses: how the output tensor is encoded.")

    @model_validator(mode="before")
    @classmethod
    def _json_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in _JSON_TEXT_FIELDS:
                value = data.get(key)
                if isinstance(value, str) and value.strip().startswith("["):
                    try:
                        data[key] = json.loads(value)
                    except ValueError:
                        raise ValueError(f"{key}: {value!r} is not valid JSON") from None
        return data


class ImageFilterRequest(ImageFilterOptions):
    """The JSON form of /v1/images/filter: pixels as a tensor instead of a PNG or JPEG."""

    image: Tensor = Field(description="Pixels, 0-255: (H,W) greyscale or (H,W,C) with C at most 4.")


class ImageFilterResult(BaseModel):
    """``Accept: application/json``: the filtered image as floats, before any 0-255 mapping."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    y: OutTensor = Field(description="(H,W) for one channel, (H,W,C) otherwise.")
    shape: list[int]
    dtype: str
    kernel: list[list[float]] = Field(description="The matrix that was applied.")
    mapping: ImageMapping = Field(description="The mapping a PNG response would have used.")
    flops: int
    elapsed_ms: float


class KernelPreset(BaseModel):
    name: str
    description: str
    matrix: list[list[float]] = Field(description="The matrix at the default size and sigma.")
    mapping: ImageMapping = Field(description="The output mapping it uses by default.")
    params: list[str] = Field(description="Which of size and sigma it takes.")


class KernelList(BaseModel):
    presets: list[KernelPreset]
    aliases: dict[str, str] = Field(default_factory=dict)
