"""Padding modes: how an input is extended past its edges, in one table.

Every formulation pads with numpy before MXNet sees the input, except narrow symmetric zero
padding, which ``nd.Convolution`` applies itself (:func:`.plan.operator_padding`). A new mode is
a row here and a name in ``mxconv.schemas.geometry.PaddingMode``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgument

#: mxconv's names for numpy.pad's modes.
NUMPY_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}
#: Modes whose padding must stay this far short of the input's size: a reflection repeats no
#: edge sample, so it mirrors at most size - 1 samples (as PyTorch has it). The others pad as
#: far as asked: circular wraps around again and again, as scipy's boundary="wrap" does.
SHORT_OF_SIZE = {"reflect": 1}


def check(mode: str, widest: int, size: int, dimension: str) -> None:
    """Refuse an unknown mode, or a pad of ``widest`` the mode cannot give along a dimension
    of ``size`` (named ``dimension`` in the message)."""
    if mode not in NUMPY_MODES:
        raise InvalidArgument("padding_mode", f"unknown mode {mode!r}; use one of {tuple(NUMPY_MODES)}")
    short = SHORT_OF_SIZE.get(mode)
    if short is not None and widest > size - short:
        raise InvalidArgument(
            "padding",
            f"{mode} padding of {widest} is too wide for the input's {dimension} of {size}: it may be "
            f"at most {size - short}; pad less, or use padding_mode circular or replicate",
        )


def pad(x: npt.NDArray[Any], pads: tuple[int, int, int, int], mode: str) -> npt.NDArray[Any]:
    """(N, C, H, W) padded by (top, bottom, left, right) in ``mode``; ``x`` itself when no pad."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    return np.pad(x, widths, mode=NUMPY_MODES[mode])  # type: ignore[call-overload, no-any-return]
