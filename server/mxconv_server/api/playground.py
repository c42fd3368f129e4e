"""The browser playground at /: static HTML, JS and CSS from the package, no CDN.

The page and its assets hold no data, so they are reachable without an API key
(middleware.PUBLIC_ENDPOINTS); the page asks for a key when an API call answers 401.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, send_from_directory

STATIC = Path(__file__).resolve().parent.parent / "static" / "playground"
#: Everything the page loads comes from this server; blob: and data: for canvases and uploads.
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

bp = Blueprint("playground", __name__, static_folder=str(STATIC), static_url_path="/playground")


@bp.get("/")
def index() -> Any:
    resp = send_from_directory(STATIC, "index.html", max_age=0)
    resp.headers["Content-Security-Policy"] = CSP
    return resp


@bp.after_request
def _csp(resp: Any) -> Any:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    return resp
