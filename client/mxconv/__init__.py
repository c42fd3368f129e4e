"""mxconv: a typed client for the mxconv convolution service.

import mxconv
client = mxconv.Client("http://127.0.0.1:8000")
client.corr2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[0, 1], [2, 3]])
"""

from . import layers, schemas, tensors, wire
from .client import Client
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeadlineExceededError,
    MxconvError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from .jobs import JobTimeoutError

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "JobTimeoutError",
    "MxconvError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "ServerError",
    "ServiceUnavailableError",
    "DeadlineExceededError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "layers",
    "schemas",
    "tensors",
    "wire",
]
