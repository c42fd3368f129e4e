"""The base64 JSON form, ``{"dtype", "shape", "b64"}``, and a JSON parser that is fast on
documents carrying it."""

from __future__ import annotations

import binascii
import math
import os
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

# SIMD base64 (libbase64): on a 6 MB tensor, encode 4 ms and decode 4 ms where the standard
# library takes 16 and 22 (measured), which is most of what base64 JSON costs end to end.
import pybase64

from . import TensorDecodeError, wire_dtype


def from_b64(value: dict[str, Any]) -> npt.NDArray[Any]:
    """``{"dtype", "shape", "b64"}`` to an array of that dtype."""
    extra = set(value) - {"dtype", "shape", "b64"}
    if extra:
        raise TensorDecodeError(f"unknown keys {sorted(extra)} in base64 tensor")
    try:
        dtype = wire_dtype(str(value["dtype"]))
        shape = tuple(int(d) for d in value["shape"])
        # Into a bytearray: the array over it is writable, so a result needs no copy to be the
        # caller's to change (0.35 ms for 6.4 MB either way; the copy was another 0.25-0.6).
        raw = pybase64.b64decode_as_bytearray(value["b64"], validate=True)
    except KeyError as e:
        raise TensorDecodeError(f"base64 tensor needs 'dtype', 'shape' and 'b64'; missing {e}") from None
    except (TypeError, ValueError, OverflowError, binascii.Error):
        raise TensorDecodeError("base64 tensor: 'shape' must be integers, 'b64' valid base64") from None
    if any(d < 1 for d in shape):
        raise TensorDecodeError(f"shape {list(shape)}: every dimension must be at least 1")
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a huge shape cannot overflow
    if len(raw) != expected:
        raise TensorDecodeError(
            f"base64 tensor holds {len(raw)} bytes, but shape {list(shape)} of {dtype.name} needs {expected}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _b64(arr: npt.NDArray[Any]) -> tuple[str, list[int], bytes]:
    dtype = wire_dtype(arr.dtype.name)
    data = np.ascontiguousarray(arr, dtype=dtype)
    return dtype.name, list(data.shape), pybase64.b64encode(memoryview(data).cast("B"))  # type: ignore[arg-type]


def to_b64(arr: npt.NDArray[Any]) -> dict[str, Any]:
    name, shape, text = _b64(arr)
    return {"dtype": name, "shape": shape, "b64": text.decode("ascii")}


def to_b64_orjson(arr: npt.NDArray[Any]) -> dict[str, Any]:
    """:func:`to_b64` for a document orjson writes: the base64 text goes in as an
    ``orjson.Fragment``, copied into the output as it is, where a ``str`` is scanned for
    characters to escape (base64 has none). Encode + dump of a 6 MB float32 tensor: 1.7 ms
    instead of 5.0 (measured), 1.1 ms since the quotes are joined on in one copy."""
    name, shape, text = _b64(arr)
    quoted = b"".join((b'"', text, b'"'))  # one copy where + made two: 1.11 -> 0.53 ms for 6.4 MB
    return {"dtype": name, "shape": shape, "b64": orjson.Fragment(quoted)}


#: Documents this big or bigger have their long base64 strings lifted out before parsing.
LIFT_DOC_MIN_BYTES = 1 << 20
#: A ``"b64"`` string this long or longer is lifted out.
LIFT_STRING_MIN_BYTES = 64 * 1024
_B64_VALUE = b'"b64":"'


def loads_json(data: str | bytes | bytearray) -> Any:
    """``orjson.loads(data)``: the same result and the same errors, several times faster on a
    document that carries tensors as long base64 strings.

    A JSON parser scans a long string, copies it into a new ``str``, and orjson first reserves
    ~12x the document as scratch space. For the 8.6 MB document of one (8,64,56,56) float32
    tensor: 8.5 ms in a default process (the reservation page-faults), 3.6 ms where the heap
    is kept (compute/mx.py), 6.1 ms with the standard library. Here each ``"b64"`` string of at
    least 64 KiB is cut out and a placeholder string with a random nonce put in its place;
    orjson parses what is left (a few hundred bytes), and the placeholders are replaced by the
    texts, decoded as ASCII: 1.1 ms. A document without such strings costs one quick search
    more (0.04 ms on a 3.9 MB nested-list tensor). Only a string without escapes or control characters
    is lifted (base64 has neither), so its text is exactly what a parser gives; one with
    either, a non-ASCII one and any syntax error send the whole document to orjson, as does
    a ``str`` document."""
    if len(data) < LIFT_DOC_MIN_BYTES or not isinstance(data, (bytes, bytearray)):
        return orjson.loads(data)
    view = memoryview(data)
    nonce = os.urandom(8).hex()
    pieces: list[bytes | memoryview] = []
    texts: dict[str, memoryview] = {}
    copied = search = 0
    while (key := _find_b64_value(data, search)) >= 0:
        start = key + len(_B64_VALUE)
        end = data.find(b'"', start)
        if end < 0:
            break  # unterminated: orjson's error, below
        search = end + 1
        text = view[start:end]
        if (
            end - start < LIFT_STRING_MIN_BYTES
            or data.find(b"\\", start, end) >= 0
            or np.frombuffer(text, np.uint8).min() < 0x20  # control characters: invalid JSON
        ):
            continue
        placeholder = f"mxconv-b64:{nonce}:{len(texts)}"
        pieces += [view[copied:start], placeholder.encode()]
        texts[placeholder] = text
        copied = end
    if not texts:
        return orjson.loads(data)
    pieces.append(view[copied:])
    try:
        doc = orjson.loads(b"".join(pieces))
        decoded = {k: str(v, "ascii") for k, v in texts.items()}
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return orjson.loads(data)  # the whole document's own result or error
    _restore_texts(doc, decoded)
    return doc


def _find_b64_value(data: bytes | bytearray, start: int) -> int:
    """``data.find(b'"b64":"', start)``, faster on tensor documents. The pattern starts with a
    quote, and quotes are rare there (a 3.9 MB nested-list tensor has two), so it hops from
    quote to quote (a single-byte search) for the first few; a 7-byte search through digits
    took 1.7 ms on that document. Past 64 quotes it searches for the pattern, so a document of
    many short strings costs no Python loop per string."""
    for _ in range(64):
        quote = data.find(b'"', start)
        if quote < 0 or data.startswith(_B64_VALUE, quote):
            return quote
        start = quote + 1
    return data.find(_B64_VALUE, start)


def _restore_texts(doc: Any, texts: dict[str, str]) -> None:
    """Put each text back where its placeholder landed. A placeholder stands where its string
    stood, as a value (``:`` precedes it), so putting the text there gives what parsing the
    text would have; one dropped by a duplicate key is dropped as its string would have been."""
    stack = [doc] if isinstance(doc, (dict, list)) else []
    while stack:  # a loop, not recursion: documents nest as deep as orjson allows (1024)
        node = stack.pop()
        for k, v in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(v, str) and v in texts:
                node[k] = texts[v]
            elif isinstance(v, (dict, list)):
                stack.append(v)
