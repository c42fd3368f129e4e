"""Nested JSON lists of numbers <-> arrays."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from . import TensorDecodeError


def from_lists(value: Any, *, allow_null: bool = False) -> npt.NDArray[np.float64]:
    """Nested lists of numbers to a float64 array, refusing ragged or non-numeric input.

    ``allow_null`` reads ``null`` as NaN: JSON has no NaN or Inf, so a result's list encoding
    carries them as null."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise TensorDecodeError("expected an array (nested lists of numbers), got a single number")
    try:
        with warnings.catch_warnings():  # ragged: numpy < 1.24 warns, then makes an object array
            warnings.simplefilter("ignore")
            arr = np.asarray(value)
    except (ValueError, TypeError):
        arr = np.empty(0, dtype=object)
    # Not dtype=float64 up front: numpy would parse strings ("1") and booleans as numbers.
    if allow_null and arr.dtype.kind == "O":
        try:
            arr = np.asarray(value, dtype=np.float64)  # null -> NaN
        except (ValueError, TypeError):
            pass
    if arr.dtype.kind not in "iuf":
        raise TensorDecodeError(
            "expected a rectangular array of numbers; rows differ in length or hold non-numbers"
        )
    arr = arr.astype(np.float64, copy=False)
    if arr.size == 0:
        raise TensorDecodeError("array is empty; every dimension must be at least 1")
    return arr
