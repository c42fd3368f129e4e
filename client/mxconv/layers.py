"""The typed layers of a network, for ``client.jobs.submit(network=[...])`` and
``client.networks.summary(...)``::

    from mxconv import layers as L

    lenet = [
        L.Conv2d(channels=6, kernel_size=3, padding=1), L.ReLU(), L.MaxPool2d(pool_size=2),
        L.Conv2d(channels=16, kernel_size=3, padding=1), L.ReLU(), L.MaxPool2d(pool_size=2),
        L.Flatten(), L.Dense(units=120), L.ReLU(), L.Dense(units=84), L.ReLU(), L.Dense(units=10),
    ]

They are the wire models of :mod:`mxconv.schemas.networks`; a plain dict such as
``{"type": "relu"}`` works wherever a layer does.
"""

from __future__ import annotations

from .schemas.networks import (
    LAYER_TYPES,
    AvgPool1d,
    AvgPool2d,
    BatchNorm,
    Conv1d,
    Conv2d,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool1d,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)

__all__ = [
    "LAYER_TYPES",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm",
    "Conv1d",
    "Conv2d",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "MaxPool1d",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
]
