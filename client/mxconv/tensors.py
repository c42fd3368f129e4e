"""numpy <-> wire encodings. Every tensor conversion in mxconv goes through here.

Two JSON forms travel on the wire:

* nested lists of numbers, e.g. ``[[0, 1], [2, 3]]`` (easy from curl);
* a compact form ``{"dtype": "float32", "shape": [2, 2], "b64": "..."}`` holding the
  little-endian C-order bytes, base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

WireDType = Literal["float32", "float64"]
#: dtypes that travel on the wire, by name; the byte order is always little-endian.
DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
MAX_RANK = 4


class TensorDecodeError(ValueError):
    """The value is not a tensor mxconv can accept; the message says why."""


def _wire_dtype(name: str) -> np.dtype[Any]:
    try:
        return DTYPES[name]
    except KeyError:
        raise TensorDecodeError(f"unsupported dtype {name!r}; use one of {sorted(DTYPES)}") from None


def from_lists(value: Any) -> npt.NDArray[np.float64]:
    """Nested lists of numbers to a float64 array, refusing ragged or non-numeric input."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise TensorDecodeError("expected an array (nested lists of numbers), got a single number")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise TensorDecodeError(
            "expected a rectangular array of numbers; rows differ in length or hold non-numbers"
        ) from None
    if arr.size == 0:
        raise TensorDecodeError("array is empty; every dimension must be at least 1")
    return arr


def from_b64(value: dict[str, Any]) -> npt.NDArray[Any]:
    """``{"dtype", "shape", "b64"}`` to an array of that dtype."""
    extra = set(value) - {"dtype", "shape", "b64"}
    if extra:
        raise TensorDecodeError(f"unknown keys {sorted(extra)} in base64 tensor")
    try:
        dtype = _wire_dtype(str(value["dtype"]))
        shape = tuple(int(d) for d in value["shape"])
        raw = base64.b64decode(value["b64"], validate=True)
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


def decode(value: Any, *, require_finite: bool = True) -> npt.NDArray[Any]:
    """Either wire form to a numpy array (float64 for lists, the stated dtype for base64)."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, dict):
        arr = from_b64(value)
    elif isinstance(value, (list, tuple)):
        arr = from_lists(value)
    else:
        raise TensorDecodeError(
            f"expected nested lists of numbers or {{'dtype','shape','b64'}}, got {type(value).__name__}"
        )
    if arr.ndim > MAX_RANK:
        raise TensorDecodeError(f"rank {arr.ndim} is too high; at most {MAX_RANK} dimensions")
    if require_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise TensorDecodeError("array holds NaN or Inf; every value must be finite")
    return arr


def to_b64(arr: npt.NDArray[Any]) -> dict[str, Any]:
    dtype = _wire_dtype(arr.dtype.name)
    data = np.ascontiguousarray(arr, dtype=dtype)
    return {"dtype": dtype.name, "shape": list(data.shape), "b64": base64.b64encode(data.tobytes()).decode()}


def encode(arr: npt.NDArray[Any], encoding: str = "list") -> Any:
    """An array to a wire form: ``"list"`` (nested lists) or ``"base64"``."""
    if encoding == "base64":
        return to_b64(arr)
    if encoding == "list":
        return np.asarray(arr).tolist()
    raise ValueError(f"unknown tensor encoding {encoding!r}; use 'list' or 'base64'")
