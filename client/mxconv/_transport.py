"""What every call shares: the session, headers, retries, errors, and the tensor transports.

The resource modules (:mod:`.conv`, :mod:`.signals`, :mod:`.images`, :mod:`.meta`, :mod:`.jobs`)
build requests; this module sends them and reads the answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
import requests
from pydantic import BaseModel

from . import _compat, errors
from .retries import Outcome, RetryState, backoff_delay, retry_delay
from .wire import DTYPES, b64, npy
from .wire.multipart import multipart_body

ArrayLike = Any
Model = TypeVar("Model", bound=BaseModel)
TransportName = Literal["auto", "lists", "base64", "binary"]
TRANSPORTS: tuple[str, ...] = ("auto", "lists", "base64", "binary")

#: With ``transport="auto"`` (the default), a request whose input tensors hold more than this
#: many elements in all goes as binary: ``multipart/form-data`` with ``.npy`` parts, and the
#: output comes back as a ``.npy`` body. Smaller requests go as JSON (readable in logs, one
#: round trip of text); their output comes back base64 (exact bits). Below this size the two
#: cost the same to within the noise; above it, JSON's encode and parse grow with the data.
BINARY_MIN_ELEMENTS = 4096
#: For ``transport="base64"``: arrays up to this size still travel as nested lists.
LIST_ENCODING_MAX_ELEMENTS = 4096


def real(value: ArrayLike, dtype: str) -> npt.NDArray[Any]:
    """``value`` as a real array of the wire dtype; complex input is refused, not truncated."""
    if np.iscomplexobj(value):
        raise TypeError("mxconv computes on real numbers; pass .real and .imag separately")
    return np.asarray(value, dtype=DTYPES[dtype])


def wire_value(value: ArrayLike, dtype: str) -> Any:
    """An array for a JSON body sent with the standard library: lists when small, else base64."""
    arr = real(value, dtype)
    if arr.size <= LIST_ENCODING_MAX_ELEMENTS:
        return arr.tolist()
    return b64.to_b64(arr)


def json_tensor(value: ArrayLike, dtype: str, *, lists_only: bool = False) -> Any:
    """Like :func:`wire_value`, for bodies sent with orjson: lists stay ndarrays (orjson writes
    them as nested lists from numpy directly, without ``tolist()``)."""
    arr = real(value, dtype)
    if lists_only or arr.size <= LIST_ENCODING_MAX_ELEMENTS:
        return np.ascontiguousarray(arr)
    return b64.to_b64_orjson(arr)


def as_json(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options as JSON values: tuples become lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


class Transport:
    """One server's session, with the retry rule of :mod:`mxconv.retries`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout: tuple[float, float] = (5.0, 120.0),
        max_retries: int = 2,
        session: requests.Session | None = None,
        backoff: Callable[[int], float] = backoff_delay,
        transport: TransportName = "auto",
        max_retry_seconds: float = 60.0,
    ) -> None:
        """``transport``: ``"auto"`` (JSON up to :data:`BINARY_MIN_ELEMENTS` input elements,
        binary above), or always ``"lists"`` (nested JSON lists both ways), ``"base64"``
        (base64 JSON both ways) or ``"binary"`` (``.npy`` both ways). ``session``: a
        ``requests.Session`` of your own (proxies, TLS); the client's own gives its sockets
        tensor-sized buffers (:mod:`mxconv.sockets`). Which failures are retried, and how
        often, is :mod:`mxconv.retries`: ``max_retries`` retries at most, none starting after
        ``max_retry_seconds``."""
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_seconds = max_retry_seconds
        self.session = session or _compat.new_session()
        self._backoff = backoff

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request, retried as :func:`mxconv.retries.retry_delay` says.

        ``retry=False`` for calls that must not run twice.
        """
        url = f"{self.base_url}{path}"
        state = RetryState(self.max_retries if retry else 0, self.max_retry_seconds, self._backoff)
        while True:
            try:
                resp = self.session.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=self._headers(headers),
                    timeout=self.timeout,
                    stream=True,
                    **kwargs,
                )
                _compat.read_body(resp)
            except requests.ConnectTimeout as e:
                failure: errors.MxconvError = errors.APITimeoutError(
                    f"{method} {url}: no connection in time: {e}"
                )
                outcome = Outcome(not_sent=True)
            except requests.Timeout as e:  # sent, and no answer in time: as good as dropped
                failure = errors.APITimeoutError(f"{method} {url} timed out: {e}")
                outcome = Outcome(dropped=True)
            except requests.ConnectionError as e:
                failure = errors.APIConnectionError(f"cannot reach {url}: {e}")
                outcome = Outcome(not_sent=_compat.never_sent(e), dropped=not _compat.never_sent(e))
            else:
                if resp.status_code < 400:
                    return resp
                failure = self._error(resp)
                outcome = Outcome(status=resp.status_code, headers=resp.headers)
            delay = retry_delay(outcome, state)
            if delay is None:
                raise failure
            time.sleep(delay)

    @staticmethod
    def _error(resp: requests.Response) -> errors.APIError:
        request_id = resp.headers.get("X-Request-ID")
        try:
            body = resp.json()["error"]
            code, message, details = body["code"], body["message"], body.get("details", [])
        except (ValueError, KeyError, TypeError):
            code, message, details = "http_error", resp.text[:500] or resp.reason, []
        cls = errors.error_class_for(resp.status_code)
        return cls(message, status_code=resp.status_code, code=code, details=details, request_id=request_id)

    def _get(self, path: str, model: type[Model], **kwargs: Any) -> Model:
        return model.model_validate(self.request("GET", path, **kwargs).json())

    def _post(self, path: str, body: dict[str, Any], model: type[Model]) -> Model:
        # orjson both ways: on a 6 MB base64 tensor, stdlib json.dumps took 21 ms (measured);
        # arrays (the "lists" transport) serialize straight from numpy, without tolist(). The
        # answer is parsed by wire.b64.loads_json (orjson, with long base64 strings lifted out).
        data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        resp = self.request("POST", path, data=data, headers={"Content-Type": "application/json"})
        return model.model_validate(b64.loads_json(resp.content))

    def _binary(self, arrays: Mapping[str, ArrayLike | None]) -> bool:
        if self.transport != "auto":
            return self.transport == "binary"
        total = sum(int(np.size(a)) for a in arrays.values() if a is not None)
        return total > BINARY_MIN_ELEMENTS

    def _compute(
        self,
        path: str,
        arrays: Mapping[str, ArrayLike | None],
        params: dict[str, Any],
        model: type[Model],
        *,
        npy_output: bool = True,
    ) -> Model:
        """POST one compute request with the tensors in the client's transport."""
        dtype = str(params.get("dtype", "float32"))
        given = {name: a for name, a in arrays.items() if a is not None}
        if not self._binary(given):
            lists = self.transport == "lists"
            body = {name: json_tensor(a, dtype, lists_only=lists) for name, a in given.items()}
            body.update(params, output_encoding="list" if lists else "base64")
            return self._post(path, body, model)
        wire = {name: real(a, dtype) for name, a in given.items()}
        multipart = multipart_body(wire, params)
        accept = npy.NPY_MEDIA_TYPE if npy_output else "application/json"
        headers = {"Content-Type": multipart.content_type, "Accept": accept}
        resp = self.request("POST", path, data=multipart, headers=headers)
        if resp.headers.get("Content-Type", "").startswith(npy.NPY_MEDIA_TYPE):
            return model.model_validate(_npy_result(resp))
        return model.model_validate(b64.loads_json(resp.content))


def _npy_result(resp: requests.Response) -> dict[str, Any]:
    """A ``.npy`` response and its ``X-*`` headers as the fields of a TensorResult."""
    y = npy.from_npy(resp.content)
    return {
        "y": y,
        "shape": list(y.shape),
        "dtype": y.dtype.name,
        "flops": int(resp.headers.get("X-Flops", "0")),
        "elapsed_ms": float(resp.headers.get("X-Elapsed-Ms", "0")),
    }
