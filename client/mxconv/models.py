"""Trained models from the client: ``client.models.predict(job_id, x)`` runs a succeeded
job's network (or layer) on new inputs; ``client.models.export(job_id, "onnx")`` gets it.

>>> scores = client.models.predict(job.id, x_test)       # (N, classes) for a classifier
>>> open("digits.onnx", "wb").write(client.models.export(job.id, "onnx"))
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy.typing as npt

from . import schemas
from ._transport import ArrayLike, Transport

ModelFormat = Literal["mxnet", "onnx"]
_ACCEPT = {"mxnet": "application/zip", "onnx": "application/octet-stream"}


class Models:
    """Trained models: /v1/models/<job_id>/predict and /v1/jobs/<job_id>/model."""

    def __init__(self, client: Transport) -> None:
        self._client = client

    @overload
    def predict(self, job_id: str, x: ArrayLike, *, detailed: Literal[False] = ...) -> npt.NDArray[Any]: ...

    @overload
    def predict(self, job_id: str, x: ArrayLike, *, detailed: Literal[True]) -> schemas.TensorResult: ...

    def predict(
        self, job_id: str, x: ArrayLike, *, detailed: bool = False
    ) -> npt.NDArray[Any] | schemas.TensorResult:
        """The trained network's outputs for ``x``, of shape [N, *the sample shape it was
        trained on] (a classifier's: one score per class; take ``argmax(axis=1)``). Raises
        ValidationError giving the expected shape for any other, ConflictError while the job
        has not succeeded. ``detailed=True``: the TensorResult, with FLOPs and compute time."""
        result = self._client._compute(f"/v1/models/{job_id}/predict", {"x": x}, {}, schemas.TensorResult)
        return result if detailed else result.y

    def export(self, job_id: str, format: ModelFormat = "mxnet") -> bytes:  # noqa: A002 - the API's name
        """The trained model: ``"mxnet"``, a .zip of model-symbol.json, model-0000.params and
        spec.json (``mxnet.gluon.SymbolBlock.imports`` loads the first two); ``"onnx"``, the
        ONNX file, its input ``data`` of shape [N, *sample]."""
        resp = self._client.request(
            "GET", f"/v1/jobs/{job_id}/model", params={"format": format}, headers={"Accept": _ACCEPT[format]}
        )
        return resp.content
