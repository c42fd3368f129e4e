"""The binary transport, for every compute endpoint at once.

Requests: ``multipart/form-data`` with one ``.npy`` file part per tensor and a JSON ``params``
part holding everything else (``curl -F x=@x.npy -F weight=@w.npy -F 'params={"padding": 1}'``).
:func:`form_body` turns that into the same dict a JSON body gives, with the tensors as numpy
arrays, so the endpoint's pydantic model validates it and every limit that holds for JSON
(body bytes, tensor elements, FLOPs) holds here too.

Responses: with ``Accept: application/x-npy`` the output tensor comes back as a raw ``.npy``
body; shape, dtype, FLOPs and compute time travel in ``X-*`` headers.

An endpoint opts in with :func:`tensor_io`. No numpy <-> bytes code lives here: that is all in
``mxconv.tensors``, which the client shares.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, get_type_hints

import numpy as np
from flask import Flask, Request, Response, g, request
from mxconv import tensors

from .errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])

NPY = tensors.NPY_MEDIA_TYPE
MULTIPART = tensors.MULTIPART_MEDIA_TYPE
JSON = "application/json"
#: The keys of a single-tensor result; anything more (a matrix view) cannot be one .npy body.
_RESULT_KEYS = frozenset({"y", "shape", "dtype", "flops", "elapsed_ms"})


def tensor_io(view: F) -> F:
    """Let a compute view take multipart ``.npy`` bodies and answer ``Accept: application/x-npy``.

    The view returns its usual result dict (``y`` an ndarray, see ``api.common.tensor_result``);
    this turns it into a ``.npy`` response when the client asked for one.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = view(*args, **kwargs)
        return npy_response(result) if wants_npy() and isinstance(result, dict) else result

    wrapper.accepts = frozenset({MULTIPART})  # type: ignore[attr-defined]  # read by middleware
    wrapper.tensor_io = True  # type: ignore[attr-defined]  # read by middleware and document()
    return wrapper  # type: ignore[return-value]


def is_tensor_view(view: Any) -> bool:
    return bool(getattr(view, "tensor_io", False))


def wants_npy() -> bool:
    """True when the client prefers ``application/x-npy`` to JSON (JSON wins a tie, as for */*)."""
    if "mxconv_wants_npy" not in g:  # asked twice a request; parsing Accept is not free
        g.mxconv_wants_npy = request.accept_mimetypes.best_match([JSON, NPY]) == NPY
    return bool(g.mxconv_wants_npy)


def npy_response(result: dict[str, Any]) -> Response:
    extra = sorted(k for k, v in result.items() if k not in _RESULT_KEYS and v is not None)
    if extra:
        raise ApiError(
            406,
            f"this result has more than one tensor ({', '.join(['y', *extra])}), which one .npy body "
            "cannot hold; ask for JSON (Accept: application/json)",
        )
    y = np.asarray(result["y"])
    header, data = tensors.npy_parts(y)
    resp = Response(_body(header, data, request.environ.get("gunicorn.socket")), mimetype=NPY)
    resp.headers["Content-Length"] = str(len(header) + len(data))
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


def _body(header: bytes, data: memoryview, sock: Any) -> Iterator[bytes]:
    """The ``.npy`` header, then the array's bytes. Under gunicorn the array goes to the socket
    directly, as a view: by the time this generator resumes, gunicorn has written the status,
    the headers and the ``.npy`` header. Sending 6.4 MB that way skips a 6.4 MB copy in 1 MB
    slices (body.py reads requests from the same socket the same way)."""
    yield header
    if sock is not None:
        sock.sendall(data)
        return
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
        parts = tensors.decode_multipart(read_body(req), req.mimetype_params.get("boundary", ""))
    except tensors.TensorDecodeError as e:
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
        name = _fresh(body, part.name)
        if bytes(part.data[:6]) == b"\x93NUMPY" or part.filename is not None:
            try:
                body[name] = tensors.from_npy(part.data)
            except tensors.TensorDecodeError as e:
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


# -- OpenAPI -------------------------------------------------------------------------------


def document(app: Flask) -> None:
    """Add the multipart request form and the ``.npy`` response to every tensor_io operation
    in the generated spec (flask-openapi3 describes only the JSON body by itself)."""
    spec: dict[str, Any] = app.api_doc  # type: ignore[attr-defined]
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        if not getattr(view, "tensor_io", False):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in sorted((rule.methods or set()) & {"POST", "PUT"}):
            operation = spec.get("paths", {}).get(path, {}).get(method.lower())
            if operation is None:
                continue
            _document_operation(operation, _body_model(view))


def _body_model(view: Any) -> Any:
    fn = view
    while hasattr(fn, "__wrapped__") and "body" not in getattr(fn, "__annotations__", {}):
        fn = fn.__wrapped__
    try:
        return get_type_hints(fn).get("body")
    except Exception:  # an unresolvable annotation: document the form generically
        return None


def _document_operation(operation: dict[str, Any], model: Any) -> None:
    tensor_names = []
    if model is not None:
        tensor_names = [name for name, f in model.model_fields.items() if "ndarray" in repr(f.annotation)]
    props: dict[str, Any] = {
        "params": {
            "type": "string",
            "description": "Every non-tensor field of the JSON body, as one JSON object.",
            "example": "{}",
        }
    }
    for name in tensor_names:
        props[name] = {
            "type": "string",
            "format": "binary",
            "description": f"{name} as a .npy file (numpy.save), float32 or float64; never pickled.",
        }
    request_body = operation.setdefault("requestBody", {"content": {}})
    request_body.setdefault("content", {})[MULTIPART] = {"schema": {"type": "object", "properties": props}}
    ok = operation.setdefault("responses", {}).setdefault("200", {"description": "OK"})
    ok.setdefault("content", {})[NPY] = {
        "schema": {"type": "string", "format": "binary"},
    }
    ok["description"] = (
        ok.get("description", "OK")
        + ". With Accept: application/x-npy, the output y as a .npy body; its shape, dtype, FLOPs "
        "and compute time in the X-Tensor-Shape, X-Tensor-Dtype, X-Flops and X-Elapsed-Ms headers."
    )
