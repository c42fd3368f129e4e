"""Per-request plumbing: request ids, API keys, strict JSON parsing, response headers."""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Request, Response, g, request

from . import binary, metrics
from .body import buffer_request_body
from .errors import ApiError

log = logging.getLogger("mxconv.access")
F = TypeVar("F", bound=Callable[..., Any])

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Reachable without a key even when MXCONV_API_KEYS is set: probes must not need secrets, and
#: the documentation (the spec, Swagger UI and its assets) must load before a key is typed into
#: its Authorize button. None of these holds data.
HEALTH_ENDPOINTS = frozenset({"meta.live", "meta.ready"})
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


def accepts(*mimetypes: str) -> Callable[[F], F]:
    """Mark a view as taking bodies of these types besides JSON (multipart, images ...)."""

    def mark(view: F) -> F:
        view.accepts = frozenset(mimetypes)  # type: ignore[attr-defined]
        return view

    return mark


def _accepted(app: Flask) -> frozenset[str]:
    view = app.view_functions.get(request.endpoint or "")
    return frozenset({"application/json"}) | getattr(view, "accepts", frozenset())


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
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if not request.content_length and "chunked" not in request.headers.get("Transfer-Encoding", ""):
        return  # no body at all (curl -X POST .../cancel sends no Content-Length): nothing to parse
    mimetype = request.mimetype
    if not mimetype:
        raise ApiError(415, "missing Content-Type; send 'Content-Type: application/json'")
    accepted = _accepted(app)
    if mimetype not in accepted:
        raise ApiError(415, f"Content-Type {mimetype!r} is not accepted here; send one of {sorted(accepted)}")
    if mimetype == "application/json":
        # The body is already buffered (buffer_request_body); parse it with the app's JSON
        # parser. A parse error is a 400 with the parser's reason.
        data = binary.read_body(request)
        try:
            request.set_body(app.json.loads(data))  # type: ignore[attr-defined]
        except ValueError as e:
            raise ApiError(400, f"request body is not valid JSON: {e}") from None
    elif mimetype == binary.MULTIPART and binary.is_tensor_view(
        app.view_functions.get(request.endpoint or "")
    ):
        # .npy parts + a JSON params part become the dict a JSON body would have given, so the
        # view's pydantic model validates both transports the same way. Other views that accept
        # multipart (file uploads) keep werkzeug's request.form / request.files.
        request.set_body(binary.form_body(request))  # type: ignore[attr-defined]


class MxconvRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        raise ApiError(400, f"request body is not valid JSON: {e}")

    def set_body(self, obj: Any) -> None:
        """Stand ``obj`` in for the parsed JSON body (what views and flask-openapi3 read)."""
        self._cached_json = (obj, obj)


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
        settings = app.config["MXCONV"]
        buffer_request_body(request, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout)
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
