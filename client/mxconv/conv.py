"""2-D convolution, the seed's corr2d, channel mixing and 1-D convolution."""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy.typing as npt
from typing_extensions import Unpack

from . import schemas
from ._transport import ArrayLike, Transport, as_json
from .schemas.geometry import GeometryOptions


class ConvAPI(Transport):
    @overload
    def conv2d(
        self,
        x: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike | None = ...,
        *,
        dtype: str = ...,
        detailed: Literal[False] = ...,
        **geometry: Unpack[GeometryOptions],
    ) -> npt.NDArray[Any]: ...

    @overload
    def conv2d(
        self,
        x: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike | None = ...,
        *,
        dtype: str = ...,
        detailed: Literal[True],
        **geometry: Unpack[GeometryOptions],
    ) -> schemas.TensorResult: ...

    def conv2d(
        self,
        x: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike | None = None,
        *,
        dtype: str = "float32",
        detailed: bool = False,
        **geometry: Unpack[GeometryOptions],
    ) -> npt.NDArray[Any] | schemas.TensorResult:
        """2-D cross-correlation (``flip=False``) or convolution (``flip=True``).

        ``geometry``: ``stride``, ``padding``, ``padding_mode``, ``dilation``, ``groups``,
        ``flip`` (:class:`mxconv.schemas.ConvGeometry`; the server's defaults where not
        given). ``detailed=True`` returns the :class:`~mxconv.schemas.TensorResult`, with the
        server's FLOP count and compute time, instead of the array.
        """
        arrays = {"x": x, "weight": weight, "bias": bias}
        result = self._compute(
            "/v1/conv2d", arrays, {"dtype": dtype, **as_json(geometry)}, schemas.TensorResult
        )
        return result if detailed else result.y

    def corr2d(self, x: ArrayLike, kernel: ArrayLike, *, dtype: str = "float32") -> npt.NDArray[Any]:
        """The seed's ``corr2d``: valid 2-D cross-correlation of a 2-D input."""
        arrays = {"x": x, "kernel": kernel}
        return self._compute("/v1/corr2d", arrays, {"dtype": dtype}, schemas.TensorResult).y

    def channel_mix(
        self,
        x: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike | None = None,
        *,
        matrix_view: bool = False,
        dtype: str = "float32",
    ) -> schemas.ChannelMixResult:
        """A 1x1 convolution with mixing matrix ``weight`` (O,C); optionally its matrix view."""
        arrays = {"x": x, "weight": weight, "bias": bias}
        params = {"matrix_view": matrix_view, "dtype": dtype}
        # The matrix view is four tensors: it comes back as JSON whatever the transport.
        return self._compute(
            "/v1/channel-mix", arrays, params, schemas.ChannelMixResult, npy_output=not matrix_view
        )

    @overload
    def conv1d(
        self,
        x: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike | None = ...,
        *,
        dtype: str = ...,
        detailed: Literal[False] = ...,
        **geometry: Unpack[GeometryOptions],
    ) -> npt.NDArray[Any]: ...

    @overload
    def conv1d(
        self,
        x: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike | None = ...,
        *,
        dtype: str = ...,
        detailed: Literal[True],
        **geometry: Unpack[GeometryOptions],
    ) -> schemas.TensorResult: ...

    def conv1d(
        self,
        x: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike | None = None,
        *,
        dtype: str = "float32",
        detailed: bool = False,
        **geometry: Unpack[GeometryOptions],
    ) -> npt.NDArray[Any] | schemas.TensorResult:
        """1-D cross-correlation (``flip=False``) or convolution (``flip=True``).

        ``x`` is (L,), (C,L) or (N,C,L); ``weight`` (k,) or (O,C/groups,k); ``padding`` an int,
        ``(left, right)``, or ``"valid"``/``"same"``/``"full"``; the other options as for
        :meth:`conv2d`, single integers.
        """
        arrays = {"x": x, "weight": weight, "bias": bias}
        result = self._compute(
            "/v1/conv1d", arrays, {"dtype": dtype, **as_json(geometry)}, schemas.TensorResult
        )
        return result if detailed else result.y
