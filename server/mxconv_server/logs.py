"""Structured logs: one JSON object a line, with the request id of the request being served.

gunicorn's own loggers use the same configuration (``logconfig_dict`` in gunicorn_conf.py), so
every line a service writes, master or worker, parses as JSON. ``MXCONV_LOG_FORMAT=text``
gives plain lines for reading in a terminal.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

#: Fields every JSON line starts with; anything passed as ``extra=`` is added after them.
JSON_FIELDS = ["asctime", "levelname", "name", "process", "message"]
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
_HANDLER_NAME = "mxconv"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                from flask import g, has_request_context

                if has_request_context() and "request_id" in g:
                    record.request_id = g.request_id
            except ImportError:  # pragma: no cover - flask is a server dependency
                pass
        return True


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(JSON_FIELDS, rename_fields=RENAMED, datefmt="%Y-%m-%dT%H:%M:%S%z")


def formatter(fmt: str) -> logging.Formatter:
    return json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def dict_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for a whole process: one stderr handler on the root
    logger, gunicorn's loggers propagating to it (not printing twice)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": formatter, "fmt": fmt}},
        "handlers": {
            _HANDLER_NAME: {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": [_HANDLER_NAME]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            # mxconv.access already logs every request, with its request id and duration.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def configure(level: str, fmt: str) -> None:
    """Set up logging once per process (gunicorn's master already did it for its workers);
    later calls only set the level."""
    root = logging.getLogger()
    if not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        handler = logging.StreamHandler()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(formatter(fmt))
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
