"""The typed HTTP client: numpy arrays in, numpy arrays (or typed models) out."""

from __future__ import annotations

import functools

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

    @functools.cached_property
    def jobs(self) -> Jobs:
        """The /v1/jobs resource: ``client.jobs.submit(...)``, ``.wait(...)`` ..."""
        return Jobs(self)

    @functools.cached_property
    def networks(self) -> Networks:
        """The /v1/networks resource: ``client.networks.summary(...)``."""
        return Networks(self)

    @functools.cached_property
    def models(self) -> Models:
        """Trained models: ``client.models.predict(job_id, x)``, ``.export(job_id, "onnx")``."""
        return Models(self)
