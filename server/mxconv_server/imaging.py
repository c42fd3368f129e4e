"""PNG and JPEG in and out, with Pillow. No MXNet and no Flask here.

Refusals, each an ApiError with the service's error shape:

* not PNG or JPEG (by the file's magic bytes, whatever the Content-Type said): 415;
* more pixels than MXCONV_MAX_IMAGE_PIXELS, judged from the header before any pixel is
  decoded, or anything Pillow flags as a decompression bomb: 413;
* a PNG or JPEG that is truncated or corrupt: 422 (``invalid_image``).
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from .errors import ApiError

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))


@dataclass(frozen=True)
class Decoded:
    pixels: npt.NDArray[np.float32]  # (C, H, W), 0-255
    format: str  # PNG or JPEG
    mode: str  # the decoded image's Pillow mode, before conversion


def sniff(data: bytes) -> str | None:
    """PNG, JPEG or None, from the first bytes."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def _invalid(fmt: str, reason: object) -> ApiError:
    return ApiError(
        422,
        f"the {fmt} image cannot be decoded ({reason}); it may be truncated or corrupt",
        code="invalid_image",
    )


def _too_large(message: str) -> ApiError:
    return ApiError(413, message, code="image_too_large")


def decode(
    data: bytes, *, max_pixels: int, max_elements: int | None = None, grayscale: bool = False
) -> Decoded:
    """Bytes to (C, H, W) float32 pixels: 1 channel for greyscale, 3 for colour.

    Transparency is dropped; palette images become RGB; 16-bit greyscale is scaled to 0-255.
    Both limits are checked from the header, before any pixel is decoded: ``max_pixels``
    (width x height) and ``max_elements`` (channels x width x height, as a tensor).
    """
    if not data:
        raise ApiError(400, "the request holds no image; send a PNG or JPEG")
    fmt = sniff(data)
    if fmt is None:
        raise ApiError(
            415,
            "the image is neither PNG nor JPEG (judged by its first bytes); convert it to PNG or JPEG",
        )
    with warnings.catch_warnings():
        # The first line is our own check of the header against max_pixels, below. Pillow's
        # guard stays on as the second: it raises DecompressionBombError above twice
        # Image.MAX_IMAGE_PIXELS (about 179 MP); its warning above 1x is left to our check.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=[fmt])
            w, h = img.size
            if w * h > max_pixels:
                raise _too_large(
                    f"the image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} "
                    "(MXCONV_MAX_IMAGE_PIXELS); scale it down"
                )
            channels = 3 if _target(img, grayscale) == "RGB" else 1
            if max_elements is not None and channels * w * h > max_elements:
                raise _too_large(
                    f"the image is {w}x{h} with {channels} channels = {channels * w * h} values, over "
                    f"the limit of {max_elements} (MXCONV_MAX_TENSOR_ELEMENTS); scale it down or "
                    "ask for grayscale"
                )
            img.load()
        except ApiError:
            raise
        except Image.DecompressionBombError as e:
            raise _too_large(f"refused as a possible decompression bomb: {e}") from None
        except ValueError as e:
            # Pillow's PngImagePlugin caps decompressed text chunks (MAX_TEXT_CHUNK).
            if "Decompressed" in str(e) or "too large" in str(e).lower():
                raise _too_large(f"refused as a possible decompression bomb: {e}") from None
            raise _invalid(fmt, e) from None
        except UnidentifiedImageError:
            raise _invalid(fmt, "its header is not readable") from None
        except (OSError, SyntaxError, EOFError, zlib.error) as e:
            raise _invalid(fmt, e) from None
    return Decoded(pixels=_to_channels(img, grayscale), format=fmt, mode=img.mode)


def _target(img: Image.Image, grayscale: bool) -> str:
    """What the image becomes: I16 (16-bit grey), F, L or RGB. Reads the header only."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return "I16"
    if img.mode == "F":
        return "F"
    if grayscale or img.mode in ("1", "L", "LA", "La"):
        return "L"
    if img.mode == "P" and img.palette is not None and img.palette.mode in ("L", "LA"):
        return "L"
    return "RGB"


def _to_channels(img: Image.Image, grayscale: bool) -> npt.NDArray[np.float32]:
    target = _target(img, grayscale)
    if target == "I16":
        arr = np.asarray(img, dtype=np.float32) * (255.0 / 65535.0)
        return arr[np.newaxis]
    if target == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0, 255)[np.newaxis]
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    img = img.convert(target)  # from RGBA/LA this drops the alpha, keeping the colour under it
    arr = np.asarray(img, dtype=np.float32)
    return arr[np.newaxis] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """(C, H, W) uint8 to PNG: 1 channel L, 2 LA, 3 RGB, 4 RGBA."""
    c = pixels.shape[0]
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(c)
    if mode is None:
        raise ApiError(422, f"a PNG holds 1 to 4 channels; this output has {c}; ask for JSON instead")
    arr = pixels[0] if c == 1 else pixels.transpose(1, 2, 0)
    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))
    if img.mode != mode:
        raise AssertionError(f"Pillow read {c} channels as {img.mode}, expected {mode}")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
