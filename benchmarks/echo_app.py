"""The baseline for small-request throughput: a bare Flask app that parses a JSON body and
echoes it, served by the same gunicorn config as mxconv (``mxconv_server.gunicorn_conf``)."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/echo")
def echo() -> Any:
    return jsonify(request.get_json())


@app.get("/ready")
def ready() -> Any:
    return "ok"
