"""The one JSON error shape, ``{"error": {"code", "message", "details"}}``, and its handlers.

Under ``/v2`` (the Open Inference Protocol, ``oip/``) errors take that protocol's shape,
``{"error": "<message>"}``, with the same message; and as the protocol has no 422, a request that
parses but is invalid is a 400 there. :func:`error_response` and :func:`raw_error_response` choose
the shape by the route, so every handler below serves both."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, g, has_request_context, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from .compute.deadline import DeadlineExceeded
from .compute.errors import InvalidArgument, OverBudget
from .jobs.records import StoreUnavailable

log = logging.getLogger("mxconv.errors")

_CODES = {
    400: "malformed_body",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
    504: "deadline_exceeded",
}
_REASONS = {
    400: "Bad Request",
    414: "Request-URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    504: "Gateway Timeout",
}


#: The Open Inference Protocol's routes (``oip/``).
OIP_PREFIX = "/v2"
OIP_ENDPOINTS = (
    "GET /v2, GET /v2/health/live, GET /v2/health/ready, GET /v2/models/<name>[/versions/<v>][/ready], "
    "POST /v2/models/<name>[/versions/<v>]/infer and POST /v2/repository/index"
)


def oip_route(path: str) -> bool:
    return path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")


class ApiError(Exception):
    """Raise anywhere in a request to answer with the error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def _body(status: int, code: str, message: str, details: list[dict[str, Any]], path: str) -> tuple[Any, int]:
    """The error body for a request to ``path``, and its status."""
    if oip_route(path):
        return {"error": message}, 400 if status == 422 else status
    return {"error": {"code": code, "message": message, "details": details}}, status


def raw_error_response(status: int, code: str, message: str, request_id: str = "", path: str = "") -> bytes:
    """A whole HTTP/1.1 response in the error shape of ``path``'s route, for writing straight to
    a socket where Flask cannot answer (gunicorn's own parse errors, the watchdog)."""
    shaped, status = _body(status, code, message, [], path)
    body = json.dumps(shaped).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nServer: mxconv\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        + (f"X-Request-ID: {request_id}\r\n" if request_id else "")
        + "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n"
    )
    return head.encode("latin-1", "replace") + body


def error_response(err: ApiError) -> Response:
    path = request.path if has_request_context() else ""
    body, status = _body(err.status, err.code, err.message, err.details, path)
    resp = jsonify(body)
    resp.status_code = status
    resp.headers.update(err.headers)
    return resp


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def validation_error(e: ValidationError) -> ApiError:
    """pydantic's errors, with their locations, as one 422."""
    details = []
    for err in e.errors(include_url=False, include_input=False, include_context=False):
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "model_type" and not err["loc"]:  # no body, or not an object
            msg = "the body must be a JSON object with the fields in /openapi.json"
        details.append({"loc": list(err["loc"]), "msg": msg, "type": err["type"]})
    message = "; ".join(f"{_loc(tuple(d['loc']))}: {d['msg']}" for d in details[:5])
    return ApiError(422, message, details=details)


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError) -> Response:
        return error_response(e)

    @app.errorhandler(ValidationError)
    def _validation(e: ValidationError) -> Response:
        return error_response(validation_error(e))

    @app.errorhandler(InvalidArgument)
    def _invalid(e: InvalidArgument) -> Response:
        details = [{"loc": e.field.split("."), "msg": e.message, "type": "invalid_argument"}]
        return error_response(ApiError(422, str(e), code="invalid_argument", details=details))

    @app.errorhandler(OverBudget)
    def _over_budget(e: OverBudget) -> Response:
        return error_response(ApiError(413, str(e), code="over_budget"))

    @app.errorhandler(DeadlineExceeded)
    def _deadline(e: DeadlineExceeded) -> Response:
        message = (
            f"{e} (MXCONV_MAX_REQUEST_SECONDS) and was stopped; nothing was returned. Ask for less "
            "work (a smaller input, kernel or batch), or ask the operator to raise the limit"
        )
        return error_response(ApiError(504, message, code="deadline_exceeded"))

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(e: StoreUnavailable) -> Response:
        # The job store cannot be used right now (SQLite: data dir read-only, disk full, I/O
        # error, locked too long; Redis: down, restarting, loading its data). Not a bug in the
        # request: say so, and when to retry. The backend says what an operator should check.
        log.error("job store unavailable in request %s: %s", getattr(g, "request_id", "-"), e)
        return error_response(
            ApiError(
                503,
                f"the job store is unavailable ({e}); retry later. Operators: check {e.check}",
                headers={"Retry-After": "5"},
            )
        )

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        status = e.code or 500
        message = e.description or e.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"request body is over the limit of {limit} bytes (MXCONV_MAX_BODY_BYTES)"
        elif status == 405:
            allowed = sorted(set(getattr(e, "valid_methods", None) or ()) - {"HEAD", "OPTIONS"})
            message = (
                f"{request.method} is not allowed on {request.path}; use {' or '.join(allowed)} "
                "(see /openapi.json)"
            )
            return error_response(
                ApiError(405, message, headers={"Allow": ", ".join(sorted(e.valid_methods or ()))})
            )
        elif status == 404 and oip_route(request.path):
            message = f"no endpoint at {request.path}; the inference protocol's endpoints are {OIP_ENDPOINTS}"
        elif status == 404:
            message = (
                f"no endpoint at {request.path}; the API lives under /v1/ (e.g. POST /v1/conv2d): "
                "see /openapi.json, and give the client the server's root URL, without /v1"
            )
        return error_response(ApiError(status, message))

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        # A bug, not a user mistake: keep the trace in the log, never in the response.
        request_id = getattr(g, "request_id", "-")
        log.exception("unhandled error in request %s", request_id)
        return error_response(
            ApiError(500, f"internal error; quote request id {request_id} when reporting it")
        )
