"""Per-request plumbing: request ids, API keys, strict JSON parsing, response headers."""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Request, Response, g, request
from mxconv.wire import lists

from . import metrics
from .errors import ApiError
from .transport import codec, compat, io
from .transport.body import buffer_request_body

log = logging.getLogger("mxconv.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Reachable without a key even when MXCONV_API_KEYS is set: probes must not need secrets, and
#: the documentation (the spec, Swagger UI and its assets) must load before a key is typed into
#: its Authorize button. None of these holds data.
HEALTH_ENDPOINTS = frozenset({"meta.live", "meta.ready", "oip.live", "oip.ready"})
DOC_ENDPOINTS = frozenset(
    {
        "openapi_json",
        "openapi.doc_url",
        "openapi.openapi",
        "openapi.static",
        "swagger.swagger",
        "swagger.static",
        "swagger.oauth2-redirect",
    }
)
PUBLIC_ENDPOINTS = HEALTH_ENDPOINTS | DOC_ENDPOINTS | {"playground.index", "playground.static"}


def _check_api_key(keys: list[str]) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    # Compare against every key, in constant time each, so timing reveals nothing.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    if not matched:
        raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})


def _parse_json_body(app: Flask) -> None:
    """Parse JSON once, strictly: malformed JSON is a 400 with the parser's reason."""
    lists.booleans_possible.set(True)  # per request: a sync worker's context outlives one
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if not request.content_length and "chunked" not in request.headers.get("Transfer-Encoding", ""):
        return  # no body at all (curl -X POST .../cancel sends no Content-Length): nothing to parse
    mimetype = request.mimetype
    view_io = io.of(app.view_functions.get(request.endpoint or ""))
    if not mimetype:
        if view_io.raw:
            return  # the view reads the body, whatever it is
        raise ApiError(415, "missing Content-Type; send 'Content-Type: application/json'")
    accepted = frozenset({io.JSON}) | view_io.accepts
    if mimetype not in accepted:
        raise ApiError(415, f"Content-Type {mimetype!r} is not accepted here; send one of {sorted(accepted)}")
    if view_io.raw:
        return
    if mimetype == "application/json":
        # The body is already buffered (buffer_request_body); parse it with the app's JSON
        # parser. A parse error is a 400 with the parser's reason.
        data = codec.read_body(request)
        # No true/false token anywhere: no list can hold a boolean, and none is scanned for one.
        lists.booleans_possible.set(b"true" in data or b"false" in data)
        try:
            compat.set_json_body(request, app.json.loads(data))
        except ValueError as e:
            raise ApiError(400, f"request body is not valid JSON: {e}") from None
    elif mimetype == io.MULTIPART and view_io.tensors:
        # .npy parts + a JSON params part become the dict a JSON body would have given, so the
        # view's pydantic model validates both transports the same way. Other views that accept
        # multipart (file uploads) keep werkzeug's request.form / request.files.
        compat.set_json_body(request, codec.form_body(request))


#: The API's routes: content negotiation applies to these (pages and /metrics answer as they do).
API_PREFIXES = ("/v1/", "/v2/")


def _check_accept(app: Flask) -> None:
    """406 before any work for an Accept header this endpoint can answer none of."""
    rule = request.url_rule
    if rule is None or not rule.rule.startswith(API_PREFIXES):
        return
    view_io = io.of(app.view_functions.get(request.endpoint or ""))
    if io.negotiated(view_io) is None:
        offers = ", ".join(view_io.produces)
        raise ApiError(
            406,
            f"Accept: {request.headers.get('Accept', '')!r} allows none of what this endpoint answers "
            f"({offers}); send Accept: {view_io.produces[0]}, or no Accept header",
        )


def _align_at(view_io: io.ViewIO) -> int | None:
    """Where the view's tensor bytes start in the body, by its ``align_header``, if it has one."""
    offset = request.headers.get(view_io.align_header, "") if view_io.align_header else ""
    return int(offset) if offset.isdigit() and len(offset) <= 18 else None


class MxconvRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        raise ApiError(400, f"request body is not valid JSON: {e}")


def register(app: Flask) -> None:
    keys: list[str] = app.config["MXCONV"].api_key_list
    app.request_class = MxconvRequest

    @app.before_request
    def _before() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        if keys and request.endpoint not in PUBLIC_ENDPOINTS and request.method != "OPTIONS":
            _check_api_key(keys)
        _check_accept(app)
        settings = app.config["MXCONV"]
        align_at = _align_at(io.of(app.view_functions.get(request.endpoint or "")))
        buffer_request_body(
            request, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout, align_at=align_at
        )
        _parse_json_body(app)

    @app.after_request
    def _after(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = getattr(g, "request_id", "")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers["Cache-Control"] = resp.headers.get("Cache-Control", "no-store")
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.observe_request(request.method, resp.status_code, elapsed)
        log.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            resp.status_code,
            elapsed * 1000,
            extra={
                "request_id": g.get("request_id", "-"),
                "method": request.method,
                "path": request.path,
                "status": resp.status_code,
                "duration_ms": round(elapsed * 1000, 3),
            },
        )
        return resp
