"""Tensors in the protocol's two forms, both ways: JSON ``data`` (flat, row-major) and the binary
tensor data extension (the JSON object, then each binary tensor's bytes, the JSON's length in
``Inference-Header-Content-Length``, each tensor's in its ``binary_data_size``).

Reading: the body is the one the middleware buffered (``transport.body``: read whole, under
the size and time limits, a binary section aligned); a binary input is a numpy view of it, no
copy. Answering: binary outputs go out after the JSON header through the transport's zero-copy
send (``codec.bytes_response``), as /v1's ``.npy`` answers do.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from flask import Response, jsonify
from mxconv import wire
from mxconv.wire import TensorDecodeError, lists

from ..errors import ApiError
from ..transport import codec, io
from .schemas import InferenceRequest

HEADER_LENGTH = "Inference-Header-Content-Length"
#: The protocol's names of the wire dtypes (mxconv.wire.DTYPES): float32 is FP32, float64 FP64.
DATATYPES: dict[str, np.dtype[Any]] = {f"FP{dt.itemsize * 8}": dt for dt in wire.DTYPES.values()}
DATATYPE_OF = {dt: name for name, dt in DATATYPES.items()}
_SUPPORTED = " or ".join(DATATYPES)
#: The protocol's other datatypes: none of mxconv's models takes them.
OTHER_DATATYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "BF16",
        "BYTES",
    }
)


@dataclass(frozen=True)
class Wanted:
    name: str
    binary: bool


@dataclass(frozen=True)
class Inference:
    """A request as read: its envelope, its inputs as arrays, the outputs asked for."""

    envelope: InferenceRequest
    inputs: dict[str, np.ndarray]
    parameters: dict[str, Any]  # the model's: binary_data_output is taken out
    outputs: list[Wanted] | None  # None: all of them
    binary_output: bool  # binary_data_output


def decompressed(body: Any, encoding: str, limit: int) -> Any:
    """The body as sent before its Content-Encoding (gzip or deflate, tritonclient's
    ``request_compression_algorithm``), at most ``limit`` bytes of it."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none")
    inflate = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflate.decompress(body, limit + 1)
    except zlib.error as e:
        raise ApiError(400, f"the body is not valid {encoding} data ({e})") from None
    if len(out) > limit:
        raise ApiError(
            413, f"the decompressed body is over the limit of {limit} bytes (MXCONV_MAX_BODY_BYTES)"
        )
    if not inflate.eof:
        raise ApiError(400, f"the {encoding} body is truncated")
    return out


def read(body: Any, header_length: str | None) -> Inference:
    """The inference request in ``body``: JSON, or JSON then binary tensors (``header_length``:
    the Inference-Header-Content-Length header, if there was one)."""
    view = memoryview(body).cast("B")
    if header_length is None:
        header, binary = view, view[:0]
    else:
        n = _header_length(header_length, len(view))
        header, binary = view[:n], view[n:]
    try:
        obj = orjson.loads(header)
    except orjson.JSONDecodeError as e:
        where = "" if header_length is None else f" (its first {len(header)} bytes, {HEADER_LENGTH})"
        raise ApiError(400, f"the inference request{where} is not valid JSON: {e}") from None
    envelope = InferenceRequest.model_validate(obj)
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for item in envelope.inputs:
        if item.name in inputs:
            raise ApiError(400, f"input {item.name!r} is given twice; send each input once")
        arr, offset = _input(item, binary, offset, header_length is not None)
        inputs[item.name] = arr
    if offset != len(binary):
        raise ApiError(
            400,
            f"the inputs' binary_data_size add up to {offset} bytes, but {len(binary)} bytes follow the "
            f"{len(header)}-byte JSON header ({HEADER_LENGTH}); make them agree",
        )
    params = dict(envelope.parameters)
    binary_output = _flag(params.pop("binary_data_output", False), "binary_data_output")
    outputs = None
    if envelope.outputs is not None:
        outputs = []
        for out in envelope.outputs:
            extra = sorted(set(out.parameters) - {"binary_data"})
            if extra:
                raise ApiError(
                    400, f"output {out.name!r}: parameter {extra[0]!r} is not supported; only binary_data is"
                )
            as_binary = _flag(
                out.parameters.get("binary_data", binary_output), f"output {out.name!r}: binary_data"
            )
            outputs.append(Wanted(out.name, as_binary))
        names = [w.name for w in outputs]
        if len(set(names)) != len(names):
            raise ApiError(400, "an output is asked for twice; name each output once")
    return Inference(envelope, inputs, params, outputs, binary_output)


def _header_length(value: str, size: int) -> int:
    if not value.isdigit() or len(value) > 18:
        raise ApiError(400, f"{HEADER_LENGTH} must be a non-negative integer, got {value!r}")
    n = int(value)
    if n > size:
        raise ApiError(400, f"{HEADER_LENGTH} is {n}, but the body has only {size} bytes")
    return n


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}")
    return value


def _input(item: Any, binary: memoryview, offset: int, framed: bool) -> tuple[np.ndarray, int]:
    """One input as an array (a view of the body for binary data), and the offset after it."""
    name, shape = item.name, item.shape
    if item.datatype not in DATATYPES:
        known = "a datatype of the protocol, but" if item.datatype in OTHER_DATATYPES else "not a datatype;"
        raise ApiError(
            400,
            f"input {name!r}: datatype {item.datatype!r} is {known} mxconv's models take {_SUPPORTED} "
            "only; send the values as FP32 (numpy: a.astype(numpy.float32))",
        )
    dtype = DATATYPES[item.datatype]
    extra = sorted(set(item.parameters) - {"binary_data_size"})
    if extra:
        raise ApiError(
            400,
            f"input {name!r}: parameter {extra[0]!r} is not supported (no shared memory); send the tensor "
            "as JSON data or as binary data (binary_data_size)",
        )
    if not shape or min(shape) < 1:
        raise ApiError(
            400, f"input {name!r}: shape {shape}: give 1 to {wire.MAX_RANK} dimensions, each at least 1"
        )
    count = math.prod(shape)
    size = item.parameters.get("binary_data_size")
    if size is not None:
        if item.data is not None:
            raise ApiError(400, f"input {name!r} has both data and binary_data_size; send one of them")
        if not framed:
            raise ApiError(
                400,
                f"input {name!r} has binary_data_size, but the request has no {HEADER_LENGTH} header "
                "giving the JSON's length",
            )
        if isinstance(size, bool) or not isinstance(size, int) or size != count * dtype.itemsize:
            raise ApiError(
                400,
                f"input {name!r}: binary_data_size is {size!r}, but shape {shape} of {item.datatype} is "
                f"{count * dtype.itemsize} bytes",
            )
        if offset + size > len(binary):
            raise ApiError(
                400,
                f"input {name!r}: its {size} bytes of binary data end past the body "
                f"({len(binary)} bytes follow the JSON header)",
            )
        arr = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape)
        return arr, offset + size
    if item.data is None:
        raise ApiError(
            400,
            f"input {name!r} has no data; give its values as 'data' (flat, row-major) or as binary data "
            "(binary_data_size)",
        )
    try:
        values = lists.from_lists(item.data)
    except TensorDecodeError as e:
        raise ApiError(400, f"input {name!r}: data: {e}") from None
    if values.size != count:
        raise ApiError(
            400,
            f"input {name!r}: shape {shape} holds {count} values, but data has {values.size}; send every "
            "value, flat in row-major order",
        )
    return values.reshape(shape).astype(dtype, copy=False), offset


def answer(header: dict[str, Any], outputs: list[tuple[str, np.ndarray, bool]]) -> Response:
    """The response: ``header`` (the response object without its outputs) and each output
    ``(name, array, binary)``, in JSON, or with binary outputs after the JSON."""
    entries, buffers = [], []
    for name, array, binary in outputs:
        arr = np.ascontiguousarray(array, dtype=wire.wire_dtype(np.asarray(array).dtype.name))
        entry: dict[str, Any] = {"name": name, "datatype": DATATYPE_OF[arr.dtype], "shape": list(arr.shape)}
        if binary:
            data = memoryview(arr).cast("B")  # type: ignore[arg-type]
            entry["parameters"] = {"binary_data_size": len(data)}
            buffers.append(data)
        else:
            entry["data"] = arr.reshape(-1)
        entries.append(entry)
    body = {**header, "outputs": entries}
    if not buffers:
        return jsonify(body)
    head = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    resp = codec.bytes_response(head, buffers, io.OCTET, fast_path="oip_socket_send")
    resp.headers[HEADER_LENGTH] = str(len(head))
    return resp
