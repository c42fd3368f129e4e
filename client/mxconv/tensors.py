"""The wire encodings under their first names: ``mxconv.tensors`` is :mod:`mxconv.wire`
(one module per form) gathered in one namespace, kept for code written against it."""

from __future__ import annotations

from .wire import DTYPES, MAX_RANK, TensorDecodeError, decode, encode, wire_dtype
from .wire.b64 import LIFT_DOC_MIN_BYTES, LIFT_STRING_MIN_BYTES, from_b64, loads_json, to_b64, to_b64_orjson
from .wire.lists import from_lists
from .wire.multipart import MULTIPART_MEDIA_TYPE, MultipartBody, encode_multipart, multipart_body
from .wire.npy import NPY_DTYPES, NPY_MEDIA_TYPE, from_npy, npy_header, npy_parts, to_npy

__all__ = [
    "DTYPES",
    "LIFT_DOC_MIN_BYTES",
    "LIFT_STRING_MIN_BYTES",
    "MAX_RANK",
    "MULTIPART_MEDIA_TYPE",
    "NPY_DTYPES",
    "NPY_MEDIA_TYPE",
    "MultipartBody",
    "TensorDecodeError",
    "decode",
    "encode",
    "encode_multipart",
    "from_b64",
    "from_lists",
    "from_npy",
    "loads_json",
    "multipart_body",
    "npy_header",
    "npy_parts",
    "to_b64",
    "to_b64_orjson",
    "to_npy",
    "wire_dtype",
]
