"""Where a kernel goes over its input: the one model of a convolution's geometry.

:class:`ConvGeometry` holds stride, padding, padding_mode, dilation, groups and flip. Every
request that convolves inherits it (conv2d, conv1d, image filtering, a training job's layer),
the server's planner takes its fields as they are, and the client passes them through as
keyword arguments (:class:`GeometryOptions`). A new option is added here, and where it is
computed.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import Field

from .common import Strict, _one_of

#: Largest stride, dilation or padding accepted; anything bigger is a mistake, not a request.
MAX_GEOMETRY = 1024

PositiveInt = Annotated[int, Field(ge=1, le=MAX_GEOMETRY)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_GEOMETRY)]
IntPair = Annotated[
    PositiveInt | Annotated[list[PositiveInt], Field(min_length=2, max_length=2)],
    _one_of(f"an integer from 1 to {MAX_GEOMETRY}, or a pair [h, w] of them"),
]
Padding = Annotated[
    NonNegInt
    | Annotated[list[NonNegInt], Field(min_length=2, max_length=2)]
    | Annotated[list[NonNegInt], Field(min_length=4, max_length=4)]
    | Literal["valid", "same", "full"],
    _one_of(
        f"an integer from 0 to {MAX_GEOMETRY}, [ph, pw], [top, bottom, left, right], "
        'or "valid", "same", "full"'
    ),
]

Padding1d = Annotated[
    NonNegInt
    | Annotated[list[NonNegInt], Field(min_length=2, max_length=2)]
    | Literal["valid", "same", "full"],
    _one_of(f'an integer from 0 to {MAX_GEOMETRY}, [left, right], or "valid", "same", "full"'),
]
#: How the input is extended past its edges (numpy.pad's names in brackets): zeros
#: (constant), reflect (the edge sample not repeated), replicate (edge), circular (wrap),
#: symmetric (the mirror that repeats the edge sample; scipy's boundary="symm").
PaddingMode = Literal["zeros", "reflect", "replicate", "circular", "symmetric"]


class ConvGeometry(Strict):
    """Stride, padding, padding mode, dilation, groups and flip: as PyTorch's Conv2d has them,
    plus ``flip`` for true convolution."""

    stride: IntPair = 1
    padding: Padding = Field(
        0,
        description=(
            'An int, [ph,pw], asymmetric [top,bottom,left,right], or "valid"/"same"/"full". '
            '"same" with an even kernel puts the extra row/column bottom/right '
            "(top/left with flip=true, as scipy.signal.convolve2d does)."
        ),
    )
    padding_mode: PaddingMode = Field("zeros", description="How the input is extended past its edges.")
    dilation: IntPair = 1
    groups: PositiveInt = 1
    flip: bool = Field(
        False,
        description="false: cross-correlation (deep learning); true: true convolution (signals).",
    )

    def geometry(self) -> dict[str, object]:
        """The geometry fields alone, as the planner's keyword arguments."""
        return {name: getattr(self, name) for name in ConvGeometry.model_fields}


class ConvGeometry1d(ConvGeometry):
    """The same for one spatial dimension: single integers, and padding [left, right]."""

    stride: PositiveInt = 1
    padding: Padding1d = Field(
        0,
        description=(
            'An int, asymmetric [left,right], or "valid"/"same"/"full". "same" with an even kernel '
            "puts the extra sample right (cross-correlation) or left (flip=true, as scipy does)."
        ),
    )
    dilation: PositiveInt = 1


class GeometryOptions(TypedDict, total=False):
    """:class:`ConvGeometry`'s fields as the client's keyword arguments (tests/test_wire.py
    holds the two to the same names)."""

    stride: int | tuple[int, int] | list[int]
    padding: int | str | tuple[int, ...] | list[int]
    padding_mode: PaddingMode
    dilation: int | tuple[int, int] | list[int]
    groups: int
    flip: bool
