"""One exception tree for the client, mapped from HTTP status in one place."""

from __future__ import annotations

from typing import Any


class MxconvError(Exception):
    """Base of every error the client raises."""


class APIConnectionError(MxconvError):
    """The server could not be reached (refused, reset, DNS)."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the configured timeout."""


class APIError(MxconvError):
    """The server answered with an error status; carries its code, message and request id."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str = "",
        details: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(
            f"{status_code} {code}: {message}" + (f" [request {request_id}]" if request_id else "")
        )
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = details or []
        self.request_id = request_id


class BadRequestError(APIError):
    """400: the body is not well-formed."""


class AuthenticationError(APIError):
    """401: missing or wrong API key."""


class NotFoundError(APIError):
    """404: no such resource."""


class ConflictError(APIError):
    """409: the resource is in a state that forbids this."""


class PayloadTooLargeError(APIError):
    """413: the body, or the work it asks for, is over a server limit."""


class UnsupportedMediaTypeError(APIError):
    """415: the body's content type is not accepted here."""


class ValidationError(APIError):
    """422: the body parses but is invalid; ``details`` holds the field locations."""


class RateLimitError(APIError):
    """429: too many requests or jobs; retry later."""


class ServerError(APIError):
    """5xx: a fault on the server side."""


class ServiceUnavailableError(ServerError):
    """503: the service is temporarily unable to serve."""


class DeadlineExceededError(ServerError):
    """504: the work ran past the server's time limit (MXCONV_MAX_REQUEST_SECONDS) and was
    stopped. Never retried: it would run as long again. Ask for less work."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: DeadlineExceededError,
}


def error_class_for(status_code: int) -> type[APIError]:
    """The exception class for an HTTP error status."""
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    return ServerError if status_code >= 500 else APIError
