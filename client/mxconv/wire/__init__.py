"""The wire protocol: numpy arrays <-> what travels between client and server.

One module per form, and the one dtype table every form uses:

* :mod:`.lists`: nested JSON lists of numbers, e.g. ``[[0, 1], [2, 3]]`` (easy from curl);
* :mod:`.b64`: ``{"dtype": "float32", "shape": [2, 2], "b64": "..."}``, the little-endian C-order
  bytes base64-encoded, and a JSON parser fast on documents that carry them;
* :mod:`.npy`: a ``.npy`` file per tensor (``numpy.save``'s format, never pickled), alone as an
  ``application/x-npy`` body, or as parts of a ``multipart/form-data`` body (:mod:`.multipart`).

Both sides import this package: the client to send and read, the server to read and answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: dtypes that travel on the wire, by name; the byte order is always little-endian.
DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
MAX_RANK = 4


class TensorDecodeError(ValueError):
    """The value is not a tensor mxconv can accept; the message says why."""


def wire_dtype(name: str) -> np.dtype[Any]:
    try:
        return DTYPES[name]
    except KeyError:
        raise TensorDecodeError(f"unsupported dtype {name!r}; use one of {sorted(DTYPES)}") from None


def decode(value: Any, *, require_finite: bool = True) -> npt.NDArray[Any]:
    """Either wire form to a numpy array (float64 for lists, the stated dtype for base64)."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, dict):
        arr = b64.from_b64(value)
    elif isinstance(value, (list, tuple)):
        arr = lists.from_lists(value, allow_null=not require_finite)
    else:
        raise TensorDecodeError(
            f"expected nested lists of numbers or {{'dtype','shape','b64'}}, got {type(value).__name__}"
        )
    if arr.ndim > MAX_RANK:
        raise TensorDecodeError(f"rank {arr.ndim} is too high; at most {MAX_RANK} dimensions")
    if require_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        at = [int(i) for i in np.argwhere(~np.isfinite(arr))[0]]
        raise TensorDecodeError(f"holds NaN or Inf at {at}; every value must be finite")
    return arr


def encode(arr: npt.NDArray[Any], encoding: str = "list") -> Any:
    """An array to a wire form: ``"list"`` (nested lists) or ``"base64"``."""
    if encoding == "base64":
        return b64.to_b64(arr)
    if encoding == "list":
        return np.asarray(arr).tolist()
    raise ValueError(f"unknown tensor encoding {encoding!r}; use 'list' or 'base64'")


from . import b64, lists  # noqa: E402  (they import the table above)
