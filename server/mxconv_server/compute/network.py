"""Building what :mod:`.netplan` planned as a hybridized Gluon ``HybridSequential``, and
running it.

Each layer of the spec is one child block, named ``l<index>_`` under the network's ``net_``
prefix, so a parameter is always ``net_l<i>_<weight|bias|gamma|beta|running_mean|running_var>``
whatever the process built before; :func:`param_names` gives them as ``<i>.<name>``, the
names the job store keeps them under.

A 1-D layer (conv1d, max/avg pool 1-D) runs as its 2-D self on a height of 1 between an
``expand_dims`` and a ``squeeze``, as /v1/conv1d does: MXNet's ONNX exporter has no 1-D
convolution or pooling, and a conv1d's weight is stored as (O, C/groups, 1, k).

A convolution pads the way its ``padding_mode`` says. Symmetric zero padding is the
operator's own; anything else is spelled out in front of it with ``slice_axis`` and
``concat`` (zeros with ``pad``), runs of the same indices ``numpy.pad`` would take, so the
padded input is numpy's to the bit and the graph exports to ONNX as plain Slice and Concat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .mx import mxnet as mx
from .mx import nd
from .netplan import LayerPlan, NetworkPlan
from .padding import NUMPY_MODES

gluon = mx.gluon
nn = mx.gluon.nn
#: Samples per forward pass when predicting (bounds the memory of a large request).
PREDICT_BATCH = 4096


def runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """``indices`` as [begin, end) runs of consecutive ascending indices."""
    out: list[tuple[int, int]] = []
    begin = prev = int(indices[0])
    for v in indices[1:]:
        if int(v) == prev + 1:
            prev = int(v)
            continue
        out.append((begin, prev + 1))
        begin = prev = int(v)
    out.append((begin, prev + 1))
    return out


class Pad(gluon.HybridBlock):  # type: ignore[misc]
    """Pads (N, C, H, W) by ``pads`` (top, bottom, left, right) in ``mode``, with numpy.pad's
    semantics."""

    def __init__(self, pads: tuple[int, ...], mode: str, spatial: tuple[int, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.pads, self.mode, self.spatial = tuple(pads), mode, tuple(spatial)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        if self.mode == "zeros":
            return F.pad(x, mode="constant", constant_value=0, pad_width=(0, 0, 0, 0, *self.pads))
        first_axis = 2
        for a, n in enumerate(self.spatial):
            before, after = self.pads[2 * a], self.pads[2 * a + 1]
            if not before and not after:
                continue
            idx = np.pad(np.arange(n), (before, after), mode=NUMPY_MODES[self.mode])  # type: ignore[call-overload]
            axis = first_axis + a
            pieces = [F.slice_axis(x, axis=axis, begin=b, end=e) for b, e in runs(idx)]
            x = pieces[0] if len(pieces) == 1 else F.concat(*pieces, dim=axis)
        return x


def _conv(lp: LayerPlan, prefix: str, padding: tuple[int, ...]) -> Any:
    s = lp.spec
    return nn.Conv2D(
        channels=int(s["channels"]),
        kernel_size=tuple(lp.param_shapes["weight"][2:]),
        strides=lp.stride,
        padding=padding,
        dilation=lp.dilation,
        groups=int(s["groups"]),
        use_bias=bool(s["bias"]),
        in_channels=lp.in_shape[0],
        prefix=prefix,
    )


class Padded(gluon.HybridBlock):  # type: ignore[misc]
    """A convolution with its padding in front of it; its parameters keep the layer's names."""

    def __init__(self, lp: LayerPlan, **kw: Any) -> None:
        super().__init__(**kw)
        with self.name_scope():
            self.pad = Pad(lp.pads, lp.spec["padding_mode"], lp.in_shape[1:], prefix="pad_")
            self.conv = _conv(lp, "", (0,) * (len(lp.in_shape) - 1))

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return self.conv(self.pad(x))


class Lift1d(gluon.HybridBlock):  # type: ignore[misc]
    """A 1-D layer as its 2-D self on (N, C, 1, L); its parameters keep the layer's names."""

    def __init__(self, lp: LayerPlan, **kw: Any) -> None:
        super().__init__(**kw)
        with self.name_scope():
            self.inner = _block2d(as_2d(lp), "")

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return F.squeeze(self.inner(F.expand_dims(x, axis=2)), axis=2)


def as_2d(lp: LayerPlan) -> LayerPlan:
    """A 1-D layer's plan as the 2-D layer it runs as, on a height of 1."""
    c, length = lp.in_shape
    spec = dict(lp.spec)
    if lp.type == "conv1d":
        spec.update(type="conv2d", kernel_size=[1, int(spec["kernel_size"])])
    else:
        spec.update(type=lp.type.replace("1d", "2d"))
    return replace(
        lp,
        type=spec["type"],
        spec=spec,
        in_shape=(c, 1, length),
        out_shape=(lp.out_shape[0], 1, lp.out_shape[1]),
        pads=(0, 0, *lp.pads),
        kernel=(1, *lp.kernel),
        stride=(1, *lp.stride),
        dilation=(1, *lp.dilation) if lp.dilation else (),
    )


def _convolution(lp: LayerPlan, prefix: str) -> Any:
    dims = len(lp.in_shape) - 1
    symmetric = all(lp.pads[2 * a] == lp.pads[2 * a + 1] for a in range(dims))
    if lp.spec["padding_mode"] == "zeros" and symmetric:
        return _conv(lp, prefix, tuple(lp.pads[2 * a] for a in range(dims)))
    return Padded(lp, prefix=prefix)


def _pool(lp: LayerPlan, prefix: str) -> Any:
    cls = nn.MaxPool2D if lp.type == "maxpool2d" else nn.AvgPool2D
    return cls(pool_size=lp.kernel, strides=lp.stride, padding=(lp.pads[0], lp.pads[2]), prefix=prefix)


def _block2d(lp: LayerPlan, prefix: str) -> Any:
    return _convolution(lp, prefix) if lp.type == "conv2d" else _pool(lp, prefix)


def _block(lp: LayerPlan) -> Any:
    prefix = f"l{lp.index}_"
    s = lp.spec
    if lp.type in ("conv1d", "maxpool1d", "avgpool1d"):
        return Lift1d(lp, prefix=prefix)
    if lp.type in ("conv2d", "maxpool2d", "avgpool2d"):
        return _block2d(lp, prefix)
    if lp.type in ("relu", "sigmoid", "tanh"):
        return nn.Activation(lp.type, prefix=prefix)
    if lp.type == "batchnorm":
        return nn.BatchNorm(
            axis=1, momentum=float(s["momentum"]), epsilon=float(s["epsilon"]), in_channels=lp.in_shape[0],
            prefix=prefix,
        )  # fmt: skip
    if lp.type == "flatten":
        return nn.Flatten(prefix=prefix)
    if lp.type == "dense":
        return nn.Dense(int(s["units"]), use_bias=bool(s["bias"]), in_units=lp.in_elements, prefix=prefix)
    if lp.type == "dropout":
        return nn.Dropout(float(s["rate"]), prefix=prefix)
    raise ValueError(f"no block for layer type {lp.type!r}")


def build(plan: NetworkPlan) -> Any:
    """The network as a HybridSequential (not yet initialized or hybridized)."""
    net = nn.HybridSequential(prefix="net_")
    with net.name_scope():
        for lp in plan.layers:
            net.add(_block(lp))
    return net


def param_names(net: Any) -> dict[str, Any]:
    """``<layer index>.<name>`` -> the Gluon Parameter, in the network's order."""
    out = {}
    for full, param in net.collect_params().items():
        layer, _, name = full.removeprefix("net_l").partition("_")
        out[f"{layer}.{name}"] = param
    return out


def initialize(net: Any, seed: int, ctx: Any) -> None:
    """Xavier weights, zero biases (batchnorm: gamma 1, beta 0), the same for the same seed."""
    mx.random.seed(seed)
    net.initialize(mx.init.Xavier(), ctx=ctx)


def load(net: Any, arrays: dict[str, npt.NDArray[Any]], ctx: Any, prefix: str = "") -> None:
    """Set every parameter from ``arrays`` (by ``prefix + param name``); a missing or
    misshapen one is a KeyError/ValueError naming it."""
    for name, param in param_names(net).items():
        value = arrays[prefix + name]
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(
                f"{name}: stored shape {list(value.shape)}, the network needs {list(param.shape)}"
            )
        param.set_data(nd.array(value, ctx=ctx, dtype="float32"))


def weights(net: Any, prefix: str = "") -> dict[str, npt.NDArray[np.float32]]:
    return {prefix + name: p.data().asnumpy().astype(np.float32) for name, p in param_names(net).items()}


def ready(plan: NetworkPlan, arrays: dict[str, npt.NDArray[Any]], ctx: Any, prefix: str = "") -> Any:
    """A trained network, hybridized, with its weights from ``arrays``."""
    net = build(plan)
    net.initialize(mx.init.Zero(), ctx=ctx)
    load(net, arrays, ctx, prefix)
    net.hybridize()
    return net


def predict(net: Any, x: npt.NDArray[Any], ctx: Any, batch: int = PREDICT_BATCH) -> npt.NDArray[np.float32]:
    """The network's outputs for ``x`` (N, *sample shape), in inference mode (dropout off,
    batchnorm with its running statistics)."""
    outs = []
    for i in range(0, max(1, len(x)), batch):
        xb = nd.array(x[i : i + batch], ctx=ctx, dtype="float32")
        outs.append(net(xb).asnumpy())
    return np.concatenate(outs).astype(np.float32, copy=False)
