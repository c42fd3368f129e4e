"""The typed HTTP client: numpy arrays in, numpy arrays (or typed models) out."""

from __future__ import annotations

from collections.abc import Callable

import requests

from ._transport import (  # noqa: F401  (importable from here, as they always were)
    BINARY_MIN_ELEMENTS,
    LIST_ENCODING_MAX_ELEMENTS,
    TRANSPORTS,
    ArrayLike,
    TransportName,
)
from .conv import ConvAPI
from .images import ImageInput, ImagesAPI  # noqa: F401
from .jobs import Jobs
from .meta import MetaAPI
from .models import Models
from .networks import Networks
from .retries import backoff_delay
from .signals import LtiSpec, SignalsAPI  # noqa: F401

Transport = TransportName


class Client(ConvAPI, SignalsAPI, ImagesAPI, MetaAPI):
    """A client for one mxconv server: one method per endpoint; ``client.jobs`` for training
    jobs, ``client.networks`` for network summaries, ``client.models`` for trained models.

    >>> c = Client("http://127.0.0.1:8000")
    >>> c.corr2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[0, 1], [2, 3]])
    array([[19., 25.],
           [37., 43.]], dtype=float32)
    """

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
        super().__init__(
            base_url, api_key, timeout, max_retries, session, backoff, transport, max_retry_seconds
        )
        self.jobs = Jobs(self)
        self.networks = Networks(self)
        self.models = Models(self)
