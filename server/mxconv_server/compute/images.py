"""Image filtering: kernel presets, per-channel convolution on MXNet, mapping to 0-255.

Images here are float arrays of shape (C, H, W) holding 0-255 pixel values. Decoding and
encoding (Pillow) happen outside compute/; this module only does the math.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import conv
from . import plan as planning
from .errors import InvalidArgument
from .mx import mxnet as mx

Mapping = Literal["clip", "minmax", "abs"]
MAPPINGS: tuple[str, ...] = ("clip", "minmax", "abs")
#: A custom kernel may be at most this many rows and columns.
MAX_KERNEL_SIDE = 64
MAX_PRESET_SIZE = 31
MAX_SIGMA = 10.0


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    mapping: Mapping  # how its output is best shown as 0-255
    build: Callable[[int | None, float | None], npt.NDArray[np.float64]]
    params: tuple[str, ...] = ()  # which of size / sigma it takes


def _fixed(matrix: list[list[float]]) -> Callable[[int | None, float | None], npt.NDArray[np.float64]]:
    arr = np.array(matrix, dtype=np.float64)
    return lambda _size, _sigma: arr.copy()


def _odd_size(size: int | None, default: int) -> int:
    size = default if size is None else size
    if size < 1 or size > MAX_PRESET_SIZE or size % 2 == 0:
        raise InvalidArgument("size", f"must be odd and between 1 and {MAX_PRESET_SIZE}, got {size}")
    return size


def _box(size: int | None, _sigma: float | None) -> npt.NDArray[np.float64]:
    n = _odd_size(size, 3)
    return np.full((n, n), 1.0 / (n * n))


def _gaussian(size: int | None, sigma: float | None) -> npt.NDArray[np.float64]:
    s = 1.0 if sigma is None else float(sigma)
    if not (0 < s <= MAX_SIGMA):
        raise InvalidArgument("sigma", f"must be above 0 and at most {MAX_SIGMA}, got {sigma}")
    # Default support: +-3 sigma, which holds 99.7% of the weight.
    n = _odd_size(size, min(MAX_PRESET_SIZE, 2 * math.ceil(3 * s) + 1))
    r = np.arange(n, dtype=np.float64) - (n - 1) / 2
    # Not r**2 / (2 s**2): s**2 underflows to 0 for a tiny sigma (0/0 = NaN at the centre).
    # (r/s)**2 may overflow to inf instead, and exp(-inf) = 0 is the right weight there.
    with np.errstate(over="ignore"):
        g = np.exp(-0.5 * (r / s) ** 2)
    k = np.outer(g, g)
    return k / k.sum()  # type: ignore[no-any-return]


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("identity", "Leaves the image as it is.", "clip", _fixed([[0, 0, 0], [0, 1, 0], [0, 0, 0]])),
        Preset("box", "Box blur: the mean of a size x size window.", "clip", _box, ("size",)),
        Preset(
            "gaussian",
            "Gaussian blur with standard deviation sigma (size defaults to 2*ceil(3*sigma)+1).",
            "clip",
            _gaussian,
            ("size", "sigma"),
        ),
        Preset(
            "sharpen",
            "Sharpens: 5x the centre minus its four neighbours.",
            "clip",
            _fixed([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
        ),
        Preset(
            "edge-horizontal",
            "The seed's [1,-1] as a 1x2 row: finds changes from left to right (vertical edges).",
            "abs",
            _fixed([[1, -1]]),
        ),
        Preset(
            "edge-vertical",
            "The seed's [1,-1] as a 2x1 column: finds changes from top to bottom (horizontal edges).",
            "abs",
            _fixed([[1], [-1]]),
        ),
        Preset(
            "sobel-x",
            "Sobel gradient along x (left to right).",
            "abs",
            _fixed([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
        ),
        Preset(
            "sobel-y",
            "Sobel gradient along y (top to bottom).",
            "abs",
            _fixed([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
        ),
        Preset(
            "laplacian",
            "4-neighbour Laplacian: second derivative, zero on flat areas.",
            "abs",
            _fixed([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
        ),
        Preset(
            "emboss",
            "Emboss: a relief lit from the top left.",
            "clip",
            _fixed([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
        ),
    )
}
#: Other names people use for the presets.
ALIASES = {"edge": "edge-horizontal", "box-blur": "box", "blur": "box", "gaussian-blur": "gaussian"}


def preset_names() -> list[str]:
    return list(PRESETS)


def resolve_kernel(
    kernel: str | Any, *, size: int | None = None, sigma: float | None = None
) -> tuple[npt.NDArray[np.float64], Mapping]:
    """A preset name or a custom matrix to (matrix, the mapping that suits it)."""
    if isinstance(kernel, str):
        name = ALIASES.get(kernel, kernel)
        preset = PRESETS.get(name)
        if preset is None:
            raise InvalidArgument(
                "kernel",
                f"unknown preset {kernel!r}; use one of {preset_names()} or give a matrix like [[1,-1]]",
            )
        for param, value in (("size", size), ("sigma", sigma)):
            if value is not None and param not in preset.params:
                raise InvalidArgument(param, f"preset {name!r} takes no {param}; leave it out")
        return preset.build(size, sigma), preset.mapping
    if size is not None or sigma is not None:
        raise InvalidArgument("size" if size is not None else "sigma", "only presets take size or sigma")
    try:
        matrix = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument("kernel", "a custom kernel must be a rectangular matrix of numbers") from None
    if matrix.ndim != 2 or matrix.size == 0:
        raise InvalidArgument(
            "kernel", f"a custom kernel must be a 2-D matrix, got shape {list(matrix.shape)}"
        )
    if max(matrix.shape) > MAX_KERNEL_SIDE:
        raise InvalidArgument(
            "kernel", f"kernel {list(matrix.shape)} is over {MAX_KERNEL_SIDE} rows or columns"
        )
    if not np.isfinite(matrix).all():
        raise InvalidArgument("kernel", "the kernel holds NaN or infinity; use finite numbers")
    return matrix, "clip"


def plan_filter(
    image_shape: tuple[int, int, int],
    kernel_shape: tuple[int, ...],
    *,
    stride: planning.Pair = 1,
    padding: planning.PaddingSpec = "same",
    padding_mode: str = "replicate",
    dilation: planning.Pair = 1,
    flip: bool = False,
    groups: int = 1,
) -> planning.Conv2dPlan:
    """Each of the C channels is one batch item of a single-filter conv2d.

    ``"same"`` works with any stride here: the image is padded as for stride 1 (an even
    kernel's extra row/column bottom/right, top/left with flip), then every stride-th output
    is kept, so the output is ceil(H / stride) x ceil(W / stride).
    """
    c, h, w = image_shape
    if groups != 1:
        raise InvalidArgument("groups", "images are filtered channel by channel: groups must be 1")
    if padding == "same" and len(kernel_shape) == 2:
        padding = list(planning.same_padding(kernel_shape, dilation, flip))  # type: ignore[arg-type]
    return planning.plan_conv2d(
        (c, 1, h, w),
        (1, 1, *kernel_shape),
        stride=stride,
        padding=padding,
        padding_mode=padding_mode,
        dilation=dilation,
        flip=flip,
    )


def filter_channels(
    pixels: npt.ArrayLike,
    kernel: npt.ArrayLike,
    plan: planning.Conv2dPlan,
    *,
    flip: bool = False,
    ctx: mx.Context | None = None,
) -> npt.NDArray[np.float32]:
    """Cross-correlate every channel of a (C, H, W) image with one 2-D kernel: (C, Ho, Wo)."""
    x = np.asarray(pixels, dtype=np.float32)
    c, h, w = x.shape
    k = np.asarray(kernel)
    y = conv.conv2d(x.reshape(c, 1, h, w), k, flip=flip, dtype="float32", ctx=ctx, plan=plan)
    return y.reshape(c, y.shape[-2], y.shape[-1]).astype(np.float32, copy=False)


def to_uint8(y: npt.ArrayLike, mapping: str) -> npt.NDArray[np.uint8]:
    """Map filter output to displayable 0-255.

    clip: round and clip; abs: round |y| and clip; minmax: stretch [min, max] of the whole
    image (all channels together, so colours keep their balance) to [0, 255].
    """
    arr = np.asarray(y, dtype=np.float64)
    if mapping == "abs":
        arr = np.abs(arr)
    elif mapping == "minmax":
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    elif mapping != "clip":
        raise InvalidArgument("mapping", f"unknown mapping {mapping!r}; use one of {MAPPINGS}")
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)  # type: ignore[no-any-return]
