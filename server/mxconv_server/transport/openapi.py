"""The OpenAPI document, made accurate for every endpoint, including ones added later.

flask-openapi3 writes each operation's spec from what its view declares. What the request
plumbing can answer for *any* endpoint (middleware.py, errors.py) is added here, once, from
the URL map, so a new blueprint cannot forget it and fuzzers (schemathesis) can hold the
service to its spec:

* 401 and a bearer security requirement on every endpoint outside PUBLIC_ENDPOINTS, when
  API keys are on;
* 400, 408, 413, 415 and 422 on every operation that takes a body;
* 404 on every operation with path parameters; 414 (gunicorn's request line limit) on every
  operation with parameters;
* 422 in the one error shape, replacing flask-openapi3's default (a list of pydantic
  errors, which mxconv never sends), and only where a request can be invalid;
* 503 (a backend unavailable, with Retry-After) on every operation but the health checks;
* under /v2 (the inference protocol), the errors in its shape, ``{"error": "<message>"}``, and
  400 where /v1 answers 422 (errors.py);
* the binary media types a view's :class:`.io.ViewIO` may answer 200 with, beside the JSON
  model its ``responses`` declare, and the multipart ``.npy`` form and ``.npy`` answer of
  every tensor view (:func:`document`).
"""

from __future__ import annotations

import re
from typing import Any, get_type_hints

from flask import Flask
from flask_openapi3 import OpenAPI
from mxconv.schemas import ErrorResponse

from ..errors import oip_route
from ..middleware import PUBLIC_ENDPOINTS
from . import io
from .io import MULTIPART, NPY

SECURITY_SCHEME = "bearerAuth"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_OIP_ERROR_REF = {"$ref": "#/components/schemas/InferenceErrorResponse"}
_OIP_ERROR_SCHEMA = {
    "title": "InferenceErrorResponse",
    "description": "An error under /v2, in the Open Inference Protocol's shape.",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What is wrong, and what to change."}},
}
_DESCRIPTIONS = {
    400: "Malformed body (not JSON, or not parseable).",
    401: "Missing or invalid API key.",
    404: "Unknown resource.",
    408: "The body did not arrive within MXCONV_BODY_TIMEOUT seconds.",
    414: "The request line (path and query string) is over 4094 bytes: send options in the body.",
    413: "The body, or the work it asks for, is over a limit.",
    415: "Unsupported Content-Type.",
    422: "The body parses but is invalid; details give pydantic's error locations.",
    503: "A backend (the job store) is unavailable; retry after Retry-After seconds.",
    504: "The work ran past MXCONV_MAX_REQUEST_SECONDS and was stopped (deadline_exceeded).",
}
_BODY_METHODS = {"post", "put", "patch"}


_CONVERTER = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def openapi_path(rule: str) -> str:
    """Flask's ``/v1/jobs/<string:job_id>`` as OpenAPI's ``/v1/jobs/{job_id}``."""
    return _CONVERTER.sub(r"{\1}", rule)


def _error(status: int, path: str = "") -> dict[str, Any]:
    ref = _OIP_ERROR_REF if oip_route(path) else _ERROR_REF
    return {"description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": ref}}}


def finalize(app: OpenAPI, spec: dict[str, Any], *, keys_on: bool) -> dict[str, Any]:
    """Add what the plumbing answers for every endpoint to ``spec`` (in place) and return it."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorResponse" not in schemas:
        model = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in model.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas["ErrorResponse"] = model
    schemas.pop("ValidationErrorModel", None)  # flask-openapi3's default 422 model, unused
    if any(oip_route(path) for path in spec.get("paths", {})):
        schemas["InferenceErrorResponse"] = _OIP_ERROR_SCHEMA
    components = spec["components"]
    if not components.get("securitySchemes"):
        components.pop("securitySchemes", None)
    if keys_on:
        components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "One of the keys in MXCONV_API_KEYS: 'Authorization: Bearer <key>'.",
        }

    endpoints = {openapi_path(r.rule): r.endpoint for r in app.url_map.iter_rules()}
    views = {
        (openapi_path(r.rule), m.lower()): app.view_functions.get(r.endpoint)
        for r in app.url_map.iter_rules()
        for m in r.methods or ()
    }
    for path, item in spec.get("paths", {}).items():
        public = endpoints.get(path) in PUBLIC_ENDPOINTS
        for method, op in item.items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options"}:
                continue
            responses = op.setdefault("responses", {})
            for mimetype in io.of(views.get((path, method))).produces:
                if mimetype == io.JSON:
                    continue
                ok = responses.setdefault("200", {"description": "OK"}).setdefault("content", {})
                ok.setdefault(mimetype, {"schema": {"type": "string", "format": "binary"}})
            has_body = method in _BODY_METHODS or "requestBody" in op
            has_params = bool(op.get("parameters")) or "{" in path
            wanted = set()
            if has_body:
                wanted |= {400, 408, 413, 415, 422}
            if "{" in path:
                wanted.add(404)
            if has_params:
                wanted |= {414, 422}
            if not public:
                wanted.add(503)
            if oip_route(path) and 422 in wanted:
                wanted = (wanted - {422}) | {400}
            if keys_on and not public:
                wanted.add(401)
                op.setdefault("security", [{SECURITY_SCHEME: []}])
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
            if default_422.get("schema", {}).get("type") == "array":  # flask-openapi3's default
                del responses["422"]
            for status in sorted(wanted):
                responses.setdefault(str(status), _error(status, path))
    return spec


def document(app: Flask) -> None:
    """Add the multipart request form and the ``.npy`` response to every tensor_io operation
    in the generated spec (flask-openapi3 describes only the JSON body by itself)."""
    spec: dict[str, Any] = app.api_doc  # type: ignore[attr-defined]
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        if not io.of(view).tensors:
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in sorted((rule.methods or set()) & {"POST", "PUT"}):
            operation = spec.get("paths", {}).get(path, {}).get(method.lower())
            if operation is None:
                continue
            _document_operation(operation, _body_model(view))


def _body_model(view: Any) -> Any:
    fn = view
    while hasattr(fn, "__wrapped__") and "body" not in getattr(fn, "__annotations__", {}):
        fn = fn.__wrapped__
    try:
        return get_type_hints(fn).get("body")
    except Exception:  # an unresolvable annotation: document the form generically
        return None


def _document_operation(operation: dict[str, Any], model: Any) -> None:
    tensor_names = []
    if model is not None:
        tensor_names = [name for name, f in model.model_fields.items() if "ndarray" in repr(f.annotation)]
    props: dict[str, Any] = {
        "params": {
            "type": "string",
            "description": "Every non-tensor field of the JSON body, as one JSON object.",
            "example": "{}",
        }
    }
    for name in tensor_names:
        props[name] = {
            "type": "string",
            "format": "binary",
            "description": f"{name} as a .npy file (numpy.save), float32 or float64; never pickled.",
        }
    request_body = operation.setdefault("requestBody", {"content": {}})
    request_body.setdefault("content", {})[MULTIPART] = {"schema": {"type": "object", "properties": props}}
    ok = operation.setdefault("responses", {}).setdefault("200", {"description": "OK"})
    ok.setdefault("content", {})[NPY] = {
        "schema": {"type": "string", "format": "binary"},
    }
    ok["description"] = (
        ok.get("description", "OK")
        + ". With Accept: application/x-npy, the output y as a .npy body; its shape, dtype, FLOPs "
        "and compute time in the X-Tensor-Shape, X-Tensor-Dtype, X-Flops and X-Elapsed-Ms headers."
    )


class MxconvOpenAPI(OpenAPI):
    """flask-openapi3's app, with the spec finalized as above when it is first generated."""

    def generate_spec_json(self) -> None:
        super().generate_spec_json()
        keys_on = bool(self.config["MXCONV"].api_key_list)
        self.spec_json = finalize(self, self.spec_json, keys_on=keys_on)
