"""Planning a network: each layer checked against its input, its output shape, parameters,
FLOPs and receptive field, without MXNet (importable where MXNet is not installed).

A network is a list of layer specs (the dicts of ``mxconv.schemas.networks``); shapes are one
sample's, without the batch axis. A layer that does not fit its input is an
:class:`InvalidArgument` on ``network.<index>`` that names the layer, its input shape and what
does not fit. :mod:`.network` builds what this plans, on MXNet.

The receptive field of a unit is measured against the original input (the seed's 感受野是相对
与原始输入来说的), per spatial axis, by the usual recurrence over the layers: a window of
``k`` (dilated: ``d (k - 1) + 1``) with stride ``s`` and padding ``p`` before it takes
``size += (k - 1) jump``, ``start += ((k - 1) / 2 - p) jump``, ``jump *= s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import plan as planning
from .errors import InvalidArgument
from .plan1d import plan_conv1d

CONV = frozenset({"conv2d", "conv1d"})
POOL = frozenset({"maxpool2d", "avgpool2d", "maxpool1d", "avgpool1d"})
ACTIVATIONS = frozenset({"relu", "sigmoid", "tanh"})
#: The rank of one sample each layer takes; None: any.
INPUT_RANK = {"conv2d": 3, "maxpool2d": 3, "avgpool2d": 3, "conv1d": 2, "maxpool1d": 2, "avgpool1d": 2}
_FORMS = {3: "[C, H, W]", 2: "[C, L]"}


@dataclass(frozen=True)
class Field:
    """A receptive field along each spatial axis (see the module's docstring). ``jump`` None:
    every unit sees the whole input (after a flatten or dense layer)."""

    size: tuple[int, ...]
    jump: tuple[int, ...] | None
    start: tuple[float, ...] | None

    def window(self, kernel: Sequence[int], stride: Sequence[int], before: Sequence[int]) -> Field:
        if self.jump is None or self.start is None:
            return self
        return Field(
            size=tuple(r + (k - 1) * j for r, k, j in zip(self.size, kernel, self.jump, strict=True)),
            jump=tuple(j * s for j, s in zip(self.jump, stride, strict=True)),
            start=tuple(
                st + ((k - 1) / 2 - p) * j
                for st, k, p, j in zip(self.start, kernel, before, self.jump, strict=True)
            ),
        )


@dataclass(frozen=True)
class LayerPlan:
    index: int
    type: str
    spec: Mapping[str, Any]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    #: Learned parameters by name (Gluon's: weight, bias, gamma, beta), then the running
    #: statistics of a batchnorm (not learned, not counted in ``params``).
    param_shapes: dict[str, tuple[int, ...]]
    flops: int
    field: Field
    #: A convolution's padding, before and after each spatial axis: (top, bottom, left,
    #: right), or (left, right) in 1-D; a pooling layer's symmetric padding per axis.
    pads: tuple[int, ...] = ()
    kernel: tuple[int, ...] = ()  # window size per spatial axis (dilated for a convolution)
    stride: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()

    @property
    def params(self) -> int:
        return sum(math.prod(s) for n, s in self.param_shapes.items() if not n.startswith("running_"))

    @property
    def in_elements(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_elements(self) -> int:
        return math.prod(self.out_shape)

    @property
    def dense_equivalent_params(self) -> int:
        """A dense layer from this layer's input to its output, with a bias."""
        return self.in_elements * self.out_elements + self.out_elements


@dataclass(frozen=True)
class NetworkPlan:
    input_shape: tuple[int, ...]
    layers: tuple[LayerPlan, ...] = field(default_factory=tuple)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].out_shape

    @property
    def params(self) -> int:
        return sum(lp.params for lp in self.layers)

    @property
    def flops(self) -> int:
        """One sample's forward pass."""
        return sum(lp.flops for lp in self.layers)

    @property
    def dense_equivalent_params(self) -> int:
        n_in, n_out = math.prod(self.input_shape), math.prod(self.output_shape)
        return n_in * n_out + n_out

    @property
    def stored_elements(self) -> int:
        """Every parameter array's elements, running statistics included."""
        return sum(math.prod(s) for lp in self.layers for s in lp.param_shapes.values())


def _where(i: int, kind: str, shape: tuple[int, ...]) -> str:
    return f"layer {i} ({kind}) with input shape {list(shape)}"


def _rank(i: int, kind: str, shape: tuple[int, ...]) -> None:
    want = INPUT_RANK.get(kind)
    if want is not None and len(shape) != want:
        hint = (
            "a 2-D layer needs an image input or another 2-D layer before it"
            if want == 3
            else "a 1-D layer needs a signal input [C, L] or another 1-D layer before it"
        )
        raise InvalidArgument(
            f"network.{i}",
            f"{_where(i, kind, shape)}: it takes one sample of shape {_FORMS[want]}; {hint}",
        )


def _conv(i: int, spec: Mapping[str, Any], shape: tuple[int, ...], fld: Field) -> LayerPlan:
    kind = spec["type"]
    c, o, groups = shape[0], int(spec["channels"]), int(spec["groups"])
    geometry = {k: spec[k] for k in ("stride", "padding", "padding_mode", "dilation")}
    try:
        if kind == "conv2d":
            kh, kw = planning.pair("kernel_size", spec["kernel_size"], 1)
            p = planning.plan_conv2d(
                (1, *shape), (o, max(1, c // groups), kh, kw), (o,) if spec["bias"] else None,
                groups=groups, **geometry,
            )  # fmt: skip
            out, pads, weight = tuple(p.out_shape4[1:]), p.pads, p.weight_shape
            before, stride, dilation = (p.pads[0], p.pads[2]), p.stride, p.dilation
            kernel = tuple(d * (k - 1) + 1 for d, k in zip(p.dilation, (kh, kw), strict=True))
            flops = p.flops
        else:
            k = int(spec["kernel_size"])
            p1 = plan_conv1d(
                (1, *shape), (o, max(1, c // groups), k), (o,) if spec["bias"] else None,
                groups=groups, **geometry,
            )  # fmt: skip
            # Stored as conv2d's weight with height 1 (a 1-D layer runs as 2-D on height 1).
            out, pads, weight = tuple(p1.out_shape[1:]), p1.pads, (o, c // groups, 1, k)
            before, stride, dilation = (p1.pads[0],), (p1.plan2d.stride[1],), (p1.plan2d.dilation[1],)
            kernel = (dilation[0] * (k - 1) + 1,)
            flops = p1.flops
    except InvalidArgument as e:
        name = e.field
        if e.field == "weight":
            name = "groups" if "groups" in e.message else "kernel_size"
        raise InvalidArgument(f"network.{i}.{name}", f"{_where(i, kind, shape)}: {e.message}") from None
    shapes: dict[str, tuple[int, ...]] = {"weight": tuple(weight)}
    if spec["bias"]:
        shapes["bias"] = (o,)
    return LayerPlan(
        i, kind, spec, shape, out, shapes, flops, fld.window(kernel, stride, before),
        pads=tuple(pads), kernel=kernel, stride=tuple(stride), dilation=tuple(dilation),
    )  # fmt: skip


def _pool(i: int, spec: Mapping[str, Any], shape: tuple[int, ...], fld: Field) -> LayerPlan:
    kind = spec["type"]
    dims = len(shape) - 1
    if dims == 2:
        kernel = planning.pair(f"network.{i}.pool_size", spec["pool_size"], 1)
        stride = planning.pair(f"network.{i}.stride", spec["stride"] or kernel, 1)
        pad = planning.pair(f"network.{i}.padding", spec["padding"], 0)
    else:
        kernel = (int(spec["pool_size"]),)
        stride = (int(spec["stride"] or kernel[0]),)
        pad = (int(spec["padding"]),)
    if any(2 * p > k for p, k in zip(pad, kernel, strict=True)):
        raise InvalidArgument(
            f"network.{i}.padding",
            f"{_where(i, kind, shape)}: padding {list(pad)} is more than half the pool size "
            f"{list(kernel)}; a window would see padding only",
        )
    spatial = shape[1:]
    if any(k > n + 2 * p for k, n, p in zip(kernel, spatial, pad, strict=True)):
        raise InvalidArgument(
            f"network.{i}.pool_size",
            f"{_where(i, kind, shape)}: the pool {list(kernel)} is larger than the padded input "
            f"{[n + 2 * p for n, p in zip(spatial, pad, strict=True)]}; use a smaller pool or drop it",
        )
    out_spatial = tuple(
        (n + 2 * p - k) // s + 1 for n, p, k, s in zip(spatial, pad, kernel, stride, strict=True)
    )
    out = (shape[0], *out_spatial)
    flops = math.prod(out) * math.prod(kernel)
    pads = tuple(x for p in pad for x in (p, p))
    return LayerPlan(
        i, kind, spec, shape, out, {}, flops, fld.window(kernel, stride, pad),
        pads=pads, kernel=kernel, stride=stride,
    )  # fmt: skip


def plan_layer(
    i: int, spec: Mapping[str, Any], shape: tuple[int, ...], fld: Field, whole: Field
) -> LayerPlan:
    """One layer on an input of ``shape`` whose units see ``fld``; ``whole`` is the field of a
    unit that sees all of the original input."""
    kind = spec["type"]
    _rank(i, kind, shape)
    if kind in CONV:
        return _conv(i, spec, shape, fld)
    if kind in POOL:
        return _pool(i, spec, shape, fld)
    n = math.prod(shape)
    if kind in ACTIVATIONS:
        return LayerPlan(i, kind, spec, shape, shape, {}, n, fld)
    if kind == "dropout":
        return LayerPlan(i, kind, spec, shape, shape, {}, 0, fld)
    if kind == "batchnorm":
        c = (shape[0],)
        shapes = {"gamma": c, "beta": c, "running_mean": c, "running_var": c}
        return LayerPlan(i, kind, spec, shape, shape, shapes, 2 * n, fld)
    if kind == "flatten":
        return LayerPlan(i, kind, spec, shape, (n,), {}, 0, whole)
    if kind == "dense":
        units = int(spec["units"])
        shapes = {"weight": (units, n)}
        if spec["bias"]:
            shapes["bias"] = (units,)
        return LayerPlan(i, kind, spec, shape, (units,), shapes, 2 * n * units, whole)
    raise InvalidArgument(f"network.{i}.type", f"unknown layer type {kind!r}")


def plan_network(network: Sequence[Mapping[str, Any]], input_shape: Sequence[int]) -> NetworkPlan:
    """Check every layer against what the one before it gives, from one sample of
    ``input_shape`` ([C, H, W], [C, L] or [F])."""
    shape = tuple(int(d) for d in input_shape)
    if not network:
        raise InvalidArgument("network", "a network needs at least one layer")
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise InvalidArgument(
            "input_shape", f"one sample is [C, H, W], [C, L] or [F] (positive sizes), got {list(shape)}"
        )
    spatial = shape[1:] if len(shape) > 1 else shape
    fld = Field(tuple(1 for _ in spatial), tuple(1 for _ in spatial), tuple(0.0 for _ in spatial))
    whole = Field(tuple(spatial), None, None)
    layers = []
    for i, spec in enumerate(network):
        lp = plan_layer(i, spec, shape, fld, whole)
        layers.append(lp)
        shape, fld = lp.out_shape, lp.field
    return NetworkPlan(tuple(int(d) for d in input_shape), tuple(layers))


def summary(plan: NetworkPlan) -> dict[str, Any]:
    """The plan as ``mxconv.schemas.NetworkSummary``'s fields."""

    def rf(f: Field) -> dict[str, Any]:
        return {
            "size": list(f.size),
            "jump": None if f.jump is None else list(f.jump),
            "start": None if f.start is None else list(f.start),
        }

    return {
        "input_shape": list(plan.input_shape),
        "output_shape": list(plan.output_shape),
        "params": plan.params,
        "network_flops": plan.flops,
        "dense_equivalent_params": plan.dense_equivalent_params,
        "layers": [
            {
                "index": lp.index,
                "type": lp.type,
                "output_shape": list(lp.out_shape),
                "params": lp.params,
                "flops": lp.flops,
                "receptive_field": rf(lp.field),
                "dense_equivalent_params": lp.dense_equivalent_params,
            }
            for lp in plan.layers
        ],
    }
