"""What a view reads and answers besides JSON: the one descriptor the plumbing reads.

Views under /v1 (and /v2) carry one, set with :func:`describe` (JSON in, JSON out by default).
The middleware reads :attr:`ViewIO.accepts` to refuse other request types (415) and to turn a
multipart tensor body into the dict a JSON body gives; content negotiation reads
:attr:`ViewIO.produces` (406 for an ``Accept`` the view cannot answer); the OpenAPI additions
(:mod:`.openapi`) read both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import g, request

JSON = "application/json"
NPY = "application/x-npy"
MULTIPART = "multipart/form-data"
OCTET = "application/octet-stream"
PNG = "image/png"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ViewIO:
    #: Request media types taken besides JSON.
    accepts: frozenset[str] = frozenset()
    #: What a 200 can be, in order of preference (the first answers ``Accept: */*``). Errors
    #: are always JSON.
    produces: tuple[str, ...] = (JSON,)
    #: Multipart bodies carry ``.npy`` tensor parts and a JSON ``params`` part, and a single
    #: tensor result can be answered as a ``.npy`` body (NPY is then among ``produces``).
    tensors: bool = False
    #: The view reads the buffered body itself (the /v2 inference protocol: a JSON header, then
    #: binary tensors); the middleware parses nothing, and a missing Content-Type is no 415
    #: (tritonclient sends none).
    raw: bool = False
    #: A request header giving the offset in the body where tensor bytes start (/v2's
    #: Inference-Header-Content-Length): the body is placed in memory so that they are aligned.
    align_header: str = ""


TENSOR_IO = ViewIO(accepts=frozenset({MULTIPART}), produces=(JSON, NPY), tensors=True)
PLAIN = ViewIO()


def describe(io: ViewIO) -> Callable[[F], F]:
    def mark(view: F) -> F:
        view.mxconv_io = io  # type: ignore[attr-defined]
        return view

    return mark


def of(view: Any) -> ViewIO:
    return getattr(view, "mxconv_io", PLAIN)


def negotiated(io: ViewIO) -> str | None:
    """The media type to answer this request with, or None when ``Accept`` allows none of
    them (a 406). Cached per request: it is asked more than once."""
    if "mxconv_answer" not in g:
        offers = list(io.produces)
        best = request.accept_mimetypes.best_match(offers) if request.accept_mimetypes else offers[0]
        g.mxconv_answer = best
    return g.mxconv_answer  # type: ignore[no-any-return]


def wants_npy(io: ViewIO) -> bool:
    return negotiated(io) == NPY
