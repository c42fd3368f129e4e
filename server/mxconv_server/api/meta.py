"""Health, info and the OpenAPI document."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable
from typing import Any

import numpy as np
from flask import Flask, current_app, jsonify
from flask_openapi3 import APIBlueprint, Tag
from mxconv.schemas import ErrorResponse, Health, Info

from .. import __version__
from ..compute import device as devices
from . import common

bp = APIBlueprint("meta", __name__, url_prefix="/v1", abp_tags=[Tag(name="service")])

ReadyCheck = Callable[[], None]
FEATURES = [
    "conv2d",
    "corr2d",
    "channel-mix",
    "base64-tensors",
    "npy-tensors",
    "conv1d",
    "lti-response",
    "lti-response-png",
    "images",
    "playground",
]


def ready_checks(app: Flask) -> dict[str, ReadyCheck]:
    """Named checks /v1/health/ready runs; other modules (the job backend) add theirs."""
    return app.extensions.setdefault("mxconv.ready_checks", {"mxnet": _mxnet_answers})  # type: ignore[no-any-return]


def _mxnet_answers() -> None:
    from ..compute import conv

    y = conv.corr2d(np.eye(2), np.ones((1, 1)), ctx=common.device())
    if not np.allclose(y, np.eye(2)):
        raise RuntimeError("MXNet returned a wrong answer for a 2x2 identity")


@bp.get("/health/live", responses={200: Health})
def live() -> dict[str, Any]:
    """Liveness: the process answers."""
    return {"status": "ok", "checks": {}}


@bp.get("/health/ready", responses={200: Health, 503: Health})
def ready() -> Any:
    """Readiness: MXNet computes and the job backend answers."""
    checks: dict[str, str] = {}
    for name, check in ready_checks(current_app).items():
        try:
            check()
            checks[name] = "ok"
        except Exception as e:  # any failure means not ready; say which and why
            checks[name] = f"failed: {type(e).__name__}: {e}"
    ok = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ok" if ok else "unavailable", "checks": checks}), (200 if ok else 503)


@bp.get("/info", responses={200: Info, 401: ErrorResponse})
def info() -> dict[str, Any]:
    """Versions, the device in use, limits and features."""
    s = common.settings()
    return {
        "service": "mxconv",
        "version": __version__,
        "versions": {
            "mxconv": __version__,
            "mxnet": importlib.metadata.version("mxnet"),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "device": devices.describe(common.device()),
        "limits": {
            "max_body_bytes": s.max_body_bytes,
            "max_tensor_elements": s.max_tensor_elements,
            "max_flops": s.max_flops,
            "max_signal_samples": s.max_signal_samples,
            "max_image_pixels": s.max_image_pixels,
        },
        "features": current_app.extensions.get("mxconv.features", FEATURES),
    }


def register_spec_route(app: Any) -> None:
    """The spec at /openapi.json as well as under /docs, where the offline Swagger UI reads it."""

    @app.get("/openapi.json", doc_ui=False)
    def openapi_json() -> Any:
        return jsonify(app.api_doc)
