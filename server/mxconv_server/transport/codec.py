"""Tensor bodies both ways: multipart ``.npy`` requests in, ``.npy`` answers out.

Requests: ``multipart/form-data`` with one ``.npy`` file part per tensor and a JSON ``params``
part holding everything else (``curl -F x=@x.npy -F weight=@w.npy -F 'params={"padding": 1}'``);
a ``.npz`` part (``curl -F data=@xy.npz``) gives one tensor per member, named as the member.
:func:`form_body` turns that into the same dict a JSON body gives, with the tensors as numpy
arrays, so the endpoint's pydantic model validates it and every limit that holds for JSON
(body bytes, tensor elements, FLOPs) holds here too.

Responses: with ``Accept: application/x-npy`` the output tensor comes back as a raw ``.npy``
body; shape, dtype, FLOPs and compute time travel in ``X-*`` headers. The bytes themselves are
``mxconv.wire``'s, which the client shares.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from flask import Request, Response, current_app, request
from mxconv.wire import TensorDecodeError, npy

from ..errors import ApiError
from . import compat, multipart
from .io import NPY

#: The keys of a single-tensor result; anything more (a matrix view) cannot be one .npy body.
_RESULT_KEYS = frozenset({"y", "shape", "dtype", "flops", "elapsed_ms"})


def npy_response(result: dict[str, Any]) -> Response:
    extra = sorted(k for k, v in result.items() if k not in _RESULT_KEYS and v is not None)
    if extra:
        raise ApiError(
            406,
            f"this result has more than one tensor ({', '.join(['y', *extra])}), which one .npy body "
            "cannot hold; ask for JSON (Accept: application/json)",
        )
    y = np.asarray(result["y"])
    header, data = npy.npy_parts(y)
    resp = bytes_response(header, [data], NPY, fast_path="npy_socket_send")
    resp.headers["Content-Disposition"] = 'attachment; filename="y.npy"'
    resp.headers["X-Tensor-Shape"] = ",".join(str(d) for d in y.shape)
    resp.headers["X-Tensor-Dtype"] = y.dtype.name
    for key, header_name in (("flops", "X-Flops"), ("elapsed_ms", "X-Elapsed-Ms")):
        if key in result:
            resp.headers[header_name] = str(result[key])
    return resp


#: Without gunicorn's socket, the response body goes out in slices of this size. A WSGI
#: server takes only ``bytes``, so each slice is a copy; slicing keeps that copy from doubling
#: the worker's peak memory (a whole-array tobytes() did: measured +6 MiB on a 6 MiB output).
CHUNK_BYTES = 1 << 20


def bytes_response(head: bytes, buffers: Sequence[memoryview], mimetype: str, *, fast_path: str) -> Response:
    """A body of ``head`` and then each buffer's bytes (a ``.npy`` header and the array's bytes;
    a /v2 JSON header and its binary tensors), with its Content-Length. Under gunicorn the
    buffers go to the socket without a copy, counted as ``fast_path`` (see :func:`_body`)."""
    sock = compat.client_socket(request.environ)
    resp = Response(_body(head, buffers, sock, fast_path), mimetype=mimetype)
    resp.headers["Content-Length"] = str(len(head) + sum(len(b) for b in buffers))
    return resp


def _body(head: bytes, buffers: Sequence[memoryview], sock: Any, fast_path: str) -> Iterator[bytes]:
    """``head``, then the buffers' bytes. Under gunicorn the buffers go to the socket directly,
    as views: by the time this generator resumes, gunicorn has written the status, the headers
    and ``head``. Sending 6.4 MB that way skips a 6.4 MB copy in 1 MB slices (body.py reads
    requests from the same socket the same way)."""
    yield head
    if sock is not None:
        for data in buffers:
            sock.sendall(data)
        compat.took(fast_path)
        return
    for data in buffers:
        for start in range(0, len(data), CHUNK_BYTES):
            yield bytes(data[start : start + CHUNK_BYTES])


def read_body(req: Request) -> bytes:
    """The whole request body. body.buffer_request_body has already read it in one go, under
    MXCONV_MAX_BODY_BYTES and MXCONV_BODY_TIMEOUT, and cached it: this is no copy."""
    return req.get_data(cache=True)


def form_body(req: Request) -> dict[str, Any]:
    """The multipart request as the dict a JSON body would give: ``params`` merged with one
    array per ``.npy`` part. Raises ApiError 422 naming the part that is wrong."""
    try:
        parts = multipart.decode_multipart(read_body(req), req.mimetype_params.get("boundary", ""))
    except TensorDecodeError as e:
        raise ApiError(400, str(e)) from None
    body: dict[str, Any] = {}
    params = [p for p in parts if p.name == "params"]
    if len(params) > 1:
        raise ApiError(422, "params: given more than once; send one JSON object")
    if params:
        try:
            value = json.loads(bytes(params[0].data))
        except ValueError as e:
            raise ApiError(422, f"params: not valid JSON ({e})", details=[_loc("params", str(e))]) from None
        if not isinstance(value, dict):
            raise ApiError(422, 'params: must be a JSON object, e.g. {"padding": 1}')
        body.update(value)
    for part in parts:
        if part.name == "params":
            continue
        if bytes(part.data[:4]) == npy.NPZ_MAGIC or (part.filename or "").endswith(".npz"):
            try:
                members = npy.from_npz(part.data, current_app.config["MAX_CONTENT_LENGTH"])
            except TensorDecodeError as e:
                raise ApiError(422, f"{part.name}: {e}", details=[_loc(part.name, str(e))]) from None
            for member, arr in members.items():
                body[_fresh(body, member)] = arr
            continue
        name = _fresh(body, part.name)
        if bytes(part.data[:6]) == b"\x93NUMPY" or part.filename is not None:
            try:
                body[name] = npy.from_npy(part.data)
            except TensorDecodeError as e:
                raise ApiError(422, f"{name}: {e}", details=[_loc(name, str(e))]) from None
        else:
            # A plain text part: a JSON value (curl -F 'x=[[1,2],[3,4]]' or -F stride=2) or a string.
            text = bytes(part.data).decode("utf-8", "replace")
            try:
                body[name] = json.loads(text)
            except ValueError:
                body[name] = text
    return body


def _fresh(body: dict[str, Any], name: str) -> str:
    if name in body:
        raise ApiError(422, f"{name}: given twice (in params and as a part); send it once")
    return name


def _loc(name: str, msg: str) -> dict[str, Any]:
    return {"loc": [name], "msg": msg, "type": "invalid_tensor"}
