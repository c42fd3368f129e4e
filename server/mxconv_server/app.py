"""The application factory."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import JSONProvider
from flask_openapi3 import Info
from mxconv.wire import b64

from . import __version__, errors, logs, metrics, middleware
from .compute import cost, device
from .config import Settings
from .transport import compat, openapi
from .transport.openapi import MxconvOpenAPI


class OrjsonProvider(JSONProvider):
    """orjson for every JSON body: large nested tensor lists parse and print several times
    faster than with the standard library, and numpy arrays serialize without ``tolist()``."""

    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=self.options, default=_default).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        # Long base64 tensors are lifted out before orjson parses the rest (3.5 -> ~1 ms for
        # a 6.4 MB tensor; mxconv.wire.b64.loads_json), with orjson's result and errors.
        return b64.loads_json(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """orjson's bytes as the body, without the round trip through ``str`` that Flask's
        default makes (decode, then encode again: 1 ms on an 8 MB base64 result)."""
        obj = compat.response_obj(self, args, kwargs)
        body = orjson.dumps(obj, option=self.options | orjson.OPT_APPEND_NEWLINE, default=_default)
        return self._app.response_class(body, mimetype="application/json")  # type: ignore[no-any-return]


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):  # non-contiguous or an unusual dtype
        return np.ascontiguousarray(obj, dtype=np.float64)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def create_app(config: Settings | dict[str, Any] | None = None) -> MxconvOpenAPI:
    """Build the app. ``config`` overrides the ``MXCONV_*`` environment (tests pass a dict)."""
    settings = config if isinstance(config, Settings) else Settings(**(config or {}))
    logs.configure(settings.log_level, settings.log_format)

    app = MxconvOpenAPI(
        __name__,
        info=Info(title="mxconv", version=__version__, description="Convolution as a service."),
        doc_prefix="/docs",
        validation_error_status=422,
        validation_error_callback=lambda e: errors.error_response(errors.validation_error(e)),
    )
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["MXCONV"] = settings
    app.extensions["mxconv.device"] = device.resolve(settings.device)  # fails loudly, at startup
    cost.configure(scale=settings.cost_scale)

    errors.register(app)
    middleware.register(app)
    metrics.register(app)

    from . import oip
    from .api import compute, images, jobs, meta, playground

    app.register_api(
        compute.blueprint(
            readers={"images/filter": images.read_filter_request},
            extensions={"images/filter": images.filter_openapi()},
        )
    )
    app.register_api(images.bp)
    app.register_api(meta.bp)
    app.register_api(oip.bp)
    app.register_blueprint(playground.bp)
    jobs.register(app)
    meta.register_spec_route(app)
    openapi.document(app)  # last: after every blueprint is registered
    return app
