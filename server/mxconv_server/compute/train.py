"""Learn a convolution layer's kernel (and bias) from input/output pairs, in MXNet Gluon.

This is the seed's experiment made general: a ``Conv2D`` trained by gradient descent
until it maps ``x`` to ``y``. :func:`plan_training` checks everything first (shapes,
channels, padding, batch size) without touching MXNet; :func:`train` runs the loop and
reports each epoch to a callback, which may stop it by raising (cancellation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import cost
from . import plan as planning
from .errors import InvalidArgument
from .mx import mxnet as mx
from .mx import nd
from .padding import pad as pad_input

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("l2", "mse", "l1")


class TrainingStopped(Exception):
    """Base of the ways training ends before its last epoch other than by early stopping."""


class Cancelled(TrainingStopped):
    """The progress callback raises this to stop training (a user cancelled the job)."""


class TimeLimitExceeded(TrainingStopped):
    """Training ran past its wall-time limit."""


@dataclass(frozen=True)
class TrainConfig:
    out_channels: int
    kernel_size: planning.Pair
    in_channels: int | None = None  # None: x's channel count
    stride: planning.Pair = 1
    padding: planning.PaddingSpec = 0
    padding_mode: str = "zeros"
    dilation: planning.Pair = 1
    groups: int = 1
    use_bias: bool = True
    optimizer: str = "sgd"
    learning_rate: float = 0.03
    epochs: int = 100
    batch_size: int | None = None  # None: the whole data set in one batch
    loss: str = "l2"
    seed: int = 0
    shuffle: bool = True
    tolerance: float = 0.0  # early stopping: an improvement of at most this is "no improvement"
    patience: int | None = None  # early stopping: stop after this many epochs without one
    target_loss: float | None = None  # early stopping: stop once the loss is at most this


@dataclass(frozen=True)
class TrainPlan:
    conv: planning.Conv2dPlan
    y_shape: tuple[int, int, int, int]  # y as (N, O, Ho, Wo)
    batch_size: int
    batches_per_epoch: int

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return self.conv.weight_shape

    @property
    def flops_per_epoch(self) -> int:
        """Forward plus backward (about twice the forward) over every sample."""
        return 3 * self.conv.flops

    def seconds(self, epochs: int, dtype: str = "float32") -> float:
        """The cost model's time for ``epochs`` epochs, every one of them run (early stopping
        may end sooner). Gluon's Conv2D runs oneDNN's direct kernel forward and backward (no
        phase split), about three forward passes, plus a fixed cost per optimizer step."""
        forward = cost.direct(planning.cost_shape(self.conv, dtype, "cpu")).seconds
        return epochs * (3 * forward + self.batches_per_epoch * STEP_SECONDS)


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based
    epochs: int
    loss: float
    elapsed: float  # seconds since training started
    # Reads the layer's current weights, or None for a layer too big to show; called only
    # when someone records progress, so an epoch costs nothing extra otherwise.
    snapshot: Callable[[], dict[str, Any] | None] = lambda: None

    @property
    def eta(self) -> float:
        return self.elapsed / self.epoch * (self.epochs - self.epoch) if self.epoch else math.nan


#: A training step's fixed cost beyond its convolutions (autograd, loss, optimizer update), in
#: seconds. Measured in-process, 1 thread: the seed's (6,6)x(1,2) layer, 300 epochs of one
#: batch, 1.9 ms an epoch (this, plus three forward passes); (8,3,32,32)x(1,3,3,3) in batches
#: of 2, 3.9 ms a step (2.6x this: within the model's 3x).
STEP_SECONDS = 1.5e-3

#: Layers with at most this many weights report them with every progress write (the playground
#: draws the kernel as it learns); bigger ones only report them in the result.
SNAPSHOT_MAX_WEIGHTS = 256


def _snapshot(net: Any) -> dict[str, Any] | None:
    if net.weight.shape is None or int(np.prod(net.weight.shape)) > SNAPSHOT_MAX_WEIGHTS:
        return None
    snap = {"weight": net.weight.data().asnumpy().tolist()}
    if net.bias is not None:
        snap["bias"] = net.bias.data().asnumpy().tolist()
    return snap


@dataclass
class TrainResult:
    weight: npt.NDArray[np.float32]  # (O, C/groups, kh, kw)
    bias: npt.NDArray[np.float32] | None  # (O,)
    losses: list[float]
    final_loss: float  # the last epoch's training loss
    data_loss: float  # the loss of the learned layer on all of x and y, after training
    epochs_run: int
    stopped_early: bool
    stop_reason: str
    elapsed: float
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)


def _as4(name: str, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    try:
        return planning.x_as_4d(shape)
    except InvalidArgument:
        raise InvalidArgument(
            name, f"expected (H,W), (C,H,W) or (N,C,H,W), got shape {list(shape)}"
        ) from None


def plan_training(
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    cfg: TrainConfig,
    *,
    initial_weight_shape: tuple[int, ...] | None = None,
    initial_bias_shape: tuple[int, ...] | None = None,
) -> TrainPlan:
    """Check a training request and work out its geometry, without touching MXNet."""
    n, c, _, _ = _as4("x", tuple(x_shape))
    if cfg.in_channels is not None and cfg.in_channels != c:
        raise InvalidArgument(
            "layer.in_channels",
            f"the layer takes {cfg.in_channels} input channels but x has {c} (x shape {list(x_shape)}); "
            "make them match",
        )
    if cfg.groups < 1 or c % cfg.groups or cfg.out_channels % cfg.groups:
        raise InvalidArgument(
            "layer.groups",
            f"groups={cfg.groups} must divide both the input channels ({c}) and out_channels "
            f"({cfg.out_channels})",
        )
    kh, kw = planning.pair("layer.kernel_size", cfg.kernel_size, 1)
    weight_shape = (cfg.out_channels, c // cfg.groups, kh, kw)
    if initial_weight_shape is not None:
        iw = tuple(initial_weight_shape)
        if int(np.prod(iw)) != int(np.prod(weight_shape)) or (len(iw) == 4 and iw != weight_shape):
            raise InvalidArgument(
                "initial_weight",
                f"expected shape {list(weight_shape)} (out, in/groups, kh, kw), got {list(iw)}",
            )
    if initial_bias_shape is not None:
        if not cfg.use_bias:
            raise InvalidArgument("initial_bias", "the layer has no bias (layer.bias is false)")
        if tuple(initial_bias_shape) != (cfg.out_channels,):
            raise InvalidArgument(
                "initial_bias", f"expected shape [{cfg.out_channels}], got {list(initial_bias_shape)}"
            )
    try:
        plan = planning.plan_conv2d(
            (n, c, *tuple(x_shape)[-2:]),
            weight_shape,
            (cfg.out_channels,) if cfg.use_bias else None,
            stride=cfg.stride,
            padding=cfg.padding,
            padding_mode=cfg.padding_mode,
            dilation=cfg.dilation,
            groups=cfg.groups,
        )
    except InvalidArgument as e:
        field_name = e.field if e.field == "x" else f"layer.{e.field}"
        if e.field == "weight":
            field_name = "layer.kernel_size"
        raise InvalidArgument(field_name, e.message) from None
    y4 = _as4("y", tuple(y_shape))
    if len(y_shape) == 3 and len(x_shape) == 2:
        y4 = (1, *tuple(y_shape))  # type: ignore[assignment]
    if y4 != plan.out_shape4:
        raise InvalidArgument(
            "y",
            f"the layer's output shape is {list(plan.out_shape4)} (N, out_channels, H, W) for x of shape "
            f"{list(x_shape)}, but y has shape {list(y_shape)} (as 4-D: {list(y4)}); change y, the "
            "kernel size, stride, padding or out_channels so they match",
        )
    if cfg.optimizer not in OPTIMIZERS:
        raise InvalidArgument("optimizer", f"unknown optimizer {cfg.optimizer!r}; use one of {OPTIMIZERS}")
    if cfg.loss not in LOSSES:
        raise InvalidArgument("loss", f"unknown loss {cfg.loss!r}; use one of {LOSSES}")
    if not (cfg.learning_rate > 0 and math.isfinite(cfg.learning_rate)):
        raise InvalidArgument("learning_rate", f"must be a positive number, got {cfg.learning_rate}")
    if cfg.epochs < 1:
        raise InvalidArgument("epochs", f"must be at least 1, got {cfg.epochs}")
    batch = n if cfg.batch_size is None else cfg.batch_size
    if batch < 1 or batch > n:
        raise InvalidArgument(
            "batch_size", f"must be between 1 and the number of samples ({n}), got {cfg.batch_size}"
        )
    return TrainPlan(conv=plan, y_shape=y4, batch_size=batch, batches_per_epoch=math.ceil(n / batch))


def _loss(kind: str, y_hat: Any, y: Any) -> Any:
    # A plain mean over every element, as the seed's ((y_hat - Y)**2).mean(): with
    # trainer.step(1) sgd then takes exactly the seed's step  w -= lr * grad.
    diff = y_hat - y
    return (nd.abs(diff) if kind == "l1" else nd.square(diff)).mean()


def seed_everything(seed: int) -> None:
    """The same seed gives the same initial weights and batch order, in any process."""
    mx.random.seed(seed)
    np.random.seed(seed % 2**32)


def train(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    cfg: TrainConfig,
    *,
    plan: TrainPlan | None = None,
    initial_weight: npt.ArrayLike | None = None,
    initial_bias: npt.ArrayLike | None = None,
    ctx: mx.Context | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train ``Conv2D`` so that ``layer(x) ≈ y``; returns the learned weight and bias.

    ``on_epoch`` is called after every epoch; raising :class:`Cancelled` (or anything) from
    it stops training. Past ``max_seconds`` of wall time it raises :class:`TimeLimitExceeded`.
    """
    from mxnet import autograd, gluon
    from mxnet.gluon import nn

    x_np, y_np = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
    w0 = None if initial_weight is None else np.asarray(initial_weight, dtype=np.float32)
    b0 = None if initial_bias is None else np.asarray(initial_bias, dtype=np.float32)
    if plan is None:
        plan = plan_training(
            x_np.shape,
            y_np.shape,
            cfg,
            initial_weight_shape=None if w0 is None else w0.shape,
            initial_bias_shape=None if b0 is None else b0.shape,
        )
    ctx = ctx or mx.cpu()
    start = clock()
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    p = plan.conv
    o, cg, kh, kw = p.weight_shape
    # x is data, not a parameter: pad it once, in any mode, then convolve without padding.
    data = nd.array(pad_input(x_np.reshape(p.x_shape), p.pads, p.padding_mode), ctx=ctx)
    label = nd.array(y_np.reshape(plan.y_shape), ctx=ctx)
    n = p.x_shape[0]

    net = nn.Conv2D(
        channels=o,
        kernel_size=(kh, kw),
        strides=p.stride,
        padding=(0, 0),
        dilation=p.dilation,
        groups=p.groups,
        use_bias=p.has_bias,
        in_channels=cg * p.groups,
    )
    net.initialize(ctx=ctx)  # MXNet's defaults, as the seed: uniform(-0.07, 0.07), bias 0
    if w0 is not None:
        net.weight.set_data(nd.array(w0.reshape(p.weight_shape), ctx=ctx))
    if b0 is not None and net.bias is not None:
        net.bias.set_data(nd.array(b0.reshape(o), ctx=ctx))
    trainer = gluon.Trainer(net.collect_params(), cfg.optimizer, {"learning_rate": cfg.learning_rate})

    def check_time() -> None:
        if max_seconds is not None and clock() - start > max_seconds:
            raise TimeLimitExceeded(
                f"training ran past its wall-time limit of {max_seconds:g} s after {len(losses)} of "
                f"{cfg.epochs} epochs; ask for fewer epochs or a smaller sample"
            )

    losses: list[float] = []
    best = math.inf
    since_best = 0
    stopped_early, stop_reason = False, "completed all epochs"
    full_batch = plan.batch_size >= n
    for epoch in range(1, cfg.epochs + 1):
        if full_batch:
            batches: list[tuple[Any, Any, int]] = [(data, label, n)]
        else:
            order = rng.permutation(n) if cfg.shuffle else np.arange(n)
            batches = []
            for i in range(0, n, plan.batch_size):
                idx = nd.array(order[i : i + plan.batch_size], ctx=ctx, dtype="int64")
                batches.append((nd.take(data, idx), nd.take(label, idx), len(idx)))
        total: Any = None
        for xb, yb, size in batches:
            with autograd.record():
                loss = _loss(cfg.loss, net(xb), yb)
            loss.backward()
            trainer.step(1)
            weighted = loss * size
            total = weighted if total is None else total + weighted
            if not full_batch:
                check_time()
        epoch_loss = float(total.asscalar()) / n
        losses.append(epoch_loss)
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"the loss became {epoch_loss} at epoch {epoch}; lower the learning rate "
                f"(now {cfg.learning_rate:g}) or scale x and y"
            )
        if on_epoch is not None:
            on_epoch(EpochReport(epoch, cfg.epochs, epoch_loss, clock() - start, lambda: _snapshot(net)))
        if cfg.target_loss is not None and epoch_loss <= cfg.target_loss:
            stopped_early, stop_reason = True, f"loss {epoch_loss:.3g} reached target {cfg.target_loss:g}"
            break
        if epoch_loss < best - cfg.tolerance:
            best, since_best = epoch_loss, 0
        else:
            since_best += 1
            if cfg.patience is not None and since_best >= cfg.patience:
                stopped_early = True
                stop_reason = f"no improvement of more than {cfg.tolerance:g} for {cfg.patience} epochs"
                break
        if epoch < cfg.epochs:
            check_time()

    data_loss = float(_loss(cfg.loss, net(data), label).asscalar())
    weight = net.weight.data().asnumpy().astype(np.float32)
    bias = net.bias.data().asnumpy().astype(np.float32) if p.has_bias else None
    return TrainResult(
        weight=weight,
        bias=bias,
        losses=losses,
        final_loss=losses[-1],
        data_loss=data_loss,
        epochs_run=len(losses),
        stopped_early=stopped_early,
        stop_reason=stop_reason,
        elapsed=clock() - start,
        seed=cfg.seed,
    )
