"""Networks: the typed layers of a network spec, its summary, and predicting with a trained one.

A network is a list of layers, each an object with a ``type``; the classes here are those
objects, usable from Python as ``Conv2d(channels=6, kernel_size=3, padding=1)``. A
convolution layer has the full geometry of /v1/conv2d (:class:`ConvGeometry`). Shapes are
one sample's, without the batch axis: ``[C, H, W]`` for 2-D layers, ``[C, L]`` for 1-D ones,
and dense layers take any shape (they flatten it, as Gluon's ``Dense`` does).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field

from .common import Encoding, Strict, Tensor, _one_of
from .geometry import MAX_GEOMETRY, ConvGeometry, ConvGeometry1d, IntPair, NonNegInt, PositiveInt

#: Most layers one network may have (VGG-16 written out layer by layer has 39).
MAX_LAYERS = 128
#: Largest dense layer, in units.
MAX_UNITS = 1 << 16

PoolPadding = Annotated[
    NonNegInt | Annotated[list[NonNegInt], Field(min_length=2, max_length=2)],
    _one_of(f"an integer from 0 to {MAX_GEOMETRY}, or a pair [ph, pw] of them"),
]


class Conv2d(ConvGeometry):
    """A 2-D convolution (Gluon ``Conv2D``): ``[C, H, W]`` in, ``[channels, Ho, Wo]`` out."""

    type: Literal["conv2d"] = "conv2d"
    channels: PositiveInt = Field(description="Output channels (filters).")
    kernel_size: IntPair = Field(description="kh or [kh, kw].")
    bias: bool = Field(True, description="Learn a bias per output channel.")
    flip: Literal[False] = Field(False, description="Always false: a network learns cross-correlations.")


class Conv1d(ConvGeometry1d):
    """A 1-D convolution (Gluon ``Conv1D``): ``[C, L]`` in, ``[channels, Lo]`` out."""

    type: Literal["conv1d"] = "conv1d"
    channels: PositiveInt = Field(description="Output channels (filters).")
    kernel_size: PositiveInt
    bias: bool = True
    flip: Literal[False] = False


class _Pool2d(Strict):
    pool_size: IntPair = Field(2, description="ph or [ph, pw].")
    stride: IntPair | None = Field(None, description="Default: the pool size.")
    padding: PoolPadding = Field(0, description="Zeros on both sides, at most half the pool size.")


class MaxPool2d(_Pool2d):
    type: Literal["maxpool2d"] = "maxpool2d"


class AvgPool2d(_Pool2d):
    """Average pooling; padded zeros count in the average (Gluon's default)."""

    type: Literal["avgpool2d"] = "avgpool2d"


class _Pool1d(Strict):
    pool_size: PositiveInt = 2
    stride: PositiveInt | None = Field(None, description="Default: the pool size.")
    padding: NonNegInt = Field(0, description="Zeros on both sides, at most half the pool size.")


class MaxPool1d(_Pool1d):
    type: Literal["maxpool1d"] = "maxpool1d"


class AvgPool1d(_Pool1d):
    type: Literal["avgpool1d"] = "avgpool1d"


class ReLU(Strict):
    type: Literal["relu"] = "relu"


class Sigmoid(Strict):
    type: Literal["sigmoid"] = "sigmoid"


class Tanh(Strict):
    type: Literal["tanh"] = "tanh"


class BatchNorm(Strict):
    """Batch normalization over the channel axis (axis 0 of a sample)."""

    type: Literal["batchnorm"] = "batchnorm"
    momentum: float = Field(0.9, gt=0, lt=1, description="Of the running mean and variance.")
    epsilon: float = Field(1e-5, gt=0, le=1)


class Flatten(Strict):
    type: Literal["flatten"] = "flatten"


class Dense(Strict):
    """A fully connected layer; it flattens its input first (Gluon ``Dense``)."""

    type: Literal["dense"] = "dense"
    units: int = Field(ge=1, le=MAX_UNITS, description="Output units.")
    bias: bool = True


class Dropout(Strict):
    """Zeroes a fraction of its inputs while training; the identity when predicting."""

    type: Literal["dropout"] = "dropout"
    rate: float = Field(0.5, ge=0, lt=1)


Layer = Annotated[
    Union[  # noqa: UP007 - a discriminated union needs the Union form under Python 3.10
        Conv2d,
        Conv1d,
        MaxPool2d,
        AvgPool2d,
        MaxPool1d,
        AvgPool1d,
        ReLU,
        Sigmoid,
        Tanh,
        BatchNorm,
        Flatten,
        Dense,
        Dropout,
    ],
    Field(discriminator="type"),
]
LAYER_TYPES: tuple[str, ...] = (
    "conv2d",
    "conv1d",
    "maxpool2d",
    "avgpool2d",
    "maxpool1d",
    "avgpool1d",
    "relu",
    "sigmoid",
    "tanh",
    "batchnorm",
    "flatten",
    "dense",
    "dropout",
)
Network = Annotated[list[Layer], Field(min_length=1, max_length=MAX_LAYERS)]
SampleShape = Annotated[
    list[Annotated[int, Field(ge=1, le=1 << 24)]],
    Field(min_length=1, max_length=3, description="One sample's shape: [C, H, W], [C, L] or [F]."),
]


class NetworkSummaryRequest(Strict):
    network: Network
    input_shape: SampleShape


class ReceptiveField(BaseModel):
    """Where one output unit looks in the original input, per spatial axis (h, w, or the
    length): ``size`` input pixels wide, neighbours ``jump`` pixels apart, the first one centred
    on input index ``start`` (0 is the first pixel's centre; padding makes it negative). After a
    flatten or dense layer every unit sees the whole input: ``size`` is the input's extent and
    ``jump`` and ``start`` are null."""

    size: list[int]
    jump: list[int] | None = None
    start: list[float] | None = None


class LayerSummary(BaseModel):
    index: int
    type: str
    output_shape: list[int] = Field(description="One sample's output shape.")
    params: int = Field(description="Learned parameters (batchnorm's running statistics not counted).")
    flops: int = Field(description="Per sample: 2 per multiply-add, 1 per comparison, add or activation.")
    receptive_field: ReceptiveField | None = None
    dense_equivalent_params: int = Field(
        description="Parameters of a dense layer mapping this layer's input to its output (with a bias)."
    )


class NetworkSummary(BaseModel):
    input_shape: list[int]
    output_shape: list[int]
    params: int
    network_flops: int = Field(description="One sample's forward pass.")
    dense_equivalent_params: int = Field(
        description="Parameters of one dense layer mapping the network's input to its output."
    )
    layers: list[LayerSummary]
    flops: int = Field(0, description="FLOPs this request computed: none, the summary is arithmetic.")
    elapsed_ms: float = 0.0


class PredictRequest(Strict):
    x: Tensor = Field(description="Inputs: [N, *the sample shape the network was trained on].")
    output_encoding: Encoding = Field("list", description="How the output tensor is encoded.")


class PredictPath(Strict):
    job_id: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ModelQuery(Strict):
    format: Literal["mxnet", "onnx"] = Field(
        "mxnet",
        description="mxnet: a .zip of model-symbol.json, model-0000.params and spec.json; onnx: model.onnx.",
    )
