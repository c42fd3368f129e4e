"""A job spec as it is stored (JSON plus named arrays) and as compute.train takes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from mxconv.schemas import JobSpec

from ..compute.train import TrainConfig, TrainPlan, plan_training

#: The spec's tensors, stored apart from its JSON as .npy arrays under these names.
ARRAY_FIELDS = ("x", "y", "initial_weight", "initial_bias")


def split(spec: JobSpec, seed: int) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The spec's JSON part (with the seed made explicit and the tensors' shapes) and its arrays."""
    stored = spec.model_dump(mode="json", exclude=set(ARRAY_FIELDS))
    stored["seed"] = seed
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
