"""Networks from the client: ``client.networks.summary(...)``, a network's layers measured.

>>> from mxconv import layers as L
>>> s = client.networks.summary([L.Conv2d(channels=6, kernel_size=3), L.ReLU()], [1, 8, 8])
>>> s.layers[0].receptive_field.size, s.params
([3, 3], 60)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from . import schemas
from ._transport import Transport

LayerLike = BaseModel | Mapping[str, Any]


def layer_json(layer: LayerLike) -> dict[str, Any]:
    """A typed layer (:mod:`mxconv.layers`) or a plain dict, as the JSON a network spec holds."""
    if isinstance(layer, BaseModel):
        return layer.model_dump(mode="json")
    if isinstance(layer, Mapping):
        return dict(layer)
    raise TypeError(f"a layer is an mxconv.layers class or a dict with a 'type', not {type(layer).__name__}")


def network_json(network: Sequence[LayerLike]) -> list[dict[str, Any]]:
    return [layer_json(layer) for layer in network]


class Networks:
    """The /v1/networks resource."""

    def __init__(self, client: Transport) -> None:
        self._client = client

    def summary(self, network: Sequence[LayerLike], input_shape: Sequence[int]) -> schemas.NetworkSummary:
        """Per layer: the output shape, parameters, FLOPs and receptive field (against the
        original input), and the parameters of a dense layer doing the same mapping.
        ``input_shape`` is one sample's: [C, H, W], [C, L] or [F]."""
        body = {"network": network_json(network), "input_shape": [int(d) for d in input_shape]}
        return self._client._post("/v1/networks/summary", body, schemas.NetworkSummary)
