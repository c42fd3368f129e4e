"""A job spec as it is stored (JSON plus named arrays) and as compute.train (one layer) or
compute.nettrain (a network) takes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from mxconv.schemas import JobSpec
from mxconv.schemas.jobs import NETWORK_FIELDS

from ..compute.netjob import NetJobPlan, plan_network_job
from ..compute.train import TrainConfig, TrainPlan, plan_training

#: The spec's tensors, stored apart from its JSON as .npy arrays under these names.
ARRAY_FIELDS = ("x", "y", "initial_weight", "initial_bias")
#: A network job checkpoints this often (seconds of training) unless its spec says otherwise.
DEFAULT_CHECKPOINT_SECONDS = 60.0


def split(spec: JobSpec, seed: int) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The spec's JSON part (with the seed made explicit and the tensors' shapes) and its
    arrays. A layer job's JSON has exactly the fields it had before networks existed."""
    network = spec.network is not None
    exclude = {*ARRAY_FIELDS, "layer"} if network else {*ARRAY_FIELDS, *NETWORK_FIELDS}
    stored = spec.model_dump(mode="json", exclude=exclude)
    stored["seed"] = seed
    if network and spec.checkpoint_every is None and spec.checkpoint_seconds is None:
        stored["checkpoint_seconds"] = DEFAULT_CHECKPOINT_SECONDS
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name in ARRAY_FIELDS:
        value = getattr(spec, name)
        if value is not None:
            arrays[name] = np.asarray(value, dtype=np.float32)
            stored[f"{name}_shape"] = list(value.shape)
    return stored, arrays


def train_config(stored: dict[str, Any]) -> TrainConfig:
    layer = stored["layer"]
    stop = stored.get("early_stopping") or {}
    return TrainConfig(
        out_channels=layer["out_channels"],
        kernel_size=layer["kernel_size"],
        in_channels=layer.get("in_channels"),
        stride=layer["stride"],
        padding=layer["padding"],
        padding_mode=layer["padding_mode"],
        dilation=layer["dilation"],
        groups=layer["groups"],
        use_bias=layer["bias"],
        optimizer=stored["optimizer"],
        learning_rate=stored["learning_rate"],
        epochs=stored["epochs"],
        batch_size=stored.get("batch_size"),
        loss=stored["loss"],
        seed=stored["seed"],
        shuffle=stored.get("shuffle", True),
        tolerance=stop.get("tolerance", 0.0),
        patience=stop.get("patience") if stop else None,
        target_loss=stop.get("target_loss"),
    )


def plan(stored: dict[str, Any], cfg: TrainConfig | None = None) -> TrainPlan:
    """Check the stored spec's shapes (from the shapes recorded in it)."""

    def shape(name: str) -> tuple[int, ...] | None:
        value = stored.get(f"{name}_shape")
        return None if value is None else tuple(value)

    x_shape, y_shape = shape("x"), shape("y")
    assert x_shape is not None and y_shape is not None
    return plan_training(
        x_shape,
        y_shape,
        cfg or train_config(stored),
        initial_weight_shape=shape("initial_weight"),
        initial_bias_shape=shape("initial_bias"),
    )


# -- network jobs --------------------------------------------------------------------------


def is_network(stored: dict[str, Any]) -> bool:
    return stored.get("network") is not None


def net_plan(stored: dict[str, Any]) -> NetJobPlan:
    """Check a stored network spec against the shapes recorded in it."""
    return plan_network_job(
        stored["x_shape"],
        stored["y_shape"],
        stored["network"],
        loss=stored["loss"],
        batch_size=stored.get("batch_size"),
        validation_split=stored.get("validation_split", 0.0),
        optimizer=stored["optimizer"],
    )


def net_config(stored: dict[str, Any]) -> Any:
    from ..compute.nettrain import NetTrainConfig

    stop = stored.get("early_stopping") or {}
    return NetTrainConfig(
        optimizer=stored["optimizer"],
        learning_rate=stored["learning_rate"],
        epochs=stored["epochs"],
        seed=stored["seed"],
        shuffle=stored.get("shuffle", True),
        tolerance=stop.get("tolerance", 0.0),
        patience=stop.get("patience") if stop else None,
        target_loss=stop.get("target_loss"),
        checkpoint_every=stored.get("checkpoint_every"),
        checkpoint_seconds=stored.get("checkpoint_seconds"),
    )


def model_network(stored: dict[str, Any]) -> tuple[list[dict[str, Any]], tuple[int, ...], dict[str, str]]:
    """What a job trained, as a network: its layers, one sample's shape, and each parameter's
    blob in the store ("<layer>.<param>" -> blob name). A layer job is the network of its one
    conv2d layer, over the (C, H, W) of x."""
    from ..compute import netplan
    from ..compute.plan import x_as_4d
    from .store import MODEL_PREFIX

    if is_network(stored):
        network, sample = list(stored["network"]), tuple(stored["x_shape"][1:])
        plan = netplan.plan_network(network, sample)
        names = {
            f"{lp.index}.{n}": MODEL_PREFIX + f"{lp.index}.{n}" for lp in plan.layers for n in lp.param_shapes
        }
        return network, sample, names
    layer = stored["layer"]
    conv = {
        "type": "conv2d",
        "channels": layer["out_channels"],
        "kernel_size": layer["kernel_size"],
        "bias": layer["bias"],
        "flip": False,
        **{k: layer[k] for k in ("stride", "padding", "padding_mode", "dilation", "groups")},
    }
    sample = tuple(x_as_4d(tuple(stored["x_shape"]))[1:])
    names = {"0.weight": "weight", **({"0.bias": "bias"} if layer["bias"] else {})}
    return [conv], sample, names
