"""Image filtering with presets or custom kernels, and the presets themselves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import Unpack

from . import schemas
from ._transport import ArrayLike, Transport, as_json, wire_value
from .schemas.geometry import GeometryOptions
from .wire import b64

#: An image: a PNG or JPEG path or its bytes, or pixels (H,W) or (H,W,C) in 0-255.
ImageInput = Any


class ImagesAPI(Transport):
    @overload
    def filter_image(
        self,
        image: ImageInput,
        kernel: str | ArrayLike = ...,
        *,
        size: int | None = ...,
        sigma: float | None = ...,
        mapping: str | None = ...,
        grayscale: bool = ...,
        output: Literal["array"] = ...,
        **geometry: Unpack[GeometryOptions],
    ) -> npt.NDArray[Any]: ...

    @overload
    def filter_image(
        self,
        image: ImageInput,
        kernel: str | ArrayLike = ...,
        *,
        size: int | None = ...,
        sigma: float | None = ...,
        mapping: str | None = ...,
        grayscale: bool = ...,
        output: Literal["png"],
        **geometry: Unpack[GeometryOptions],
    ) -> bytes: ...

    @overload
    def filter_image(
        self,
        image: ImageInput,
        kernel: str | ArrayLike = ...,
        *,
        size: int | None = ...,
        sigma: float | None = ...,
        mapping: str | None = ...,
        grayscale: bool = ...,
        output: Literal["result"],
        **geometry: Unpack[GeometryOptions],
    ) -> schemas.ImageFilterResult: ...

    def filter_image(
        self,
        image: ImageInput,
        kernel: str | ArrayLike = "identity",
        *,
        size: int | None = None,
        sigma: float | None = None,
        mapping: str | None = None,
        grayscale: bool = False,
        output: Literal["array", "png", "result"] = "array",
        **geometry: Unpack[GeometryOptions],
    ) -> npt.NDArray[Any] | bytes | schemas.ImageFilterResult:
        """Filter an image with a preset (``"sobel-x"``, ``"gaussian"`` ...) or a matrix.

        ``image`` is a PNG or JPEG file path, its bytes, or pixels as an array ((H,W) or
        (H,W,C), 0-255). ``output="array"`` returns the float result before any 0-255
        mapping, (H,W) or (H,W,C); ``"png"`` the PNG the server made with ``mapping`` (clip,
        minmax or abs; by default the preset's own); ``"result"`` the whole
        :class:`~mxconv.schemas.ImageFilterResult`. ``geometry`` as for ``conv2d`` (the server
        pads ``"same"`` in ``replicate`` mode unless told otherwise).
        """
        options: dict[str, Any] = {
            "kernel": kernel if isinstance(kernel, str) else np.asarray(kernel, dtype=float).tolist(),
            "grayscale": grayscale,
            **as_json(geometry),
        }
        for name, value in (("size", size), ("sigma", sigma), ("mapping", mapping)):
            if value is not None:
                options[name] = value
        accept = {"Accept": "image/png" if output == "png" else "application/json"}
        if isinstance(image, (str, os.PathLike)):
            image = Path(image).read_bytes()
        if isinstance(image, (bytes, bytearray)):
            data = bytes(image)
            content_type = "image/jpeg" if data.startswith(b"\xff\xd8\xff") else "image/png"
            params = {k: _query_value(v) for k, v in options.items()}
            params["output_encoding"] = "base64"
            resp = self.request(
                "POST",
                "/v1/images/filter",
                params=params,
                data=data,
                headers={**accept, "Content-Type": content_type},
            )
        else:
            body = {**options, "image": wire_value(image, "float32"), "output_encoding": "base64"}
            resp = self.request("POST", "/v1/images/filter", json=body, headers=accept)
        if output == "png":
            return resp.content
        result = schemas.ImageFilterResult.model_validate(b64.loads_json(resp.content))
        return result if output == "result" else result.y

    def kernels(self) -> schemas.KernelList:
        """The kernel presets with their matrices."""
        return self._get("/v1/kernels", schemas.KernelList)

    def kernel(
        self, name: str, *, size: int | None = None, sigma: float | None = None
    ) -> schemas.KernelPreset:
        """One preset's matrix, at a given size and sigma for box and gaussian."""
        params = {k: v for k, v in (("size", size), ("sigma", sigma)) if v is not None}
        return self._get(f"/v1/kernels/{name}", schemas.KernelPreset, params=params)


def _query_value(v: Any) -> str:
    """A filter option as query text: lists as JSON, booleans as true/false."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else json.dumps(v)
