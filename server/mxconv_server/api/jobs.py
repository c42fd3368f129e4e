"""Training jobs: submit, watch, list, cancel, delete, and the loss curve as a PNG.

Requests only touch the job store; the training itself runs in job worker processes
(``mxconv_server.jobs.worker``), never inside a request. A job's tensors come as JSON or as
``.npy`` parts of a multipart body (or one ``.npz`` part holding x and y).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from mxconv.schemas import ErrorResponse, Job, JobList, JobListQuery, JobPath, JobQuery, JobSpec

from ..compute import netjob
from ..compute.errors import OverBudget
from ..errors import ApiError
from ..jobs import JobConflict, JobNotFound, JobRecord, JobStore, QueueFull, open_store
from ..jobs import spec as job_spec
from ..transport import io
from . import common, job_wire, meta

bp = APIBlueprint("jobs", __name__, url_prefix="/v1", abp_tags=[Tag(name="training jobs")])

_ERRORS: dict[int, Any] = {401: ErrorResponse, 404: ErrorResponse}
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Seconds a client is told to wait when the queue is full.
RETRY_AFTER_SECONDS = 5


def register(app: Flask) -> None:
    """Open the job store, add its readiness check and the feature flag, mount the routes."""
    settings = app.config["MXCONV"]
    store = open_store(settings.jobs_store_url)
    app.extensions["mxconv.jobs"] = store
    meta.ready_checks(app)["jobs"] = store.ping
    features = app.extensions.setdefault("mxconv.features", list(meta.FEATURES))
    if "jobs" not in features:
        features.append("jobs")
    app.register_api(bp)
    from . import models

    models.register(app)


def store() -> JobStore:
    return current_app.extensions["mxconv.jobs"]  # type: ignore[no-any-return]


def to_wire(job: JobRecord, **kw: Any) -> dict[str, Any]:
    return job_wire.to_wire(store(), job, **kw)


def _get_or_404(job_id: str) -> JobRecord:
    job = store().get(job_id)
    if job is None:
        raise ApiError(404, f"no job with id {job_id!r}; it may have been deleted")
    return job


def _check_limits(body: JobSpec) -> None:
    s = common.settings()
    if body.epochs > s.max_job_epochs:
        raise OverBudget(
            f"epochs: {body.epochs} is over the limit of {s.max_job_epochs} (MXCONV_MAX_JOB_EPOCHS); "
            "ask for fewer, or use early_stopping"
        )
    sample = body.x.size + body.y.size
    if sample > s.max_job_elements:
        raise OverBudget(
            f"x and y hold {sample} elements together, over the limit of {s.max_job_elements} "
            "(MXCONV_MAX_JOB_ELEMENTS); train on a smaller sample"
        )
    for name in ("initial_weight", "initial_bias"):
        value = getattr(body, name)
        if value is not None and value.size > s.max_tensor_elements:
            raise OverBudget(f"{name} has {value.size} elements, over MXCONV_MAX_TENSOR_ELEMENTS")


def _check_network(body: JobSpec, stored: dict[str, Any], arrays: dict[str, Any]) -> None:
    """A network job's shapes, labels, size and predicted time, before it is stored."""
    plan = job_spec.net_plan(stored)  # 422 naming the layer (and both shapes) or the field
    netjob.check_targets(arrays["y"], plan)
    s = common.settings()
    params = plan.net.stored_elements
    if params > s.max_job_parameters:
        raise OverBudget(
            f"the network has {params} parameters (running statistics included), over the limit of "
            f"{s.max_job_parameters} (MXCONV_MAX_JOB_PARAMETERS); use fewer channels or units"
        )
    seconds = plan.seconds(body.epochs)
    if seconds > s.max_job_seconds:
        raise OverBudget(
            f"this job's {body.epochs} epochs are predicted to take {seconds:.3g} s, over the limit of "
            f"{s.max_job_seconds:g} s (MXCONV_MAX_JOB_SECONDS); ask for fewer epochs, a smaller network "
            "or sample, or a larger batch_size"
        )
    stored.update(flops_per_epoch=plan.flops_per_epoch, params=plan.net.params, predicted_seconds=seconds)


#: Submits take JSON, or multipart: a JSON params part with .npy parts (x, y) or one .npz part.
SUBMIT_IO = io.ViewIO(accepts=frozenset({io.MULTIPART}), tensors=True)


@bp.post(
    "/jobs",
    responses={202: Job, 200: Job, 409: ErrorResponse, 429: ErrorResponse, **common.COMPUTE_ERRORS},
)
@io.describe(SUBMIT_IO)
def submit(body: JobSpec) -> Any:
    """Submit a training job (one layer, or a network); answers 202 at once with its record and
    a Location to poll.

    Send an ``Idempotency-Key`` header to make retries safe: the same key returns the job
    it first created (200) instead of creating another.
    """
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    _check_limits(body)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    stored, arrays = job_spec.split(body, seed)
    if body.network is not None:
        _check_network(body, stored, arrays)
        return _create(body, stored, arrays, key)
    plan = job_spec.plan(stored)  # 422 naming the field (both shapes when y does not fit)
    # No per-request FLOP budget (MXCONV_MAX_FLOPS) here: a job's work is bounded by its
    # sample size, epochs and MXCONV_MAX_JOB_SECONDS instead. Its weight must still fit.
    weight_elements = math.prod(plan.weight_shape)
    if weight_elements > common.settings().max_tensor_elements:
        raise OverBudget(
            f"the layer's weight {list(plan.weight_shape)} has {weight_elements} elements, over "
            "MXCONV_MAX_TENSOR_ELEMENTS; use fewer channels or a smaller kernel"
        )
    seconds = plan.seconds(body.epochs)
    limit = common.settings().max_job_seconds
    if seconds > limit:
        raise OverBudget(
            f"this job's {body.epochs} epochs are predicted to take {seconds:.3g} s, over the limit of "
            f"{limit:g} s (MXCONV_MAX_JOB_SECONDS); ask for fewer epochs, a smaller sample or kernel, or a "
            "larger batch_size"
        )
    stored["flops_per_epoch"] = plan.flops_per_epoch
    return _create(body, stored, arrays, key)


def _create(body: JobSpec, stored: dict[str, Any], arrays: dict[str, Any], key: str | None) -> Any:
    digest = hashlib.sha256(request.get_data()).hexdigest()
    try:
        job, created = store().create(
            stored,
            arrays,
            epochs=body.epochs,
            max_queued=common.settings().max_queued_jobs,
            idempotency_key=key,
            digest=digest,
        )
    except QueueFull as e:
        raise ApiError(
            429,
            f"the job queue is full ({e.queued} jobs waiting, MXCONV_MAX_QUEUED_JOBS={e.limit}); "
            f"retry in a few seconds or cancel queued jobs",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    except JobConflict as e:
        raise ApiError(409, str(e)) from None
    resp = jsonify(to_wire(job))
    resp.status_code = 202 if created else 200
    resp.headers["Location"] = f"/v1/jobs/{job.id}"
    return resp


@bp.get("/jobs", responses={200: JobList, 401: ErrorResponse, 422: ErrorResponse})
def list_jobs(query: JobListQuery) -> Any:
    """Jobs, newest first, a page at a time; filter by status. Without loss histories and
    learned weights: GET /v1/jobs/<id> has those."""
    jobs, total = store().list(status=query.status, limit=query.limit, offset=query.offset)
    next_offset = query.offset + len(jobs)
    return {
        "jobs": [to_wire(j, history=False, result=False) for j in jobs],
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
        "next_offset": next_offset if next_offset < total else None,
    }


@bp.get("/jobs/<job_id>", responses={200: Job, **_ERRORS})
def get_job(path: JobPath, query: JobQuery) -> Any:
    """Status, progress (epoch, loss, elapsed, ETA), loss history, timestamps and the result."""
    return to_wire(_get_or_404(path.job_id), history=query.history, encoding=query.encoding)


@bp.post("/jobs/<job_id>/cancel", responses={200: Job, 409: ErrorResponse, **_ERRORS})
def cancel_job(path: JobPath) -> Any:
    """Cancel: a queued job at once, a running one at the end of its current epoch. 409 if finished."""
    try:
        job = store().cancel(path.job_id)
    except JobNotFound as e:
        raise ApiError(404, str(e)) from None
    except JobConflict as e:
        raise ApiError(409, str(e)) from None
    return to_wire(job, history=False)


@bp.delete("/jobs/<job_id>", responses={204: None, 409: ErrorResponse, **_ERRORS})
def delete_job(path: JobPath) -> Any:
    """Delete a finished job and its data. 409 while it is queued or running."""
    try:
        store().delete(path.job_id)
    except JobNotFound as e:
        raise ApiError(404, str(e)) from None
    except JobConflict as e:
        raise ApiError(409, str(e)) from None
    return Response(status=204)


@bp.get("/jobs/<job_id>/loss.png", responses={**_ERRORS})
def loss_png(path: JobPath) -> Any:
    """The loss curve so far, as a PNG; a network's validation loss beside it, and its
    training and validation accuracy below."""
    job = _get_or_404(path.job_id)
    s = store()
    history = s.history(job.id) if job_wire.is_network(job) else {}
    png = job_wire.plot(
        s.losses(job.id), history, f"job {job.id[:8]} · {job.status}", job.spec.get("loss", "l2")
    )
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})
