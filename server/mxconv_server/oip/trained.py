"""Trained networks as the protocol's models: a succeeded training job is served at
``/v2/models/<job_id>/infer``, as /v1 serves it at ``/v1/models/<job_id>/predict``, by the same
operation (``ops.networks.predict_operation()``) through the same ``api.compute.compute``.

Its one input is ``x``, ``[-1, *the sample shape it was trained on]``; its one output ``y``,
``[-1, *the network's output shape]``. It takes no parameters. A job that has not succeeded is a
409 that says its state, as on /v1; an id that is no job falls through to the built-in models'
404.
"""

from __future__ import annotations

import re
from typing import Any

from mxconv.schemas import PredictRequest

from ..api import models as trained_models
from ..errors import ApiError
from ..ops import networks
from .models import VERSION, Model, Tensor
from .models import find as find_builtin
from .models import models as builtin

#: A job id, as the job store makes them (uuid4 hex); other names are never looked up.
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: The repository index lists this many of the newest succeeded jobs.
INDEXED = 100
#: The metrics label every trained model's inferences share (one per job would grow forever).
LABEL = "/v2/models/<job_id>/infer"


def trained(job_id: str) -> Model | None:
    """The succeeded job's model; None when there is no such job (409 when it has not succeeded)."""
    try:
        tm = trained_models.trained_model(job_id)
    except ApiError as e:
        if e.status == 404:
            return None
        raise

    def build(data: dict[str, Any]) -> networks.PredictCall:
        return networks.PredictCall(tm, PredictRequest.model_validate(data).x)

    return Model(
        tm.job_id,
        networks.predict_operation(),
        PredictRequest,
        (Tensor("x", (-1, *tm.sample_shape)),),
        (Tensor("y", (-1, *tm.output_shape)),),
        build,
        label=LABEL,
    )


def find(name: str, version: str | None = None) -> Model:
    """A built-in model, or a succeeded job's by its id; else the built-in models' 404."""
    if name not in builtin() and JOB_ID.match(name):
        model = trained(name)
        if model is not None:
            if version is not None and version != VERSION:
                raise ApiError(
                    404, f"model {name!r} has no version {version!r}; its one version is {VERSION!r}"
                )
            return model
    return find_builtin(name, version)


def index() -> list[dict[str, str]]:
    """The newest succeeded jobs, as repository entries (after the built-in models)."""
    jobs, _ = trained_models.job_store().list(status="succeeded", limit=INDEXED)
    return [{"name": job.id, "version": VERSION, "state": "READY"} for job in jobs]
