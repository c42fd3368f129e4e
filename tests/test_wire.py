"""The wire package's one dtype table and the one geometry model: what names them elsewhere
must agree with them."""

from __future__ import annotations

import typing

from mxconv import schemas, wire
from mxconv.schemas.geometry import ConvGeometry, GeometryOptions, PaddingMode
from mxconv.wire.npy import NPY_DTYPES
from mxconv_server.compute.padding import NUMPY_MODES
from mxconv_server.compute.plan import DTYPES as COMPUTE_DTYPES


def test_one_dtype_table() -> None:
    assert set(typing.get_args(schemas.DType)) == set(wire.DTYPES) == set(COMPUTE_DTYPES)
    assert set(NPY_DTYPES.values()) == set(wire.DTYPES.values())  # derived: both byte orders
    assert {dt.byteorder for dt in wire.DTYPES.values()} <= {"<", "="}


def test_the_client_keywords_are_the_geometry_fields() -> None:
    assert set(GeometryOptions.__annotations__) == set(ConvGeometry.model_fields)


def test_every_padding_mode_has_a_numpy_padding() -> None:
    assert set(typing.get_args(PaddingMode)) == set(NUMPY_MODES)


def test_every_convolving_request_takes_the_whole_geometry() -> None:
    for model in (
        schemas.Conv2dRequest,
        schemas.Conv1dRequest,
        schemas.ImageFilterOptions,
        schemas.LayerSpec,
    ):
        assert issubclass(model, ConvGeometry), model
        assert set(ConvGeometry.model_fields) <= set(model.model_fields), model
