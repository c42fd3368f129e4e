"""The /v2 endpoints: health, server and model metadata, the repository index, inference."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app, g, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from flask_openapi3.models import Schema
from pydantic import BaseModel, Field

from .. import __version__, metrics
from ..api import common, compute, meta
from ..errors import ApiError
from ..transport import codec, io
from . import tensors
from .models import PLATFORM, VERSION, Model, models
from .schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RepositoryIndexRequest,
    RepositoryModel,
    ServerMetadata,
)
from .trained import find
from .trained import index as trained_index

#: Server metadata's extensions: Triton's names for the ones served here.
EXTENSIONS = ["binary_tensor_data", "parameters"]
INFER_IO = io.ViewIO(
    accepts=frozenset({io.OCTET}), produces=(io.JSON, io.OCTET), raw=True, align_header=tensors.HEADER_LENGTH
)
INDEX_IO = io.ViewIO(raw=True)

bp = APIBlueprint("oip", __name__, url_prefix="/v2", abp_tags=[Tag(name="inference protocol")])


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _components(*schemas: type[BaseModel]) -> dict[str, Schema]:
    """Models the spec refers to without a view declaring them (raw bodies, a list answer)."""
    out: dict[str, Schema] = {}
    for model in schemas:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            out[name] = Schema(**sub)
        out[model.__name__] = Schema(**schema)
    return out


bp.components_schemas.update(_components(InferenceRequest, RepositoryIndexRequest, RepositoryModel))


class ModelPath(BaseModel):
    model_name: str = Field(
        description="A model: POST /v2/repository/index lists them (a succeeded training job, by its id).",
        json_schema_extra={"enum": list(models())},
    )


class VersionPath(ModelPath):
    model_version: str = Field(description=f"The model's version: every model has one, {VERSION}.")


_EMPTY_OK = {"description": "True: the body is empty, as the protocol has it."}
_NOT_READY = {
    "description": "False: not ready, and why.",
    "content": {"application/json": {"schema": _ref("InferenceErrorResponse")}},
}


def _ready() -> Response:
    """The models compute when MXNet answers (the job store plays no part in /v2)."""
    try:
        meta.ready_checks(current_app)["mxnet"]()
    except Exception as e:  # any failure means not ready; say which and why
        raise ApiError(400, f"not ready: MXNet failed ({type(e).__name__}: {e})") from None
    return Response(status=200)


@bp.get("", responses={200: ServerMetadata})
def server_metadata() -> Any:
    """Server metadata: name, version and the protocol extensions served."""
    return {"name": "mxconv", "version": __version__, "extensions": EXTENSIONS}


@bp.get("/health/live", responses={200: _EMPTY_OK})
def live() -> Any:
    """Server live: the process answers."""
    return Response(status=200)


@bp.get("/health/ready", responses={200: _EMPTY_OK, 400: _NOT_READY})
def ready() -> Any:
    """Server ready: every model can compute (MXNet answers)."""
    return _ready()


@bp.get("/models/<model_name>/ready", responses={200: _EMPTY_OK, 400: _NOT_READY})
def model_ready(path: ModelPath) -> Any:
    """Model ready."""
    find(path.model_name)
    return _ready()


@bp.get("/models/<model_name>/versions/<model_version>/ready", responses={200: _EMPTY_OK, 400: _NOT_READY})
def model_version_ready(path: VersionPath) -> Any:
    """Model ready, at a version."""
    find(path.model_name, path.model_version)
    return _ready()


def _metadata(model: Model) -> dict[str, Any]:
    def tensor(t: Any) -> dict[str, Any]:
        return {"name": t.name, "datatype": "FP32", "shape": list(t.shape)}

    return {
        "name": model.name,
        "versions": [VERSION],
        "platform": PLATFORM,
        "inputs": [tensor(t) for t in model.inputs],
        "outputs": [tensor(t) for t in model.outputs],
    }


@bp.get("/models/<model_name>", responses={200: ModelMetadata})
def model_metadata(path: ModelPath) -> Any:
    """Model metadata: inputs and outputs, -1 for a dimension of any size (FP64 is taken too)."""
    return _metadata(find(path.model_name))


@bp.get("/models/<model_name>/versions/<model_version>", responses={200: ModelMetadata})
def model_version_metadata(path: VersionPath) -> Any:
    """Model metadata, at a version."""
    return _metadata(find(path.model_name, path.model_version))


_INFER_DOC = {
    "parameters": [
        {
            "name": tensors.HEADER_LENGTH,
            "in": "header",
            "required": False,
            "description": "With binary tensors: the length of the JSON object that starts the body.",
            "schema": {"type": "integer", "minimum": 0},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            io.JSON: {"schema": _ref("InferenceRequest")},
            io.OCTET: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "The JSON inference request, then each binary input's bytes "
                    "(little-endian, row-major) in the order of the inputs; Inference-Header-Content-Length "
                    "gives the JSON's length, each input's binary_data_size its own.",
                }
            },
        },
    },
}


def _infer(name: str, version: str | None) -> Response:
    model = find(name, version)
    setattr(g, metrics.ENDPOINT_LABEL, model.label or f"/v2/models/{model.name}/infer")  # one per model
    body = tensors.decompressed(
        codec.read_body(request),
        request.headers.get("Content-Encoding", ""),
        common.settings().max_body_bytes,
    )
    req = tensors.read(body, request.headers.get(tensors.HEADER_LENGTH))
    for given, actual, what in (
        (req.envelope.model_name, model.name, "model"),
        (req.envelope.model_version, version, "version"),
    ):
        if given is not None and actual is not None and given != actual:
            raise ApiError(400, f"the body names {what} {given!r}, the URL {actual!r}; make them agree")
    names = None if req.outputs is None else [w.name for w in req.outputs]
    model.check_outputs(names or [])
    done = compute.compute(model.op, model.build_request(req.inputs, req.parameters, names))
    results = model.results(done.fields)
    wanted = req.outputs
    if not wanted:  # none named (or an empty list): every output the model gave
        wanted = [tensors.Wanted(t.name, req.binary_output) for t in model.outputs if t.name in results]
    header: dict[str, Any] = {"model_name": model.name, "model_version": VERSION}
    if req.envelope.id is not None:
        header["id"] = req.envelope.id
    header["parameters"] = {"flops": done.flops, "elapsed_ms": round(done.ms, 3), **model.info(done.fields)}
    return tensors.answer(header, [(w.name, results[w.name], w.binary) for w in wanted])


@bp.post("/models/<model_name>/infer", responses={200: InferenceResponse}, openapi_extensions=_INFER_DOC)
@io.describe(INFER_IO)
def infer(path: ModelPath) -> Any:
    """Inference: inputs and outputs as JSON data or binary tensors; the model's options as
    request parameters (the model's /v1 endpoint documents each one)."""
    return _infer(path.model_name, None)


@bp.post(
    "/models/<model_name>/versions/<model_version>/infer",
    responses={200: InferenceResponse},
    openapi_extensions=_INFER_DOC,
)
@io.describe(INFER_IO)
def infer_version(path: VersionPath) -> Any:
    """Inference, at a version."""
    return _infer(path.model_name, path.model_version)


@bp.post(
    "/repository/index",
    responses={
        200: {
            "description": "Every model, its version and state.",
            "content": {io.JSON: {"schema": {"type": "array", "items": _ref("RepositoryModel")}}},
        }
    },
    openapi_extensions={
        "requestBody": {"required": False, "content": {io.JSON: {"schema": _ref("RepositoryIndexRequest")}}}
    },
)
@io.describe(INDEX_IO)
def repository_index() -> Any:
    """The model repository's index, as Triton's: every model is built in, and READY."""
    data = codec.read_body(request)
    try:
        obj = orjson.loads(data) if len(data) else {}
    except orjson.JSONDecodeError as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None
    RepositoryIndexRequest.model_validate(obj)
    builtin = [{"name": name, "version": VERSION, "state": "READY"} for name in models()]
    return jsonify(builtin + trained_index())
