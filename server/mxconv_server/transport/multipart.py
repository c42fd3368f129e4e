"""Reading ``multipart/form-data`` bodies (RFC 7578) whose parts are ``.npy`` tensors and a
JSON ``params`` part, without copying the tensors' bytes."""

from __future__ import annotations

import functools
import math

from mxconv.wire import TensorDecodeError
from mxconv.wire.npy import MAGIC, header_text, plain_header

#: Most parts a multipart body may have (Flask's MAX_FORM_PARTS default).
MAX_MULTIPART_PARTS = 1000


class MultipartPart:
    """One part of a multipart body: its name, filename (None for a text field), content type
    and data, a memoryview into the body (no copy)."""

    __slots__ = ("name", "filename", "content_type", "data")

    def __init__(self, name: str, filename: str | None, content_type: str, data: memoryview) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.data = data


#: Parts longer than this are checked for a ``.npy`` file before the boundary is searched for.
_NPY_SKIP_MIN_BYTES = 1 << 20


def _npy_part_end(body: bytes, start: int, closing: bytes) -> int:
    """Where a part holding a large ``.npy`` file ends, read from the file's own header: its
    length, if the delimiter is right there; -1 for anything else (a small or non-``.npy``
    part, a header that is not plain, a length that does not match), which is searched for.

    Searching scanned every byte of the tensor data for the boundary: 0.6 ms of a 6.4 MB body
    (measured). A boundary inside the data would make the body malformed anyway: senders
    choose one that does not occur in it."""
    if len(body) - start < _NPY_SKIP_MIN_BYTES or body[start : start + 6] != MAGIC:
        return -1
    view = memoryview(body)[start:]
    try:
        text, header_end = header_text(view)
    except TensorDecodeError:
        return -1
    fields = plain_header(text)
    if fields is None:
        return -1
    shape, _, dtype = fields
    if any(d < 0 for d in shape):  # a negative length would point back into the body
        return -1
    end = start + header_end + math.prod(shape) * dtype.itemsize
    return end if body[end : end + len(closing)] == closing else -1


def _part_headers(raw: bytes) -> tuple[str | None, str | None, str]:
    """``(name, filename, content type)`` from a part's header lines. Clients send the same few
    header blocks again and again, and the email parser takes ~50 us a part, so blocks of up
    to 1 KiB are cached (bounded: a cache of huge blocks would hold memory)."""
    return _part_headers_cached(raw) if len(raw) <= 1024 else _parse_part_headers(raw)


def _parse_part_headers(raw: bytes) -> tuple[str | None, str | None, str]:
    from email.message import Message

    headers = Message()
    for line in raw.split(b"\r\n"):
        key, sep, value = line.decode("utf-8", "replace").partition(":")
        if sep:
            headers[key.strip()] = value.strip()
    disposition = dict(headers.get_params(header="content-disposition") or ())  # parsed once
    name, filename = disposition.get("name"), disposition.get("filename")
    content_type = headers.get_content_type() if "content-type" in headers else "text/plain"
    return (
        name if isinstance(name, str) and name else None,
        filename if isinstance(filename, str) else None,
        content_type,
    )


_part_headers_cached = functools.lru_cache(maxsize=256)(_parse_part_headers)


def decode_multipart(body: bytes, boundary: str) -> list[MultipartPart]:
    """Split a ``multipart/form-data`` body (RFC 7578) into its parts, each a view of ``body``.

    The whole body is in memory already (its size is capped before it is read), so one
    ``bytes.find`` per part beats a streaming parser fed in small pieces, and the ``.npy`` parts
    reach ``np.frombuffer`` without being copied.
    """
    if not boundary or len(boundary) > 200:
        raise TensorDecodeError("multipart body: missing or invalid boundary in Content-Type")
    delim = b"--" + boundary.encode("latin-1")
    view = memoryview(body)
    pos = body.find(delim)
    if pos < 0:
        raise TensorDecodeError("multipart body: the boundary from Content-Type never occurs in it")
    parts: list[MultipartPart] = []
    while True:
        pos += len(delim)
        if body[pos : pos + 2] == b"--":
            return parts  # the close delimiter; anything after it is epilogue
        line_end = body.find(b"\r\n", pos)
        head_end = body.find(b"\r\n\r\n", line_end) if line_end >= 0 else -1
        if head_end < 0:
            raise TensorDecodeError("multipart body: a part's headers do not end (no blank line)")
        data_end = _npy_part_end(body, head_end + 4, b"\r\n" + delim)
        if data_end < 0:
            data_end = body.find(b"\r\n" + delim, head_end + 4)
        if data_end < 0:
            raise TensorDecodeError("multipart body is truncated: a part has no closing boundary")
        name, filename, content_type = _part_headers(bytes(body[line_end + 2 : head_end]))
        if not name:
            raise TensorDecodeError(
                'multipart body: a part has no Content-Disposition name (form-data; name="x")'
            )
        parts.append(MultipartPart(name, filename, content_type, view[head_end + 4 : data_end]))
        if len(parts) > MAX_MULTIPART_PARTS:
            raise TensorDecodeError(f"multipart body has more than {MAX_MULTIPART_PARTS} parts")
        pos = data_end + 2
