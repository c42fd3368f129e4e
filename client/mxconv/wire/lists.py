"""Nested JSON lists of numbers <-> arrays."""

from __future__ import annotations

import contextvars
import itertools
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from . import TensorDecodeError

#: Whether the document the lists came from may hold booleans at all. numpy reads True as 1, so
#: every list is scanned for them (C-level, ~60 ns an element); a server that saw no ``true`` or
#: ``false`` token in a JSON body sets this False for the request, so that big bodies skip it.
booleans_possible: contextvars.ContextVar[bool] = contextvars.ContextVar("booleans_possible", default=True)


def _leaves(value: Any, depth: int) -> Iterable[Any]:
    it: Iterable[Any] = value
    for _ in range(depth - 1):
        it = itertools.chain.from_iterable(it)
    return it


def _find(value: Any, hit: Any) -> tuple[list[int], Any] | None:
    """The index and value of the first leaf for which ``hit(leaf)``, or None (the error path)."""
    if not isinstance(value, list):
        return ([], value) if hit(value) else None
    for i, v in enumerate(value):
        found = _find(v, hit)
        if found is not None:
            return [i, *found[0]], found[1]
    return None


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def from_lists(value: Any, *, allow_null: bool = False) -> npt.NDArray[np.float64]:
    """Nested lists of numbers to a float64 array, refusing ragged or non-numeric input.

    ``allow_null`` reads ``null`` as NaN: JSON has no NaN or Inf, so a result's list encoding
    carries them as null. A request's null is refused, with where it is."""
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
        null = _find(value, lambda v: v is None)
        if null is not None:
            raise TensorDecodeError(
                f"holds NaN or Inf at {null[0]} (sent as null: JSON has neither); every value must be finite"
            )
        if _find(value, _is_bool) is None:
            raise TensorDecodeError(
                "expected a rectangular array of numbers; rows differ in length or hold non-numbers"
            )
    numbers_only = arr.dtype.kind != "b" and not (
        booleans_possible.get() and any(map(bool.__instancecheck__, _leaves(value, max(arr.ndim, 1))))
    )
    if not numbers_only:
        at, flag = _find(value, _is_bool) or ([], None)
        raise TensorDecodeError(f"holds a boolean ({str(flag).lower()}) at {at}; send numbers")
    arr = arr.astype(np.float64, copy=False)
    if arr.size == 0:
        raise TensorDecodeError("array is empty; every dimension must be at least 1")
    return arr
