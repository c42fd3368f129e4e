"""The request mix: one table row per kind of request, with its share of the load.

A row whose endpoint the server does not offer (not in its /openapi.json) is skipped with a
printed note, so the same table runs against any build of the service.
"""

from __future__ import annotations

import base64
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _b64(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"dtype": "float32", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}


class JobIds:
    """Ids of the jobs this run submitted, for the status polls (bounded, thread-safe)."""

    def __init__(self, keep: int = 256) -> None:
        self._ids: list[str] = []
        self._keep = keep
        self._lock = threading.Lock()

    def add(self, job_id: str) -> None:
        with self._lock:
            self._ids.append(job_id)
            del self._ids[: -self._keep]

    def pick(self, rng: random.Random) -> str | None:
        with self._lock:
            return rng.choice(self._ids) if self._ids else None


@dataclass
class Kind:
    """One kind of request in the mix."""

    name: str
    method: str
    spec_path: str  # as in /openapi.json; the row is skipped if the server lacks it
    weight: float  # share of requests
    small: bool  # counts towards the "p99 < 10x p50 for small requests" target
    body: bytes | None = None  # pre-encoded once: the generator must not be the bottleneck
    path: Callable[[JobIds, random.Random], str | None] | None = None  # dynamic path; None: skip
    #: statuses the design allows under load besides 2xx (429: job queue full, with Retry-After)
    allowed: frozenset[int] = frozenset()
    on_success: Callable[[JobIds, bytes], None] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _remember_job(ids: JobIds, body: bytes) -> None:
    ids.add(json.loads(body)["id"])


def _poll_path(ids: JobIds, rng: random.Random) -> str | None:
    job_id = ids.pick(rng)
    return None if job_id is None else f"/v1/jobs/{job_id}?history=false"


def default_mix() -> list[Kind]:
    rng = np.random.default_rng(0)
    small = {
        "x": rng.standard_normal((1, 1, 16, 16)).tolist(),
        "weight": rng.standard_normal((1, 1, 3, 3)).tolist(),
    }
    medium = {
        "x": _b64(rng.standard_normal((1, 16, 64, 64))),
        "weight": _b64(rng.standard_normal((16, 16, 3, 3))),
        "padding": "same",
        "output_encoding": "base64",
    }
    mix = {
        "x": rng.standard_normal((3, 16, 16)).tolist(),
        "weight": rng.standard_normal((4, 3)).tolist(),
        "matrix_view": True,
    }
    lti = {
        "input": {"kind": "window", "start": 0, "width": 1},
        "system": {"kind": "first_order", "T": 1},
        "dt": 0.01,
        "duration": 5,
    }
    stripes = np.ones((6, 6))
    stripes[:, 2:4] = 0
    edges = stripes[:, :-1] - stripes[:, 1:]
    job = {
        "x": stripes.tolist(),
        "y": edges.tolist(),
        "layer": {"kernel_size": [1, 2], "bias": False},
        "epochs": 20,
        "learning_rate": 0.03,
    }

    def enc(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    return [
        Kind("conv2d-small", "POST", "/v1/conv2d", 0.35, True, enc(small)),
        Kind("conv2d-medium", "POST", "/v1/conv2d", 0.10, False, enc(medium)),
        Kind("channel-mix", "POST", "/v1/channel-mix", 0.20, True, enc(mix)),
        Kind("lti", "POST", "/v1/lti/response", 0.15, True, enc(lti)),
        Kind(
            "job-submit",
            "POST",
            "/v1/jobs",
            0.05,
            False,
            enc(job),
            allowed=frozenset({429}),
            on_success=_remember_job,
        ),
        Kind("job-status", "GET", "/v1/jobs/{job_id}", 0.15, True, path=_poll_path),
    ]


def available(mix: list[Kind], spec: dict[str, Any], log: Callable[[str], None] = print) -> list[Kind]:
    """The rows whose endpoint the server's spec offers; notes the others."""
    out = []
    for kind in mix:
        if kind.method.lower() in spec.get("paths", {}).get(kind.spec_path, {}):
            out.append(kind)
        else:
            log(f"note: skipping {kind.name}: the server has no {kind.method} {kind.spec_path} (not merged?)")
    return out
