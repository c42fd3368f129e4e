"""LTI system responses: as arrays, and plotted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from . import schemas
from ._transport import Transport, wire_value

#: An LTI input or system: a model from mxconv.schemas, or the same fields as a mapping.
LtiSpec = BaseModel | Mapping[str, Any]


class SignalsAPI(Transport):
    def lti_response(
        self, input: LtiSpec, system: LtiSpec, *, dt: float, duration: float
    ) -> schemas.LtiResult:
        """The response of an LTI system at rest, y = x * h, simulated on the grid 0, dt, ... .

        ``input`` and ``system`` are models from :mod:`mxconv.schemas` (``StepInput()``,
        ``FirstOrder(T=1)`` ...) or the same as dicts (``{"kind": "step"}``). The result holds
        numpy arrays ``t``, ``x``, ``h``, ``y`` and, where a closed form exists, ``y_analytic``
        and ``max_abs_error``.
        """
        body = _lti_body(input, system, dt, duration)
        return self._post("/v1/lti/response", body, schemas.LtiResult)

    def lti_response_png(
        self,
        input: LtiSpec,
        system: LtiSpec,
        *,
        dt: float,
        duration: float,
        width: int = 800,
        height: int = 500,
    ) -> bytes:
        """The response plotted (response, input, closed form) as PNG bytes of width x height."""
        body = {**_lti_body(input, system, dt, duration), "width": width, "height": height}
        body.pop("output_encoding")
        resp = self.request("POST", "/v1/lti/response.png", json=body, headers={"Accept": "image/png"})
        return resp.content


def _lti_spec(spec: LtiSpec) -> dict[str, Any]:
    """An input or system model (or dict) as JSON; sample arrays as lists or base64."""
    out = dict(spec)
    for key in ("samples", "h"):
        if key in out and out[key] is not None:
            out[key] = wire_value(out[key], "float64")
    return out


def _lti_body(input: LtiSpec, system: LtiSpec, dt: float, duration: float) -> dict[str, Any]:
    return {
        "input": _lti_spec(input),
        "system": _lti_spec(system),
        "dt": dt,
        "duration": duration,
        "output_encoding": "base64",
    }
