"""Planning a network training job: the data against the network, the split, the batches and
the cost model's seconds, without MXNet. :mod:`.nettrain` runs what this plans.

``x`` is (N, *one sample's shape); ``y`` is (N, *the network's output shape) for l2 or l1,
or (N,) integer class labels for softmax cross-entropy, whose network ends in one score per
class. Every check names the field to change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import cost
from .errors import InvalidArgument
from .netplan import INPUT_RANK, LayerPlan, NetworkPlan, plan_network

LOSSES = ("l2", "mse", "l1", "softmax_cross_entropy")
CLASSIFICATION = "softmax_cross_entropy"
OPTIMIZERS = ("sgd", "adam")
#: Samples per forward pass when validating (as when predicting).
EVAL_BATCH = 4096

#: A training step's fixed cost (autograd, the loss, the optimizer call), and what each layer
#: adds to it beyond its arithmetic, in seconds. Measured in-process (adam, batches of 32-128):
#: the digits LeNet (12 layers) 1.7 ms a step on 1 thread, 2.4 ms on 2, of which 0.6 ms is
#: arithmetic; an MLP of 4 layers 1.2 ms, 0.2 ms of it arithmetic. A step is predicted as three
#: forward passes' arithmetic (forward, and a backward of about twice that) plus these: the
#: LeNet 2.8 ms, a (1,28,28) CNN of 10 layers 44 ms against 26 and 23 ms measured (its
#: convolutions' rates are /v1's, set for larger shapes), a 2048-unit MLP 91 ms against 87
#: and 53 (benchmarks/bench_networks.py prints the digits jobs' predicted against measured).
STEP_SECONDS = 1.0e-3
LAYER_STEP_SECONDS = 1.0e-4


@dataclass(frozen=True)
class NetJobPlan:
    net: NetworkPlan
    loss: str
    n: int
    n_val: int
    batch_size: int
    classes: int | None  # classification: the number of classes (the network's output width)

    @property
    def n_train(self) -> int:
        return self.n - self.n_val

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    @property
    def flops_per_epoch(self) -> int:
        """Forward plus backward (about twice the forward) over the training samples, and a
        forward pass over the validation samples."""
        return self.net.flops * (3 * self.n_train + self.n_val)

    def seconds(self, epochs: int) -> float:
        """The cost model's time for ``epochs`` epochs, every one of them run."""
        overhead = STEP_SECONDS + LAYER_STEP_SECONDS * len(self.net.layers)
        full, rest = divmod(self.n_train, self.batch_size)
        train = full * (3 * forward_seconds(self.net, self.batch_size, per_call=False) + overhead)
        if rest:
            train += 3 * forward_seconds(self.net, rest, per_call=False) + overhead
        val = 0.0
        if self.n_val:
            chunks, last = divmod(self.n_val, EVAL_BATCH)
            val = chunks * forward_seconds(self.net, EVAL_BATCH)
            val += forward_seconds(self.net, last) if last else 0.0
        return epochs * (train + val)


def _layer_seconds(lp: LayerPlan, n: int) -> float:
    """One layer's forward pass over ``n`` samples, without the per-call cost."""
    if lp.type in ("conv2d", "conv1d"):
        c, o = lp.in_shape[0], lp.out_shape[0]
        weight = lp.param_shapes["weight"]
        groups = c // weight[1]
        spatial_in = lp.in_shape[1:] if len(lp.in_shape) == 3 else (1, lp.in_shape[1])
        spatial_out = lp.out_shape[1:] if len(lp.out_shape) == 3 else (1, lp.out_shape[1])
        pads = lp.pads if len(lp.pads) == 4 else (0, 0, *lp.pads)
        kernel = tuple(weight[2:]) if len(weight) == 4 else (1, weight[2])
        shape = cost.Shape(
            n=n, c=c, o=o, groups=groups, kernel=kernel,  # type: ignore[arg-type]
            stride=lp.stride if len(lp.stride) == 2 else (1, lp.stride[0]),  # type: ignore[arg-type]
            dilation=lp.dilation if len(lp.dilation) == 2 else (1, lp.dilation[0]),  # type: ignore[arg-type]
            padded_hw=(spatial_in[0] + pads[0] + pads[1], spatial_in[1] + pads[2] + pads[3]),
            out_hw=spatial_out,  # type: ignore[arg-type]
        )  # fmt: skip
        return cost.direct(shape).seconds - cost.per_call()
    if lp.type == "dense":
        return cost.dense(n, lp.in_elements, lp.out_shape[0])
    return cost.elementwise(n * max(lp.in_elements, lp.out_elements))


#: The layers that are one operator call each, with its fixed cost, in a forward pass.
_CALLS = frozenset({"conv2d", "conv1d", "dense"})


def forward_seconds(net: NetworkPlan, n: int, *, per_call: bool = True) -> float:
    """One forward pass over ``n`` samples; ``per_call=False`` leaves out each operator call's
    fixed cost (a training step's overhead covers it)."""
    calls = sum(1 for lp in net.layers if lp.type in _CALLS) if per_call else 0
    return calls * cost.per_call() + sum(_layer_seconds(lp, n) for lp in net.layers)


def plan_network_job(
    x_shape: Sequence[int],
    y_shape: Sequence[int],
    network: Sequence[Mapping[str, Any]],
    *,
    loss: str,
    batch_size: int | None = None,
    validation_split: float = 0.0,
    optimizer: str = "sgd",
) -> NetJobPlan:
    """Check a network job's shapes and work out its split and batches."""
    x_shape, y_shape = tuple(int(d) for d in x_shape), tuple(int(d) for d in y_shape)
    if not 2 <= len(x_shape) <= 4:
        raise InvalidArgument(
            "x",
            f"a network trains on x of shape (N, *one sample's shape): (N, C, H, W), (N, C, L) or "
            f"(N, F); got {list(x_shape)}",
        )
    n = x_shape[0]
    first = network[0]["type"] if network else None
    want = INPUT_RANK.get(str(first))
    if want is not None and len(x_shape) != want + 1:
        form = "(N, C, H, W)" if want == 3 else "(N, C, L)"
        raise InvalidArgument(
            "x",
            f"the network's first layer ({first}) takes samples of {want} dimensions, so x must be "
            f"{form}; got {list(x_shape)} (one channel: x[:, None])",
        )
    net = plan_network(network, x_shape[1:])
    if loss not in LOSSES:
        raise InvalidArgument("loss", f"unknown loss {loss!r}; use one of {LOSSES}")
    if optimizer not in OPTIMIZERS:
        raise InvalidArgument("optimizer", f"unknown optimizer {optimizer!r}; use one of {OPTIMIZERS}")
    out = net.output_shape
    classes = None
    if loss == CLASSIFICATION:
        if len(out) != 1 or out[0] < 2:
            raise InvalidArgument(
                "loss",
                f"softmax_cross_entropy needs the network to end in one score per class, an output "
                f"of shape [classes] with at least 2; it ends in {list(out)}: end with a dense layer",
            )
        classes = out[0]
        if y_shape != (n,):
            raise InvalidArgument(
                "y",
                f"for softmax_cross_entropy y holds one class label per sample, shape [{n}]; got "
                f"{list(y_shape)} (one-hot targets: take their argmax)",
            )
    elif y_shape != (n, *out) and not (out == (1,) and y_shape == (n,)):
        raise InvalidArgument(
            "y",
            f"the network's output is {list(out)} a sample, so y must be {[n, *out]}; got {list(y_shape)}",
        )
    n_val = math.floor(n * validation_split)
    if validation_split > 0 and n_val == 0:
        raise InvalidArgument(
            "validation_split",
            f"{validation_split:g} of {n} samples is an empty validation split; ask for at least "
            f"{1 / n:.3g}, or 0 for none",
        )
    if n - n_val < 1:
        raise InvalidArgument("validation_split", f"leaves no sample of {n} to train on; lower it")
    batch = n - n_val if batch_size is None else int(batch_size)
    if not 1 <= batch <= n - n_val:
        raise InvalidArgument(
            "batch_size",
            f"must be between 1 and the {n - n_val} training samples (after the validation split), "
            f"got {batch}",
        )
    return NetJobPlan(net=net, loss=loss, n=n, n_val=n_val, batch_size=batch, classes=classes)


def check_targets(y: npt.NDArray[Any], plan: NetJobPlan) -> None:
    """Class labels must be whole numbers from 0 to classes - 1."""
    if plan.classes is None:
        return
    flat = np.asarray(y).reshape(-1)
    bad = np.flatnonzero(flat != np.round(flat))
    if bad.size:
        raise InvalidArgument(
            "y",
            f"class labels must be integers; y[{int(bad[0])}] is {float(flat[bad[0]])!r}",
        )
    out = np.flatnonzero((flat < 0) | (flat >= plan.classes))
    if out.size:
        raise InvalidArgument(
            "y",
            f"y[{int(out[0])}] is class {int(flat[out[0]])}, but the network scores {plan.classes} classes "
            f"(0 to {plan.classes - 1}); widen its last dense layer to the number of classes",
        )
