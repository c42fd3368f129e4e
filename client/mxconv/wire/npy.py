"""The ``.npy`` form: one tensor as the bytes ``numpy.save`` writes (float32 or float64 only,
never pickled), and the ``application/x-npy`` media type of a body that is one; a ``.npz``
archive of them is read member by member the same way."""

from __future__ import annotations

import ast
import functools
import io
import math
import zipfile
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from . import DTYPES, MAX_RANK, TensorDecodeError, wire_dtype

#: The media type of one tensor as a NumPy ``.npy`` file; ``Accept`` it to get outputs so.
NPY_MEDIA_TYPE = "application/x-npy"
#: ``.npy`` header dtype strings mxconv accepts, and the wire dtype each one becomes. Explicit,
#: so no other dtype, and never an object (pickled) array, is ever interpreted.
NPY_DTYPES: dict[str, np.dtype[Any]] = {
    order + dt.str[1:]: dt  # big-endian ones (written on such a machine) are byte-swapped on load
    for dt in DTYPES.values()
    for order in "<>"
}
MAGIC = b"\x93NUMPY"
#: numpy's own .npy header reader and writer (untyped, hence Any).
_npy_format: Any = np.lib.format
_NPY_MAX_HEADER = 10_000


def npy_header(arr: npt.NDArray[Any], offset: int = 0) -> bytes:
    """The ``.npy`` (version 1.0) header for a C-ordered ``arr``, padded (with spaces, as numpy
    pads) so that the data starts at a multiple of 64 bytes counted from ``offset`` bytes
    before the header: inside a multipart body, the array's bytes stay aligned, and the server
    can hand them to MXNet without copying them first."""
    fields = f"{{'descr': {arr.dtype.str!r}, 'fortran_order': False, 'shape': {tuple(arr.shape)!r}, }}"
    unpadded = len(MAGIC) + 4 + len(fields) + 1  # magic, version, length, dict, newline
    header = fields + " " * (-(offset + unpadded) % 64) + "\n"
    return MAGIC + b"\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin-1")


def _npy_wire(arr: npt.ArrayLike) -> npt.NDArray[Any]:
    a = np.asarray(arr)
    return np.ascontiguousarray(a, dtype=wire_dtype(a.dtype.name))


def npy_parts(arr: npt.ArrayLike, offset: int = 0) -> tuple[bytes, memoryview]:
    """``(header, data)`` of ``arr`` as a ``.npy`` file, the data without a copy where the array is
    already C-ordered little-endian float32/float64. ``b"".join`` them for one file; ``offset``
    is where the file starts in what it is joined into (see :func:`npy_header`)."""
    data = _npy_wire(arr)
    return npy_header(data, offset), memoryview(data).cast("B")  # type: ignore[arg-type]


def to_npy(arr: npt.ArrayLike) -> bytes:
    """``arr`` as the bytes of a ``.npy`` file (what ``numpy.save`` writes, version 1.0)."""
    return b"".join(npy_parts(arr))


@functools.lru_cache(maxsize=256)
def plain_header(text: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]] | None:
    """``(shape, fortran_order, dtype)`` from a header as numpy writes it, or None.

    numpy's reader first runs every version 1 and 2 header through ``tokenize`` to rewrite
    Python 2's long literals (``10L``): 75 us of the 80 it takes per tensor (measured), a fifth
    of a small binary request. A header numpy writes today is a plain dict literal; anything
    else (a Python 2 header, a malformed one) is left to numpy's reader. Cached: the same
    shapes come again and again (and a large part's header is read twice, see
    :func:`_npy_part_end`); headers are at most ~10 KB, so 256 of them stay small."""
    try:
        fields = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        return None
    shape, fortran = fields["shape"], fields["fortran_order"]
    if not isinstance(fortran, bool) or not isinstance(shape, tuple):
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        return None
    try:
        dtype = _npy_format.descr_to_dtype(fields["descr"])
    except (TypeError, ValueError):
        return None
    return shape, fortran, dtype


def header_text(view: memoryview) -> tuple[str, int]:
    """The header of the ``.npy`` file at the start of ``view``, as text, and where it ends."""
    if len(view) < 10 or bytes(view[:6]) != MAGIC:
        raise TensorDecodeError("not a .npy file (it must start with \\x93NUMPY); write it with numpy.save")
    major = view[6]
    if major == 1:
        header_end = 10 + int.from_bytes(view[8:10], "little")
    elif major in (2, 3):
        header_end = 12 + int.from_bytes(view[8:12], "little")
    else:
        raise TensorDecodeError(f".npy format version {major}.{view[7]} is not supported; use numpy.save")
    if header_end > min(len(view), _NPY_MAX_HEADER + 12):
        raise TensorDecodeError(".npy header is truncated or too long")
    encoding = "utf-8" if major == 3 else "latin-1"
    try:
        return bytes(view[10 if major == 1 else 12 : header_end]).decode(encoding), header_end
    except UnicodeDecodeError as e:
        reason = f"{e.reason} at byte {e.start}"
        raise TensorDecodeError(f".npy header is not valid {encoding}: {reason}") from None


def from_npy(data: bytes | bytearray | memoryview) -> npt.NDArray[Any]:
    """The bytes of a ``.npy`` file to an array, refusing anything but float32/float64.

    Equivalent to ``np.load(..., allow_pickle=False)`` on a dtype whitelist, without its copy:
    numpy's own parser reads the header, then the array is a view of ``data`` (read-only when
    ``data`` is). An object dtype, which ``np.load`` would need pickle for, is refused before
    a byte of the data is looked at.
    """
    view = memoryview(data).cast("B")
    text, header_end = header_text(view)
    fields = plain_header(text)
    if fields is not None:
        shape, fortran, dtype = fields
    else:  # anything unusual gets numpy's own reader, and its error message
        fp = io.BytesIO(bytes(view[:header_end]))
        try:
            version = _npy_format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = _npy_format.read_array_header_1_0(fp)
            else:
                shape, fortran, dtype = _npy_format.read_array_header_2_0(fp)
        except (ValueError, SyntaxError, TypeError) as e:
            raise TensorDecodeError(f"cannot read the .npy header: {e}") from None
    if dtype.hasobject:
        raise TensorDecodeError(
            "the .npy file holds Python objects (a pickled array); mxconv never unpickles. "
            "Save a numeric array: numpy.save(f, a.astype(numpy.float32))"
        )
    wire = NPY_DTYPES.get(dtype.str)
    if wire is None:
        raise TensorDecodeError(
            f".npy dtype {dtype.str!r} ({dtype.name}) is not supported; save it as float32 or float64, "
            "e.g. numpy.save(f, a.astype(numpy.float32))"
        )
    if any(isinstance(d, bool) for d in shape):  # numpy's reader lets (True, 6) through
        raise TensorDecodeError(f".npy shape {list(shape)}: dimensions must be integers")
    if len(shape) == 0 or any(d < 1 for d in shape):
        raise TensorDecodeError(f".npy shape {list(shape)}: need at least one dimension, each at least 1")
    if len(shape) > MAX_RANK:
        raise TensorDecodeError(f".npy shape {list(shape)}: rank {len(shape)} is over {MAX_RANK}")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: a huge shape cannot wrap around
    payload = view[header_end:]
    if len(payload) != nbytes:
        raise TensorDecodeError(
            f".npy data holds {len(payload)} bytes, but shape {list(shape)} of {dtype.name} needs {nbytes}"
        )
    arr = np.frombuffer(payload, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if arr.dtype != wire or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=wire)  # byte swap or Fortran order: one copy
    return arr


#: A ``.npz`` file is a zip archive; its members are ``.npy`` files.
NPZ_MAGIC = b"PK\x03\x04"


def from_npz(data: bytes | bytearray | memoryview, max_bytes: int) -> dict[str, npt.NDArray[Any]]:
    """The arrays of a ``.npz`` file (``numpy.savez``) by name, each read by :func:`from_npy`
    (float32/float64 only, never unpickled). Its members may unpack to ``max_bytes`` in all:
    each is read only that far, whatever its zip header claims, so a small archive cannot
    expand into a huge one."""
    out: dict[str, npt.NDArray[Any]] = {}
    left = max_bytes
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy") or not name.isidentifier():
                    raise TensorDecodeError(
                        f".npz member {info.filename!r}: expected NAME.npy files, as numpy.savez writes"
                    )
                with archive.open(info) as member:
                    raw = member.read(left + 1)
                if len(raw) > left:
                    raise TensorDecodeError(f".npz unpacks to more than {max_bytes} bytes, the body limit")
                left -= len(raw)
                try:
                    out[name] = from_npy(raw)
                except TensorDecodeError as e:
                    raise TensorDecodeError(f".npz member {info.filename!r}: {e}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as e:
        raise TensorDecodeError(f"not a readable .npz file: {e}") from None
    if not out:
        raise TensorDecodeError(".npz holds no arrays")
    return out
