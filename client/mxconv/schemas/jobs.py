"""Training jobs: the spec, its model (one layer, or a network), and the job as the API shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .common import Encoding, OutTensor, Strict, Tensor
from .geometry import ConvGeometry, IntPair, PositiveInt
from .networks import Network

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Optimizer = Literal["sgd", "adam"]
LossName = Literal["l2", "mse", "l1", "softmax_cross_entropy"]
#: JobSpec fields only a network job has; a layer job's stored spec leaves them out, so it is
#: what it was before networks existed.
NETWORK_FIELDS = ("network", "validation_split", "checkpoint_every", "checkpoint_seconds")


class LayerSpec(ConvGeometry):
    """The Conv2D layer to train; geometry options as in /v1/conv2d."""

    in_channels: PositiveInt | None = Field(None, description="Input channels; default: x's channel count.")
    out_channels: PositiveInt = Field(1, description="Output channels (filters).")
    kernel_size: IntPair = Field(description="kh or [kh, kw].")
    bias: bool = Field(True, description="Learn a bias per output channel.")
    flip: Literal[False] = Field(False, description="Always false: training learns a cross-correlation.")


class EarlyStopping(Strict):
    patience: int = Field(10, ge=1, description="Stop after this many epochs without improvement.")
    tolerance: float = Field(
        0.0, ge=0, description="A loss decrease of at most this does not count as improvement."
    )
    target_loss: float | None = Field(None, ge=0, description="Stop as soon as the loss is at most this.")


class JobSpec(Strict):
    """A training job: learn the layer's weight (and bias) so that layer(x) ≈ y, or train a
    network (a list of layers) on samples x with targets y."""

    x: Tensor = Field(
        description="Inputs. A layer: (H,W), (C,H,W) or (N,C,H,W). A network: (N, *one sample's shape)."
    )
    y: Tensor = Field(
        description=(
            "Targets. A layer: its output shape for x, e.g. (N,O,Ho,Wo). A network: (N, *its output "
            "shape), or with softmax_cross_entropy (N,) integer class labels."
        )
    )
    layer: LayerSpec | None = Field(None, description="Learn one Conv2D layer (give this or network).")
    network: Network | None = Field(
        None, description="Train a network: its layers, in order (give this or layer)."
    )
    optimizer: Optimizer = "sgd"
    learning_rate: float = Field(0.03, gt=0, le=1000)
    epochs: int = Field(100, ge=1, description="Passes over the data (limit: MXCONV_MAX_JOB_EPOCHS).")
    batch_size: int | None = Field(None, ge=1, description="Samples per step; default: all of them.")
    loss: LossName = Field(
        "l2",
        description=(
            "l2 (= mse): mean squared error; l1: mean absolute error; softmax_cross_entropy: "
            "classification (networks), y holds class labels."
        ),
    )
    seed: int | None = Field(
        None, ge=0, lt=2**31, description="Same seed, same weights; default: chosen and recorded."
    )
    shuffle: bool = Field(True, description="Shuffle the samples each epoch (with batch_size).")
    early_stopping: EarlyStopping | None = None
    initial_weight: Tensor | None = Field(None, description="Start from this weight (O, C/groups, kh, kw).")
    initial_bias: Tensor | None = Field(None, description="Start from this bias (O,).")
    name: str | None = Field(None, max_length=200, description="A label of your choosing.")
    validation_split: float = Field(
        0.0, ge=0, lt=1, description="Networks: the fraction of samples held out (seeded) to validate on."
    )
    checkpoint_every: int | None = Field(
        None, ge=1, description="Networks: save weights and optimizer state every this many epochs."
    )
    checkpoint_seconds: float | None = Field(
        None,
        gt=0,
        description=(
            "Networks: ... or every this many seconds of training (default 60 when neither is "
            "given). A killed worker's job resumes from its last checkpoint."
        ),
    )

    @model_validator(mode="after")
    def _one_model(self) -> JobSpec:
        if (self.layer is None) == (self.network is None):
            raise ValueError("give exactly one of layer (one Conv2D to learn) and network (a list of layers)")
        if self.layer is not None:
            given = [f for f in NETWORK_FIELDS[1:] if f in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)}: only for network jobs; a layer job trains on all of x")
        elif self.initial_weight is not None or self.initial_bias is not None:
            raise ValueError(
                "initial_weight and initial_bias are for layer jobs; a network starts from its seed"
            )
        return self


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
    accuracy: float | None = Field(
        None, description="Networks, classification: the latest training accuracy."
    )
    val_loss: float | None = Field(None, description="Networks: the latest validation loss.")
    val_accuracy: float | None = Field(None, description="Networks, classification: validation accuracy.")
    elapsed: float | None = Field(None, description="Seconds of training so far.")
    eta: float | None = Field(None, description="Seconds left, estimated from the pace so far.")
    weight: OutTensor | None = Field(
        None, description="While running, a small layer's current weight (at most 256 values)."
    )
    bias: OutTensor | None = Field(None, description="While running, the layer's current bias.")


class JobResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    weight: OutTensor | None = Field(
        None, description="A layer job: the learned weight, (O, C/groups, kh, kw)."
    )
    bias: OutTensor | None = Field(None, description="A layer job: the learned bias, (O,), if it has one.")
    final_loss: float = Field(description="The last epoch's training loss.")
    data_loss: float = Field(
        description="A layer: its loss on all of x and y. A network: its loss on all of x and y, predicting."
    )
    metrics: dict[str, float] | None = Field(
        None,
        description="Networks: the last epoch's loss, accuracy, val_loss and val_accuracy (as measured).",
    )
    params: int | None = Field(None, description="Networks: learned parameters.")
    resumed_from: int | None = Field(
        None, description="Networks: the epoch the last attempt resumed after (0: it started afresh)."
    )
    model: str | None = Field(None, description="Networks: where to get the model (GET, ?format=mxnet|onnx).")
    epochs_run: int
    stopped_early: bool
    stop_reason: str
    seed: int
    elapsed: float = Field(description="Seconds of training.")


class Checkpoint(BaseModel):
    epoch: int = Field(description="Epochs done when it was saved; a new attempt resumes after it.")
    saved_at: datetime
    elapsed: float = Field(description="Seconds of training it holds.")


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
    history: dict[str, list[float]] | None = Field(
        None, description="Networks: accuracy, val_loss and val_accuracy of every epoch, in order."
    )
    checkpoint: Checkpoint | None = Field(None, description="Networks: the last checkpoint saved.")
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
