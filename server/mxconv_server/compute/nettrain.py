"""Training a network (:mod:`.network`) on (x, y) in mini-batches, with a validation split,
metrics, early stopping and checkpoints from which a new attempt resumes.

Everything random is drawn from the seed, per epoch: the validation split from ``seed``, an
epoch's batch order from ``(seed, epoch)`` and its dropout masks from MXNet's generator seeded
for that epoch. So a run resumed from a checkpoint after epoch ``k`` (weights, batchnorm
statistics and optimizer state, :mod:`.checkpoint`) computes exactly what an uninterrupted
run computes from epoch ``k + 1`` on, and ends with the same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import checkpoint as ckpt
from . import network
from .mx import mxnet as mx
from .mx import nd
from .netjob import CLASSIFICATION, EVAL_BATCH, NetJobPlan
from .train import Cancelled, TimeLimitExceeded  # noqa: F401  (the same ways to stop as a layer job)


@dataclass(frozen=True)
class NetTrainConfig:
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 10
    seed: int = 0
    shuffle: bool = True
    tolerance: float = 0.0
    patience: int | None = None
    target_loss: float | None = None
    checkpoint_every: int | None = None  # epochs
    checkpoint_seconds: float | None = None


@dataclass(frozen=True)
class NetEpoch:
    epoch: int  # 1-based, counted over every attempt
    epochs: int
    loss: float
    metrics: dict[str, float]  # accuracy, val_loss, val_accuracy, as the job has them
    elapsed: float  # seconds of training over every attempt

    @property
    def snapshot(self) -> Callable[[], None]:  # a network shows no live weights
        return lambda: None


@dataclass
class Resume:
    """A checkpoint to resume from: its JSON part and arrays (:func:`.checkpoint.capture`)."""

    meta: Mapping[str, Any]
    arrays: Mapping[str, npt.NDArray[Any]]

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])


@dataclass
class NetTrainResult:
    weights: dict[str, npt.NDArray[np.float32]]  # "<layer>.<param>" -> array
    losses: list[float]  # this attempt's epochs
    final_loss: float
    data_loss: float  # the trained network's loss on all of x and y, predicting
    metrics: dict[str, float]  # the last epoch's
    epochs_run: int  # counted over every attempt
    stopped_early: bool
    stop_reason: str
    elapsed: float
    seed: int
    resumed_from: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def split(n: int, n_val: int, seed: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(train, validation) sample indices: a seeded permutation, its first ``n_val`` held out."""
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_val:], perm[:n_val]


def epoch_seed(seed: int, epoch: int) -> int:
    """MXNet's seed for one epoch's dropout masks (``epoch`` 1-based)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % (2**31))


def _loss_fn(kind: str) -> Callable[[Any, Any], Any]:
    if kind == CLASSIFICATION:
        ce = mx.gluon.loss.SoftmaxCrossEntropyLoss()
        return lambda out, y: ce(out, y)  # per sample
    if kind == "l1":
        return lambda out, y: nd.abs(out - y.reshape(out.shape)).reshape((out.shape[0], -1)).mean(axis=1)
    return lambda out, y: nd.square(out - y.reshape(out.shape)).reshape((out.shape[0], -1)).mean(axis=1)


def evaluate(
    net: Any, x: Any, y: Any, plan: NetJobPlan, loss_fn: Callable[[Any, Any], Any]
) -> tuple[float, float | None]:
    """(mean loss, accuracy or None) over (x, y) in inference mode."""
    n = x.shape[0]
    total, hits = 0.0, 0.0
    for i in range(0, n, EVAL_BATCH):
        xb, yb = x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH]
        out = net(xb)
        total += float(loss_fn(out, yb).sum().asscalar())
        if plan.classes is not None:
            hits += float((out.argmax(axis=1) == yb).sum().asscalar())
    return total / n, (hits / n if plan.classes is not None else None)


def train_network(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    cfg: NetTrainConfig,
    plan: NetJobPlan,
    *,
    ctx: Any = None,
    resume: Resume | None = None,
    on_epoch: Callable[[NetEpoch], None] | None = None,
    on_checkpoint: Callable[[NetEpoch, dict[str, Any], dict[str, npt.NDArray[np.float32]]], None]
    | None = None,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> NetTrainResult:
    """Train ``plan.net`` so that net(x) ≈ y; ``on_epoch`` after every epoch (raising stops
    it), ``on_checkpoint`` when one is due, with its JSON part and arrays."""
    ctx = ctx or mx.cpu()
    start = clock()
    x_np = np.ascontiguousarray(x, dtype=np.float32)
    y_np = np.ascontiguousarray(y, dtype=np.float32)
    train_idx, val_idx = split(plan.n, plan.n_val, cfg.seed)
    xt, yt = nd.array(x_np[train_idx], ctx=ctx), nd.array(y_np[train_idx], ctx=ctx)
    xv, yv = nd.array(x_np[val_idx], ctx=ctx), nd.array(y_np[val_idx], ctx=ctx)

    net = network.build(plan.net)
    network.initialize(net, cfg.seed, ctx)
    net.hybridize()
    trainer = mx.gluon.Trainer(net.collect_params(), cfg.optimizer, {"learning_rate": cfg.learning_rate})
    loss_fn = _loss_fn(plan.loss)
    first, before = 1, 0.0
    best, since_best = math.inf, 0
    if resume is not None:
        ckpt.restore(net, trainer, resume.meta, resume.arrays, ctx)
        first, before = resume.epoch + 1, float(resume.meta.get("elapsed", 0.0))
        best, since_best = float(resume.meta.get("best", math.inf)), int(resume.meta.get("since_best", 0))

    def elapsed() -> float:
        return before + clock() - start

    def check_time(done: int) -> None:
        if max_seconds is not None and elapsed() > max_seconds:
            raise TimeLimitExceeded(
                f"training ran past its wall-time limit of {max_seconds:g} s after {done} of "
                f"{cfg.epochs} epochs; ask for fewer epochs, a smaller network or sample"
            )

    from mxnet import autograd

    n_train = plan.n_train
    losses: list[float] = []
    last_ckpt = clock()
    stopped_early, stop_reason = False, "completed all epochs"
    metrics: dict[str, float] = {}
    for epoch in range(first, cfg.epochs + 1):
        mx.random.seed(epoch_seed(cfg.seed, epoch), ctx="all")
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n_train) if cfg.shuffle else None
        total: Any = None
        hits: Any = None
        for i in range(0, n_train, plan.batch_size):
            if order is None:
                xb, yb = xt[i : i + plan.batch_size], yt[i : i + plan.batch_size]
            else:
                idx = nd.array(order[i : i + plan.batch_size], ctx=ctx, dtype="int64")
                xb, yb = nd.take(xt, idx), nd.take(yt, idx)
            with autograd.record():
                out = net(xb)
                per_sample = loss_fn(out, yb)
                loss = per_sample.mean()
            loss.backward()
            trainer.step(1)
            summed = per_sample.sum()
            total = summed if total is None else total + summed
            if plan.classes is not None:
                right = (out.argmax(axis=1) == yb).sum()
                hits = right if hits is None else hits + right
        epoch_loss = float(total.asscalar()) / n_train
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"the loss became {epoch_loss} at epoch {epoch}; lower the learning rate "
                f"(now {cfg.learning_rate:g}) or scale x and y"
            )
        losses.append(epoch_loss)
        metrics = {}
        if hits is not None:
            metrics["accuracy"] = float(hits.asscalar()) / n_train
        if plan.n_val:
            val_loss, val_acc = evaluate(net, xv, yv, plan, loss_fn)
            metrics["val_loss"] = val_loss
            if val_acc is not None:
                metrics["val_accuracy"] = val_acc
        report = NetEpoch(epoch, cfg.epochs, epoch_loss, metrics, elapsed())
        watched = metrics.get("val_loss", epoch_loss)
        if watched < best - cfg.tolerance:
            best, since_best = watched, 0
        else:
            since_best += 1
        due = (cfg.checkpoint_every is not None and epoch % cfg.checkpoint_every == 0) or (
            cfg.checkpoint_seconds is not None and clock() - last_ckpt >= cfg.checkpoint_seconds
        )
        if on_checkpoint is not None and due and epoch < cfg.epochs:
            meta, arrays = ckpt.capture(net, trainer)
            meta.update(epoch=epoch, elapsed=report.elapsed, best=best, since_best=since_best, seed=cfg.seed)
            on_checkpoint(report, meta, arrays)
            last_ckpt = clock()
        if on_epoch is not None:
            on_epoch(report)
        if cfg.target_loss is not None and watched <= cfg.target_loss:
            stopped_early, stop_reason = True, f"loss {watched:.3g} reached target {cfg.target_loss:g}"
            break
        if cfg.patience is not None and since_best >= cfg.patience:
            stopped_early = True
            stop_reason = f"no improvement of more than {cfg.tolerance:g} for {cfg.patience} epochs"
            break
        if epoch < cfg.epochs:
            check_time(epoch)

    data_loss, _ = evaluate(net, nd.array(x_np, ctx=ctx), nd.array(y_np, ctx=ctx), plan, loss_fn)
    done = (first - 1) + len(losses)
    return NetTrainResult(
        weights=network.weights(net),
        losses=losses,
        final_loss=losses[-1] if losses else math.nan,
        data_loss=data_loss,
        metrics=metrics,
        epochs_run=done,
        stopped_early=stopped_early,
        stop_reason=stop_reason,
        elapsed=elapsed(),
        seed=cfg.seed,
        resumed_from=first - 1,
    )
