"""Image filtering: every colour channel cross-correlated with one kernel, preset or custom."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from mxconv.schemas import ImageFilterOptions, ImageFilterResult

from .. import imaging
from ..compute import images
from ..transport.io import JSON, PNG, ViewIO
from . import Operation, Work
from .conv import priced


@dataclass(frozen=True)
class FilterInput:
    """An image as (C, H, W) floats in 0-255, whatever form it came in, and the options."""

    pixels: np.ndarray
    options: ImageFilterOptions

    @property
    def image(self) -> np.ndarray:  # the tensor input's name, for its size limit
        return self.pixels

    @property
    def output_encoding(self) -> str:
        return self.options.output_encoding


def plan_filter(body: FilterInput, settings: Any, device: str) -> Work:
    opt = body.options
    kernel, default_mapping = images.resolve_kernel(opt.kernel, size=opt.size, sigma=opt.sigma)
    geometry = {k: v for k, v in opt.geometry().items()}
    p = images.plan_filter(body.pixels.shape, kernel.shape, **geometry)  # type: ignore[arg-type]
    return priced(p, "float32", device, detail=(p, kernel, opt.mapping or default_mapping))


def run_filter(body: FilterInput, work: Work, ctx: Any) -> dict[str, Any]:
    p, kernel, mapping = work.plan
    y = images.filter_channels(body.pixels, kernel, p, flip=body.options.flip, ctx=ctx)
    out = y[0] if y.shape[0] == 1 else y.transpose(1, 2, 0)
    return {
        "y": out,
        "shape": list(out.shape),
        "dtype": out.dtype.name,
        "kernel": kernel.tolist(),
        "mapping": mapping,
        "channels_first": y,  # for the PNG; not a field of ImageFilterResult
    }


def png(fields: dict[str, Any], body: FilterInput) -> tuple[bytes, dict[str, str]]:
    data = imaging.encode_png(images.to_uint8(fields["channels_first"], fields["mapping"]))
    return data, {"X-Mxconv-Mapping": fields["mapping"]}


OPERATIONS = [
    Operation(
        "images/filter",
        FilterInput,  # type: ignore[arg-type]  # read from the request by api/images.py
        ImageFilterResult,
        ("image",),
        plan_filter,
        run_filter,
        'Filter a PNG or JPEG (raw body or multipart field "image", or JSON pixels) with a preset '
        "or custom kernel, channel by channel. Answers a PNG, or with `Accept: application/json` "
        "the float output before mapping to 0-255.",
        "images",
        io=ViewIO(accepts=frozenset({PNG, "image/jpeg", "multipart/form-data"}), produces=(PNG, JSON)),
        renderers={PNG: png},
    ),
]
