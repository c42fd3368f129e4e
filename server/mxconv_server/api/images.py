"""The kernel presets, and how /v1/images/filter reads an image: a PNG or JPEG body, a
multipart upload, or JSON pixels (the operation itself is ``ops.images``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import request
from flask_openapi3 import APIBlueprint, Tag
from mxconv.schemas import (
    ErrorResponse,
    ImageFilterOptions,
    ImageFilterRequest,
    KernelList,
    KernelPreset,
)
from pydantic import BaseModel, Field

from .. import imaging
from ..compute import images
from ..errors import ApiError
from ..ops.images import FilterInput
from . import common

bp = APIBlueprint("images", __name__, url_prefix="/v1", abp_tags=[Tag(name="images")])

IMAGE_TYPES = ("image/png", "image/jpeg")
#: Multipart: the image is the file in this field (or, failing that, the only file sent).
FILE_FIELD = "image"


class KernelPath(BaseModel):
    name: str = Field(description="A preset name or alias.")


class KernelQuery(BaseModel):
    size: int | None = Field(None, ge=1, le=31, description="box and gaussian: window size (odd).")
    sigma: float | None = Field(None, gt=0, le=10, description="gaussian: standard deviation.")


def filter_openapi() -> dict[str, Any]:
    schema = ImageFilterOptions.model_json_schema()
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": prop.get("description", "")
                + " (query parameters apply to raw image bodies; multipart sends them as form fields)",
                "schema": {k: v for k, v in prop.items() if k not in ("description", "title")},
            }
            for name, prop in schema["properties"].items()
        ],
        "requestBody": {
            "required": True,
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [FILE_FIELD],
                        "properties": {
                            FILE_FIELD: {"type": "string", "format": "binary"},
                            **{k: v for k, v in schema["properties"].items()},
                        },
                    }
                },
                "application/json": {"schema": ImageFilterRequest.model_json_schema()},
            },
        },
    }


def _first_values(multi: Any) -> dict[str, Any]:
    return {key: multi.get(key) for key in multi}


def filter_input(data: Any) -> FilterInput:
    """JSON pixels and options (/v1's JSON body, or /v2's image input and parameters) as the
    filter's input: validated by ImageFilterRequest, the pixels (C,H,W), under the pixel limit."""
    s = common.settings()
    body = ImageFilterRequest.model_validate(data)
    arr = np.asarray(body.image)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    elif arr.ndim == 3 and 1 <= arr.shape[2] <= 4:
        arr = arr.transpose(2, 0, 1)
    else:
        raise ApiError(
            422,
            f"image: expected (H,W) or (H,W,C) with C at most 4, got shape {list(np.shape(body.image))}",
            code="invalid_argument",
            details=[{"loc": ["image"], "msg": "bad shape", "type": "invalid_argument"}],
        )
    if arr.shape[1] * arr.shape[2] > s.max_image_pixels:
        raise ApiError(
            413,
            f"the image has {arr.shape[1] * arr.shape[2]} pixels, over the limit of "
            f"{s.max_image_pixels} (MXCONV_MAX_IMAGE_PIXELS)",
            code="image_too_large",
        )
    options = ImageFilterOptions.model_validate(body.model_dump(exclude={"image"}, exclude_unset=True))
    if options.grayscale and arr.shape[0] > 1:
        # Pillow's L = R * 299/1000 + G * 587/1000 + B * 114/1000 (alpha dropped)
        arr = np.tensordot([0.299, 0.587, 0.114], arr[:3], axes=1)[None] if arr.shape[0] >= 3 else arr[:1]
    return FilterInput(arr.astype(np.float32), options)


def read_filter_request() -> FilterInput:
    """The pixels as (C,H,W) 0-255, and the options, from a JSON, multipart or raw image body."""
    s = common.settings()
    mimetype = request.mimetype
    if mimetype == "application/json":
        return filter_input(request.get_json())
    if mimetype == "multipart/form-data":
        upload = request.files.get(FILE_FIELD)
        if upload is None and len(request.files) == 1:
            upload = next(iter(request.files.values()))
        if upload is None:
            raise ApiError(400, f"multipart body has no file; send the image in the field {FILE_FIELD!r}")
        fields = {**_first_values(request.args), **_first_values(request.form)}
        options = ImageFilterOptions.model_validate(fields)
        data = upload.read()
    else:  # image/png or image/jpeg: the middleware refuses everything else with 415
        options = ImageFilterOptions.model_validate(_first_values(request.args))
        data = request.get_data(cache=False)
    decoded = imaging.decode(
        data, max_pixels=s.max_image_pixels, max_elements=s.max_tensor_elements, grayscale=options.grayscale
    )
    return FilterInput(decoded.pixels, options)


def _preset(name: str, size: int | None = None, sigma: float | None = None) -> dict[str, Any]:
    preset = images.PRESETS[name]
    matrix, mapping = images.resolve_kernel(name, size=size, sigma=sigma)
    return {
        "name": name,
        "description": preset.description,
        "matrix": matrix.tolist(),
        "mapping": mapping,
        "params": list(preset.params),
    }


@bp.get("/kernels", responses={200: KernelList, 401: ErrorResponse})
def kernels() -> Any:
    """The kernel presets with their matrices at the default size and sigma."""
    return {"presets": [_preset(name) for name in images.PRESETS], "aliases": images.ALIASES}


@bp.get(
    "/kernels/<name>",
    responses={200: KernelPreset, 401: ErrorResponse, 404: ErrorResponse, 422: ErrorResponse},
)
def kernel(path: KernelPath, query: KernelQuery) -> Any:
    """One preset's matrix, at a given size and sigma for box and gaussian."""
    name = images.ALIASES.get(path.name, path.name)
    if name not in images.PRESETS:
        raise ApiError(404, f"no preset {path.name!r}; GET /v1/kernels lists them")
    return _preset(name, query.size, query.sigma)
