"""What a succeeded job trained, out of the service and back in use: ``GET
/v1/jobs/<id>/model?format=mxnet|onnx`` exports it, ``POST /v1/models/<job_id>/predict`` runs
it on new inputs through the generic compute handler (limits, budget, deadline, metrics and
the binary transport, as for every operation).

:func:`trained_model` is the seam another protocol serves trained models through: it gives
the :class:`~mxconv_server.ops.networks.TrainedModel` of a job id (or the 404/409 to answer),
and ``ops.networks.predict_operation()`` the operation that runs it; ``oip/trained.py`` serves
trained models at ``/v2/models/<job_id>/infer`` through them.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from mxconv.schemas import ErrorResponse, JobPath, ModelQuery, PredictPath, PredictRequest, TensorResult

from ..compute import netplan
from ..errors import ApiError
from ..jobs import JobStore
from ..jobs import spec as job_spec
from ..ops import networks
from ..transport import io
from . import common, compute

bp = APIBlueprint("models", __name__, url_prefix="/v1")

ZIP = "application/zip"
ONNX = "application/octet-stream"
MEDIA = {"mxnet": (ZIP, "model.zip"), "onnx": (ONNX, "model.onnx")}
EXPORT_IO = io.ViewIO(produces=(ZIP, ONNX))
FEATURES = ("networks", "network-summary", "model-export-mxnet", "model-export-onnx", "model-predict")


def register(app: Flask) -> None:
    features = app.extensions.setdefault("mxconv.features", [])
    features.extend(f for f in FEATURES if f not in features)
    app.register_api(bp)


def job_store() -> JobStore:
    return current_app.extensions["mxconv.jobs"]  # type: ignore[no-any-return]


def trained_model(job_id: str) -> networks.TrainedModel:
    """The job's trained model: 404 for no such job, 409 for one that has not succeeded."""
    store = job_store()
    job = store.get(job_id)
    if job is None:
        raise ApiError(404, f"no job with id {job_id!r}; it may have been deleted")
    if job.status != "succeeded":
        kept = ""
        if job.checkpoint:
            kept = f" (its last checkpoint, after epoch {job.checkpoint_epoch}, is kept)"
        raise ApiError(
            409,
            f"job {job_id} is {job.status}{kept}; a model is there once the job has succeeded"
            + ("; wait for it (GET /v1/jobs/<id>)" if not job.finished else ""),
        )
    layers, sample, names = job_spec.model_network(job.spec)
    plan = netplan.plan_network(layers, sample)
    stored = store.arrays(job_id, names.values())
    weights = {name: stored[blob] for name, blob in names.items()}
    classes = plan.output_shape[0] if job.spec.get("loss") == "softmax_cross_entropy" else None
    return networks.TrainedModel(job_id, plan, weights, classes)


@bp.get(
    "/jobs/<job_id>/model",
    tags=[Tag(name="training jobs")],
    responses={
        200: {
            "description": "mxnet: a .zip of model-symbol.json, model-0000.params, spec.json; onnx: model",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in (ZIP, ONNX)},
        },
        401: ErrorResponse,
        404: ErrorResponse,
        406: ErrorResponse,
        409: ErrorResponse,
    },
)
@io.describe(EXPORT_IO)
def export_model(path: JobPath, query: ModelQuery) -> Any:
    """A succeeded job's trained network (or layer), for MXNet (symbol JSON + params) or as
    ONNX. 409 while the job is queued or running, or when it did not succeed."""
    model = trained_model(path.job_id)
    job = job_store().get(path.job_id)
    spec = {"job_id": path.job_id, **{k: v for k, v in (job.spec if job else {}).items() if k != "name"}}
    data, ms = common.timed(lambda: networks.export(model, query.format, spec))
    media, filename = MEDIA[query.format]
    resp = Response(data, mimetype=media)
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    resp.headers["X-Elapsed-Ms"] = f"{ms:.3f}"
    resp.headers["X-Model-Input-Shape"] = ",".join(["N", *map(str, model.sample_shape)])
    return resp


@bp.post(
    "/models/<job_id>/predict",
    tags=[Tag(name="models")],
    responses={200: TensorResult, 404: ErrorResponse, 409: ErrorResponse, **common.COMPUTE_ERRORS},
)
@io.describe(networks.PREDICT.io)
def predict(path: PredictPath, body: PredictRequest) -> Any:
    """Run a succeeded job's trained network (or layer) on new inputs x: [N, *the sample shape
    it was trained on]. 422 with the expected shape for any other."""
    call = networks.PredictCall(trained_model(path.job_id), body.x, body.output_encoding)
    return compute.handle(networks.predict_operation(), call)
