"""Wire models: the API contract. The server validates requests with these, the client
parses responses with them, and /openapi.json is generated from them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from . import tensors

#: Largest stride, dilation or padding accepted; anything bigger is a mistake, not a request.
MAX_GEOMETRY = 1024


def _nested_lists(max_rank: int, leaf: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON Schemas of nested lists of ``leaf``, rank 1 to ``max_rank`` (rectangularity and
    finiteness cannot be said in JSON Schema; the validators check them)."""
    out: list[dict[str, Any]] = []
    items = leaf
    for _ in range(max_rank):
        items = {"type": "array", "minItems": 1, "items": items}
        out.append(items)
    return out


def _tensor_schema(leaf: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "anyOf": [*_nested_lists(tensors.MAX_RANK, leaf), _B64_SCHEMA],
    }


_B64_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["dtype", "shape", "b64"],
    "additionalProperties": False,
    "properties": {
        "dtype": {"type": "string", "enum": sorted(tensors.DTYPES)},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "minItems": 1,
            "maxItems": tensors.MAX_RANK,
        },
        "b64": {"type": "string", "format": "byte"},
    },
}
_TENSOR_SCHEMA = _tensor_schema(
    {"type": "number"},
    "A tensor: nested lists of finite numbers (row-major), or "
    '{"dtype": "float32"|"float64", "shape": [...], "b64": "<little-endian bytes>"}.',
)
#: Outputs can overflow to Inf (or hold NaN); JSON has no such numbers, so lists carry null.
_OUT_TENSOR_SCHEMA = _tensor_schema(
    {"anyOf": [{"type": "number"}, {"type": "null"}]},
    "A tensor: nested lists of numbers (row-major; null stands for NaN or Inf, which JSON "
    'cannot hold), or {"dtype": "float32"|"float64", "shape": [...], "b64": "<little-endian bytes>"}.',
)


def _decode_finite(value: Any) -> npt.NDArray[Any]:
    return tensors.decode(value, require_finite=True)


def _decode_any(value: Any) -> npt.NDArray[Any]:
    arr = tensors.decode(value, require_finite=False)
    # A result is the caller's to keep and change: never a read-only view of a response buffer.
    return arr if arr.flags.writeable else arr.copy()


def _serialize(arr: npt.NDArray[Any]) -> Any:
    return np.asarray(arr).tolist()


#: A request tensor: finite numbers only.
Tensor = Annotated[
    npt.NDArray[Any],
    PlainValidator(_decode_finite),
    PlainSerializer(_serialize),
    WithJsonSchema(_TENSOR_SCHEMA),
]
#: A response tensor: whatever the computation produced.
OutTensor = Annotated[
    npt.NDArray[Any],
    PlainValidator(_decode_any),
    PlainSerializer(_serialize),
    WithJsonSchema(_OUT_TENSOR_SCHEMA),
]

PositiveInt = Annotated[int, Field(ge=1, le=MAX_GEOMETRY)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_GEOMETRY)]


def _one_of(expected: str) -> WrapValidator:
    """One clear message for a union field, instead of one error per branch of the union."""

    def check(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except PydanticValidationError:
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ValueError(f"expected {expected}; got {shown}") from None

    return WrapValidator(check)


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
        f'an integer from 0 to {MAX_GEOMETRY}, [ph, pw], [top, bottom, left, right], '
        'or "valid", "same", "full"'
    ),
]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
DType = Literal["float32", "float64"]
Encoding = Literal["list", "base64"]


class Strict(BaseModel):
    """Unknown fields are mistakes: reject them rather than ignore them."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class ComputeOptions(Strict):
    dtype: DType = Field("float32", description="Compute dtype; float64 where MXNet supports it.")
    output_encoding: Encoding = Field("list", description="How the output tensor is encoded.")


class ConvOptions(ComputeOptions):
    """What conv1d and conv2d share; each adds x, weight, stride, padding and dilation."""

    bias: Tensor | None = Field(None, description="Per-output-channel bias, shape (O,).")
    padding_mode: PaddingMode = "zeros"
    groups: PositiveInt = 1
    flip: bool = Field(
        False,
        description="false: cross-correlation (deep learning); true: true convolution (signals).",
    )


class Conv2dRequest(ConvOptions):
    # "example" (one, OpenAPI 3.0 style): flask-openapi3 keeps it in /openapi.json, where the
    # Swagger UI and fuzzers (schemathesis) start from it; it drops the JSON Schema "examples".
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "x": [[[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]]],
                "weight": [[[[1, 0], [0, -1]]]],
                "bias": [0.5],
                "padding": "same",
                "padding_mode": "reflect",
                "output_encoding": "base64",
            }
        }
    )

    x: Tensor = Field(description="Input: (H,W), (C,H,W) or (N,C,H,W).")
    weight: Tensor = Field(
        description="Kernel: (kh,kw), (O,C/groups,kh,kw), or a 3-D form that is unambiguous."
    )
    stride: IntPair = 1
    padding: Padding = Field(
        0,
        description=(
            'An int, [ph,pw], asymmetric [top,bottom,left,right], or "valid"/"same"/"full". '
            '"same" with an even kernel puts the extra row/column bottom/right '
            "(top/left with flip=true, as scipy.signal.convolve2d does)."
        ),
    )
    dilation: IntPair = 1


class Corr2dRequest(ComputeOptions):
    """The seed's ``corr2d``: 2-D input, 2-D kernel, valid cross-correlation."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"x": [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "kernel": [[0, 1], [2, 3]]}}
    )

    x: Tensor = Field(description="2-D input (H,W).")
    kernel: Tensor = Field(description="2-D kernel (kh,kw).")


class ChannelMixRequest(ComputeOptions):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "x": [[[1, 2], [3, 4]], [[5, 6], [7, 8]], [[1, 0], [0, 1]]],
                "weight": [[1, 1, 0], [0, 1, -1]],
                "matrix_view": True,
            }
        }
    )

    x: Tensor = Field(description="Input: (C,H,W) or (N,C,H,W).")
    weight: Tensor = Field(description="Mixing matrix W, shape (O,C).")
    bias: Tensor | None = Field(None, description="Per-output-channel bias, shape (O,).")
    matrix_view: bool = Field(False, description="Also return X' (C x N), W and Y' = W X'.")


class TensorResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    y: OutTensor
    shape: list[int]
    dtype: str
    flops: int = Field(description="Multiply-adds x 2 that the computation performed.")
    elapsed_ms: float = Field(description="Compute time on the server, in milliseconds.")


class MatrixView(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    x_flat: OutTensor = Field(description="X', the input with space flattened: C x (N*H*W).")
    w: OutTensor = Field(description="W, the mixing matrix: O x C.")
    y_flat: OutTensor = Field(description="Y' = W X' (+ bias): O x (N*H*W).")


class ChannelMixResult(TensorResult):
    matrix_view: MatrixView | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


class Info(BaseModel):
    service: str
    version: str
    versions: dict[str, str]
    device: str
    limits: dict[str, int]
    features: list[str]


# -- signals: conv1d and LTI responses --------------------------------------------------------

Finite = Annotated[float, Field(allow_inf_nan=False)]
Padding1d = Annotated[
    NonNegInt
    | Annotated[list[NonNegInt], Field(min_length=2, max_length=2)]
    | Literal["valid", "same", "full"],
    _one_of(f'an integer from 0 to {MAX_GEOMETRY}, [left, right], or "valid", "same", "full"'),
]


class Conv1dRequest(ConvOptions):
    x: Tensor = Field(description="Input: (L,), (C,L) or (N,C,L).")
    weight: Tensor = Field(
        description="Kernel: (k,), (O,C/groups,k), or (O,k) / (C,k) where that is unambiguous."
    )
    stride: PositiveInt = 1
    padding: Padding1d = Field(
        0,
        description=(
            'An int, asymmetric [left,right], or "valid"/"same"/"full". "same" with an even kernel '
            "puts the extra sample right (cross-correlation) or left (flip=true, as scipy does)."
        ),
    )
    dilation: PositiveInt = 1


class StepInput(Strict):
    """The unit step u(t), scaled: x(t) = amplitude for t >= 0."""

    kind: Literal["step"] = "step"
    amplitude: Finite = 1.0


class ImpulseInput(Strict):
    """A Dirac impulse at t = 0 of the given area."""

    kind: Literal["impulse"] = "impulse"
    area: Finite = 1.0


class WindowInput(Strict):
    """The rectangular window: x(t) = amplitude on [start, start + width], 0 elsewhere."""

    kind: Literal["window"] = "window"
    start: Finite = Field(0.0, ge=0, description="Seconds; >= 0. Need not be on the grid.")
    width: Finite = Field(1.0, gt=0, description="Seconds; > 0.")
    amplitude: Finite = 1.0


class RampInput(Strict):
    """x(t) = slope * t for t >= 0."""

    kind: Literal["ramp"] = "ramp"
    slope: Finite = 1.0


class SineInput(Strict):
    """x(t) = amplitude * sin(2 pi freq t) for t >= 0; freq below the grid's Nyquist 1/(2 dt)."""

    kind: Literal["sine"] = "sine"
    freq: Finite = Field(gt=0, description="Hz; > 0 and below 1/(2 dt).")
    amplitude: Finite = 1.0


class CustomInput(Strict):
    """Samples x(k dt), k = 0, 1, ...; zero after the last one."""

    kind: Literal["custom"] = "custom"
    samples: Tensor = Field(description="1-D, at most duration/dt + 1 samples.")


LtiInput = Annotated[
    StepInput | ImpulseInput | WindowInput | RampInput | SineInput | CustomInput,
    Field(discriminator="kind"),
]


class FirstOrder(Strict):
    """G(s) = gain / (T s + 1): h(t) = (gain / T) e^{-t/T}."""

    kind: Literal["first_order"] = "first_order"
    T: Finite = Field(gt=0, description="Time constant in seconds; > 0.")
    gain: Finite = 1.0


class SecondOrder(Strict):
    """G(s) = gain wn^2 / (s^2 + 2 zeta wn s + wn^2)."""

    kind: Literal["second_order"] = "second_order"
    wn: Finite = Field(gt=0, description="Natural frequency in rad/s; > 0.")
    zeta: Finite = Field(ge=0, description="Damping ratio; >= 0.")
    gain: Finite = 1.0


class CustomSystem(Strict):
    """An impulse response given as samples h(t0 + k dt)."""

    kind: Literal["custom"] = "custom"
    h: Tensor = Field(description="1-D samples of h on the request's grid spacing dt.")
    t0: Finite = Field(0.0, description="Time of h's first sample: >= 0 (causal), a multiple of dt.")


class TransferFunction(Strict):
    """G(s) = num(s) / den(s), strictly proper; coefficients from the highest power of s down."""

    kind: Literal["transfer_function"] = "transfer_function"
    num: list[Finite] = Field(min_length=1, max_length=32, description="e.g. [1] for 1.")
    den: list[Finite] = Field(min_length=1, max_length=32, description="e.g. [2, 1] for 2s + 1.")


LtiSystem = Annotated[
    FirstOrder | SecondOrder | CustomSystem | TransferFunction,
    Field(discriminator="kind"),
]


class LtiRequest(Strict):
    input: LtiInput
    system: LtiSystem
    dt: Finite = Field(gt=0, description="Grid step in seconds; > 0.")
    duration: Finite = Field(
        gt=0, description="Simulated time in seconds; the grid is 0, dt, ..., <= duration."
    )
    output_encoding: Encoding = Field("list", description="How the output arrays are encoded.")


class LtiPlotRequest(LtiRequest):
    width: int = Field(800, ge=64, le=4096, description="PNG width in pixels.")
    height: int = Field(500, ge=64, le=4096, description="PNG height in pixels.")


class LtiResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    t: OutTensor = Field(description="The grid: t_n = n dt.")
    x: OutTensor = Field(
        description="The input samples used (an impulse as a discrete delta area/dt at t=0)."
    )
    h: OutTensor = Field(description="The impulse response samples used, h(t_n).")
    y: OutTensor = Field(description="The response y(t_n).")
    y_analytic: OutTensor | None = Field(None, description="The closed-form response, where one exists.")
    max_abs_error: float | None = Field(None, description="max |y - y_analytic| on the grid.")
    analytic: str | None = Field(None, description="The closed form used, as a formula.")
    rule: str = Field(description='The discretization rule, e.g. "trapezoid".')
    order: int = Field(description="The rule's order: the error falls like dt**order.")
    discretization: str = Field(description="The rule, stated in full.")
    dt: float
    n_samples: int
    input: str = Field(description="The input, in words.")
    system: str = Field(description="The system, in words.")
    notes: list[str] = Field(default_factory=list)
    flops: int
    elapsed_ms: float


# -- training jobs ---------------------------------------------------------------------

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Optimizer = Literal["sgd", "adam"]
LossName = Literal["l2", "mse", "l1"]


class LayerSpec(Strict):
    """The Conv2D layer to train; geometry options as in /v1/conv2d."""

    in_channels: PositiveInt | None = Field(None, description="Input channels; default: x's channel count.")
    out_channels: PositiveInt = Field(1, description="Output channels (filters).")
    kernel_size: IntPair = Field(description="kh or [kh, kw].")
    stride: IntPair = 1
    padding: Padding = Field(
        0, description='As in /v1/conv2d: int, [ph,pw], [t,b,l,r], "valid"/"same"/"full".'
    )
    padding_mode: PaddingMode = "zeros"
    dilation: IntPair = 1
    groups: PositiveInt = 1
    bias: bool = Field(True, description="Learn a bias per output channel.")


class EarlyStopping(Strict):
    patience: int = Field(10, ge=1, description="Stop after this many epochs without improvement.")
    tolerance: float = Field(
        0.0, ge=0, description="A loss decrease of at most this does not count as improvement."
    )
    target_loss: float | None = Field(None, ge=0, description="Stop as soon as the loss is at most this.")


class JobSpec(Strict):
    """A training job: learn the layer's weight (and bias) so that layer(x) ≈ y."""

    x: Tensor = Field(description="Inputs: (H,W), (C,H,W) or (N,C,H,W).")
    y: Tensor = Field(description="Targets: the layer's output shape for x, e.g. (N,O,Ho,Wo).")
    layer: LayerSpec
    optimizer: Optimizer = "sgd"
    learning_rate: float = Field(0.03, gt=0, le=1000)
    epochs: int = Field(100, ge=1, description="Passes over the data (limit: MXCONV_MAX_JOB_EPOCHS).")
    batch_size: int | None = Field(None, ge=1, description="Samples per step; default: all of them.")
    loss: LossName = Field("l2", description="l2 (= mse): mean squared error; l1: mean absolute error.")
    seed: int | None = Field(
        None, ge=0, lt=2**31, description="Same seed, same weights; default: chosen and recorded."
    )
    shuffle: bool = Field(True, description="Shuffle the samples each epoch (with batch_size).")
    early_stopping: EarlyStopping | None = None
    initial_weight: Tensor | None = Field(None, description="Start from this weight (O, C/groups, kh, kw).")
    initial_bias: Tensor | None = Field(None, description="Start from this bias (O,).")
    name: str | None = Field(None, max_length=200, description="A label of your choosing.")


class JobListQuery(Strict):
    status: JobStatus | None = Field(None, description="Only jobs in this state.")
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=2**53, description="Jobs to skip (SQLite holds 64-bit integers).")


class JobQuery(Strict):
    history: bool = Field(True, description="Include the loss of every epoch.")
    encoding: Encoding = Field("list", description="How the learned weight and bias are encoded.")


class JobPath(Strict):
    job_id: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class JobProgress(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    epoch: int = Field(description="Epochs done in the current attempt.")
    epochs: int
    loss: float | None = Field(None, description="The latest epoch's loss.")
    elapsed: float | None = Field(None, description="Seconds of training so far.")
    eta: float | None = Field(None, description="Seconds left, estimated from the pace so far.")
    weight: OutTensor | None = Field(
        None, description="While running, a small layer's current weight (at most 256 values)."
    )
    bias: OutTensor | None = Field(None, description="While running, the layer's current bias.")


class JobResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    weight: OutTensor = Field(description="The learned weight, (O, C/groups, kh, kw).")
    bias: OutTensor | None = Field(None, description="The learned bias, (O,), if the layer has one.")
    final_loss: float = Field(description="The last epoch's training loss.")
    data_loss: float = Field(description="The learned layer's loss on all of x and y.")
    epochs_run: int
    stopped_early: bool
    stop_reason: str
    seed: int
    elapsed: float = Field(description="Seconds of training.")


class Job(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    status: JobStatus
    name: str | None = None
    progress: JobProgress
    timestamps: dict[str, datetime] = Field(
        description="When the job entered each state: queued, running, and its final state."
    )
    attempts: int = Field(description="Runs started; more than 1 after a worker died.")
    cancel_requested: bool = False
    worker: str | None = Field(None, description="host:pid of the worker running it.")
    spec: dict[str, Any] = Field(description="The job spec without its tensors, plus their shapes.")
    loss_history: list[float] | None = Field(None, description="The loss of every epoch, in order.")
    result: JobResult | None = None
    error: str | None = Field(None, description="Why it failed, and what to change.")
    message: str | None = Field(None, description="The latest note, e.g. re-queued after a worker died.")

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


class JobList(BaseModel):
    jobs: list[Job]
    total: int
    limit: int
    offset: int
    next_offset: int | None = None


# -- images -------------------------------------------------------------------------------

ImageMapping = Literal["clip", "minmax", "abs"]
KernelSpec = str | Annotated[list[list[float]], Field(min_length=1, max_length=64)]
#: Options that may arrive as query parameters or form fields, where lists are JSON text.
_JSON_TEXT_FIELDS = ("kernel", "padding", "stride")


class ImageFilterOptions(Strict):
    """How /v1/images/filter filters. As query parameters (raw image bodies) or form fields
    (multipart), give matrices and lists as JSON text: ``kernel=[[1,-1]]``, ``padding=[0,1]``."""

    kernel: KernelSpec = Field(
        "identity",
        description=(
            "A preset name (GET /v1/kernels lists them) or a custom matrix, e.g. [[1,-1]]. "
            "The kernel is cross-correlated with each channel, as conv2d does with flip=false."
        ),
    )
    size: Annotated[int, Field(ge=1, le=31)] | None = Field(
        None, description="Window size for the box and gaussian presets (odd)."
    )
    sigma: Annotated[float, Field(gt=0, le=10)] | None = Field(
        None, description="Standard deviation for the gaussian preset (default 1)."
    )
    padding: Padding = Field(
        "same", description='As for conv2d; "same" keeps the image size (even kernels pad bottom/right).'
    )
    padding_mode: PaddingMode = Field("replicate", description="How the border is extended.")
    stride: IntPair = 1
    mapping: ImageMapping | None = Field(
        None,
        description=(
            "How the output becomes 0-255 in the PNG: clip, minmax (stretch min..max) or abs. "
            "Default: the preset's own (abs for edge, sobel and laplacian; clip otherwise)."
        ),
    )
    grayscale: bool = Field(False, description="Convert the image to greyscale before filtering.")
    output_encoding: Encoding = Field("list", description="JSON responses: how the output tensor is encoded.")

    @model_validator(mode="before")
    @classmethod
    def _json_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in _JSON_TEXT_FIELDS:
                value = data.get(key)
                if isinstance(value, str) and value.strip().startswith("["):
                    try:
                        data[key] = json.loads(value)
                    except ValueError:
                        raise ValueError(f"{key}: {value!r} is not valid JSON") from None
        return data


class ImageFilterRequest(ImageFilterOptions):
    """The JSON form of /v1/images/filter: pixels as a tensor instead of a PNG or JPEG."""

    image: Tensor = Field(description="Pixels, 0-255: (H,W) greyscale or (H,W,C) with C at most 4.")


class ImageFilterResult(BaseModel):
    """``Accept: application/json``: the filtered image as floats, before any 0-255 mapping."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    y: OutTensor = Field(description="(H,W) for one channel, (H,W,C) otherwise.")
    shape: list[int]
    dtype: str
    kernel: list[list[float]] = Field(description="The matrix that was applied.")
    mapping: ImageMapping = Field(description="The mapping a PNG response would have used.")
    flops: int
    elapsed_ms: float


class KernelPreset(BaseModel):
    name: str
    description: str
    matrix: list[list[float]] = Field(description="The matrix at the default size and sigma.")
    mapping: ImageMapping = Field(description="The output mapping it uses by default.")
    params: list[str] = Field(description="Which of size and sigma it takes.")


class KernelList(BaseModel):
    presets: list[KernelPreset]
    aliases: dict[str, str] = Field(default_factory=dict)
