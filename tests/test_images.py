"""/v1/images/filter and /v1/kernels against the plain-numpy oracle, and the bad-image table.

The expected kernels are written out here from their textbook definitions, not read from
the server, and the expected outputs come from tests/oracle.py's loops on the pixels Pillow
decodes: the service must agree with both.
"""

from __future__ import annotations

import io
import math
import struct
import time
import zlib

import numpy as np
import pytest
from mxconv_server.app import create_app
from PIL import Image

from . import oracle


def _gaussian(sigma: float, size: int | None = None) -> np.ndarray:
    n = size or 2 * math.ceil(3 * sigma) + 1
    r = np.arange(n) - (n - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


#: name, query params, the kernel by definition, the default 0-255 mapping
PRESETS = [
    ("identity", {}, np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]]), "clip"),
    ("box", {}, np.full((3, 3), 1 / 9), "clip"),
    ("box", {"size": 5}, np.full((5, 5), 1 / 25), "clip"),
    ("gaussian", {}, _gaussian(1.0), "clip"),
    ("gaussian", {"sigma": 0.8, "size": 5}, _gaussian(0.8, 5), "clip"),
    ("sharpen", {}, np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]), "clip"),
    ("edge-horizontal", {}, np.array([[1, -1]]), "abs"),
    ("edge-vertical", {}, np.array([[1], [-1]]), "abs"),
    ("sobel-x", {}, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), "abs"),
    ("sobel-y", {}, np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]), "abs"),
    ("laplacian", {}, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]), "abs"),
    ("emboss", {}, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]), "clip"),
]


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    """(C, H, W) float pixels as Pillow decodes them, alpha dropped."""
    img = Image.open(io.BytesIO(data))
    img = img.convert("L" if img.mode in ("L", "LA") else "RGB")
    arr = np.asarray(img, dtype=np.float64)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def same_pads(kh: int, kw: int) -> tuple[int, int, int, int]:
    """'same' for cross-correlation: the extra row/column of an even kernel goes bottom/right."""
    return ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2)


def expected(
    pixels: np.ndarray,
    kernel: np.ndarray,
    *,
    pads: tuple[int, int, int, int],
    mode: str = "replicate",
    stride: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Each channel through the oracle's loops: (C, Ho, Wo)."""
    c = pixels.shape[0]
    y = oracle.conv2d(pixels[:, None], kernel[None, None], pads=pads, padding_mode=mode, stride=stride)
    return y.reshape(c, y.shape[-2], y.shape[-1])


def to_uint8(y: np.ndarray, mapping: str) -> np.ndarray:
    if mapping == "abs":
        y = np.abs(y)
    elif mapping == "minmax":
        y = (y - y.min()) * 255 / (y.max() - y.min()) if y.max() > y.min() else np.zeros_like(y)
    return np.clip(np.floor(y + 0.5), 0, 255)


def hwc(y: np.ndarray) -> np.ndarray:
    return y[0] if y.shape[0] == 1 else y.transpose(1, 2, 0)


@pytest.fixture(scope="module")
def api():
    return create_app({}).test_client()


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, size=(13, 17, 3))


def filter_json(api, data: bytes, content_type: str = "image/png", **params):
    resp = api.post(
        "/v1/images/filter",
        query_string=params,
        data=data,
        content_type=content_type,
        headers={"Accept": "application/json"},
    )
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def filter_png(api, data: bytes, content_type: str = "image/png", **params) -> np.ndarray:
    resp = api.post("/v1/images/filter", query_string=params, data=data, content_type=content_type)
    assert resp.status_code == 200, resp.get_json()
    assert resp.mimetype == "image/png"
    return decoded(resp.data)


PRESET_IDS = [name + "".join(f"-{k}{v}" for k, v in params.items()) for name, params, _, _ in PRESETS]


@pytest.mark.parametrize(("name", "params", "kernel", "mapping"), PRESETS, ids=PRESET_IDS)
def test_each_preset_agrees_with_the_oracle(api, rgb, name, params, kernel, mapping) -> None:
    data = png(rgb)
    pixels = decoded(data)
    want = expected(pixels, kernel, pads=same_pads(*kernel.shape))

    body = filter_json(api, data, kernel=name, **params)
    np.testing.assert_allclose(body["kernel"], kernel, rtol=1e-9, atol=1e-12)
    assert body["mapping"] == mapping and body["shape"] == [13, 17, 3]
    np.testing.assert_allclose(np.asarray(body["y"]), hwc(want), rtol=1e-5, atol=2e-3)

    got = filter_png(api, data, kernel=name, **params)
    diff = np.abs(got - to_uint8(want, mapping))
    assert diff.max() <= 1  # float32 vs float64 may round a .5 either way
    assert (diff == 0).mean() > 0.99


def test_presets_on_greyscale_and_jpeg(api) -> None:
    gray = np.random.default_rng(6).integers(0, 256, size=(20, 24))
    data = jpeg(np.stack([gray, 255 - gray, gray // 2], axis=-1))
    pixels = decoded(data)  # compare on what the JPEG decodes to, not on what was encoded
    for name, params, kernel, _mapping in PRESETS:
        body = filter_json(api, data, content_type="image/jpeg", kernel=name, **params)
        want = expected(pixels, kernel, pads=same_pads(*kernel.shape))
        np.testing.assert_allclose(np.asarray(body["y"]), hwc(want), rtol=1e-5, atol=2e-3, err_msg=name)
    body = filter_json(api, png(gray), kernel="sobel-y")
    assert body["shape"] == [20, 24]
    want = expected(gray[None].astype(float), PRESETS[9][2], pads=(1, 1, 1, 1))
    np.testing.assert_allclose(body["y"], want[0], atol=2e-3)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular", "symmetric"])
@pytest.mark.parametrize(
    ("padding", "pads", "stride"),
    [
        ("valid", (0, 0, 0, 0), (1, 1)),
        ("full", (2, 2, 1, 1), (1, 1)),
        ("[1,0,2,1]", (1, 0, 2, 1), (1, 1)),
        ("1", (1, 1, 1, 1), (2, 3)),
        ("same", (1, 1, 0, 1), (2, 3)),  # "same" pads as for stride 1, then subsamples
    ],
)
def test_custom_kernel_padding_modes_and_stride(api, rgb, mode, padding, pads, stride) -> None:
    kernel = np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
    data = png(rgb)
    params = {"kernel": "[[0.5,-1],[2,0.25],[-0.75,1.5]]", "padding": padding, "padding_mode": mode}
    params["stride"] = f"[{stride[0]},{stride[1]}]"
    body = filter_json(api, data, **params)
    want = expected(decoded(data), kernel, pads=pads, mode=mode, stride=stride)
    np.testing.assert_allclose(np.asarray(body["y"]), hwc(want), rtol=1e-5, atol=2e-3)
    for mapping in ("clip", "minmax", "abs"):
        got = filter_png(api, data, mapping=mapping, **params)
        assert np.abs(got - to_uint8(want, mapping)).max() <= 1, mapping


def test_seed_edge_map(api) -> None:
    stripes = np.full((6, 6), 255)
    stripes[:, 2:4] = 0
    body = filter_json(api, png(stripes), kernel="[[1,-1]]", padding="valid")
    np.testing.assert_array_equal(body["y"], np.tile([0, 255, 0, -255, 0], (6, 1)))
    edges = filter_png(api, png(stripes), kernel="edge")  # alias; same padding, abs mapping
    np.testing.assert_array_equal(edges[0], np.tile([0, 255, 0, 255, 0, 0], (6, 1)))


def test_multipart_raw_and_json_bodies_agree(api, rgb) -> None:
    data = png(rgb)
    raw = filter_json(api, data, kernel="sobel-x", padding_mode="reflect")
    multi = api.post(
        "/v1/images/filter",
        data={"image": (io.BytesIO(data), "in.png"), "kernel": "sobel-x", "padding_mode": "reflect"},
        content_type="multipart/form-data",
        headers={"Accept": "application/json"},
    )
    assert multi.status_code == 200, multi.get_json()
    as_json = api.post(
        "/v1/images/filter",
        json={"image": rgb.tolist(), "kernel": "sobel-x", "padding_mode": "reflect"},
        headers={"Accept": "application/json"},
    )
    assert as_json.status_code == 200, as_json.get_json()
    np.testing.assert_array_equal(raw["y"], multi.get_json()["y"])
    np.testing.assert_allclose(raw["y"], as_json.get_json()["y"], atol=1e-3)
    png_multi = api.post(
        "/v1/images/filter",
        data={"image": (io.BytesIO(data), "in.png"), "kernel": "sobel-x"},
        content_type="multipart/form-data",
    )
    assert png_multi.mimetype == "image/png" and png_multi.headers["X-Mxconv-Mapping"] == "abs"


def test_grayscale_and_transparency(api, rgb) -> None:
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7)], axis=-1)  # nearly transparent
    body = filter_json(api, png(rgba), kernel="identity")
    np.testing.assert_allclose(body["y"], rgb, atol=1e-3)  # alpha dropped, colour kept
    body = filter_json(api, png(rgb), kernel="identity", grayscale="true")
    want = np.asarray(Image.fromarray(rgb.astype(np.uint8)).convert("L"), dtype=float)
    assert body["shape"] == [13, 17]
    np.testing.assert_allclose(body["y"], want, atol=1e-3)


def test_base64_output(api, rgb) -> None:
    body = filter_json(api, png(rgb), kernel="box", output_encoding="base64")
    assert body["y"]["dtype"] == "float32" and body["y"]["shape"] == [13, 17, 3]


def test_kernels_lists_every_preset_with_its_matrix(api) -> None:
    resp = api.get("/v1/kernels")
    assert resp.status_code == 200
    listed = {p["name"]: p for p in resp.get_json()["presets"]}
    for name, params, kernel, mapping in PRESETS:
        if not params:
            np.testing.assert_allclose(listed[name]["matrix"], kernel, atol=1e-12)
            assert listed[name]["mapping"] == mapping
    assert listed["gaussian"]["params"] == ["size", "sigma"]
    one = api.get("/v1/kernels/gaussian?sigma=0.8&size=5").get_json()
    np.testing.assert_allclose(one["matrix"], _gaussian(0.8, 5), atol=1e-12)
    assert api.get("/v1/kernels/edge").get_json()["matrix"] == [[1.0, -1.0]]
    assert api.get("/v1/kernels/nope").status_code == 404


# -- bad images ------------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height but holds one tiny IDAT: what a bomb's header looks like."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def bomb_png(side: int) -> bytes:
    """A real side x side all-black PNG: tiny on the wire, side*side bytes decoded."""
    return png(np.zeros((side, side), dtype=np.uint8))


def bmp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="BMP")
    return buf.getvalue()


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="GIF")
    return buf.getvalue()


GOOD_PNG = png(np.random.default_rng(7).integers(0, 256, size=(40, 40, 3)))
GOOD_JPEG = jpeg(np.random.default_rng(7).integers(0, 256, size=(40, 40, 3)))


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (GOOD_PNG[: len(GOOD_PNG) // 2], "image/png", 422, "invalid_image"),  # truncated PNG
        (GOOD_JPEG[: len(GOOD_JPEG) // 2], "image/jpeg", 422, "invalid_image"),  # truncated JPEG
        (GOOD_PNG[:30], "image/png", 422, "invalid_image"),  # cut inside the header
        (GOOD_PNG[:8] + b"\0" * 200, "image/png", 422, "invalid_image"),  # PNG magic, garbage
        (png_header_only(100_000, 100_000), "image/png", 413, "image_too_large"),  # 10^10 pixels
        (png_header_only(5000, 5000), "image/png", 413, "image_too_large"),  # over the limit
        (bomb_png(4200), "image/png", 413, "image_too_large"),  # real bomb: 17.6 MP, ~20 kB
        (gif(), "image/png", 415, "unsupported_media_type"),  # says PNG, is GIF
        (bmp(), "image/jpeg", 415, "unsupported_media_type"),
        (gif(), "image/gif", 415, "unsupported_media_type"),  # type not accepted at all
        (GOOD_PNG, "text/plain", 415, "unsupported_media_type"),
        (GOOD_PNG, "application/octet-stream", 415, "unsupported_media_type"),
        (b"", "image/png", 400, "malformed_body"),
    ],
    ids=[
        "truncated-png",
        "truncated-jpeg",
        "truncated-header",
        "garbage-after-magic",
        "huge-dimensions",
        "over-max-pixels",
        "decompression-bomb",
        "gif-as-png",
        "bmp-as-jpeg",
        "gif",
        "text",
        "octet-stream",
        "empty",
    ],
)
def test_bad_images(api, data: bytes, content_type: str, status: int, code: str) -> None:
    started = time.perf_counter()
    resp = api.post("/v1/images/filter", data=data, content_type=content_type)
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert time.perf_counter() - started < 2  # refused from the header, never decoded


def test_bad_image_in_multipart(api) -> None:
    resp = api.post(
        "/v1/images/filter",
        data={"image": (io.BytesIO(bmp()), "x.bmp")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 415
    resp = api.post("/v1/images/filter", data={"kernel": "box"}, content_type="multipart/form-data")
    assert resp.status_code == 400 and "image" in resp.get_json()["error"]["message"]


def test_max_image_pixels_setting(tmp_path) -> None:
    small = create_app({"max_image_pixels": 100}).test_client()
    resp = small.post("/v1/images/filter", data=png(np.zeros((10, 11))), content_type="image/png")
    assert resp.status_code == 413 and "MXCONV_MAX_IMAGE_PIXELS" in resp.get_json()["error"]["message"]
    assert (
        small.post("/v1/images/filter", data=png(np.zeros((10, 10))), content_type="image/png").status_code
        == 200
    )
    resp = small.post("/v1/images/filter", json={"image": np.zeros((11, 10)).tolist()})
    assert resp.status_code == 413
    assert small.get("/v1/info").get_json()["limits"]["max_image_pixels"] == 100
    # A colour image counts 3 values a pixel against MXCONV_MAX_TENSOR_ELEMENTS, checked
    # from the header; greyscale counts 1.
    tight = create_app({"max_tensor_elements": 300}).test_client()
    colour = png(np.zeros((10, 11, 3)))
    resp = tight.post("/v1/images/filter", data=colour, content_type="image/png")
    assert resp.status_code == 413 and "MXCONV_MAX_TENSOR_ELEMENTS" in resp.get_json()["error"]["message"]
    resp = tight.post("/v1/images/filter?grayscale=true", data=colour, content_type="image/png")
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kernel": "blurry"}, "kernel"),
        ({"kernel": "[[1,-1]"}, "kernel"),  # not JSON
        ({"kernel": "[[1,NaN]]"}, "kernel"),
        ({"kernel": "[[1,2],[3]]"}, "kernel"),  # ragged
        ({"kernel": "[[" + ",".join(["1"] * 65) + "]]"}, "kernel"),
        ({"kernel": "sharpen", "size": "5"}, "size"),
        ({"kernel": "box", "size": "4"}, "size"),
        ({"kernel": "gaussian", "sigma": "0"}, "sigma"),
        ({"kernel": "[[1]]", "sigma": "2"}, "sigma"),
        ({"kernel": "[[1,1,1,1,1,1,1,1,1,1,1]]", "padding": "valid"}, "weight"),  # wider than 10 px
        ({"padding": "[1,2,3]"}, "padding"),
        ({"padding_mode": "mirror"}, "padding_mode"),
        ({"stride": "0"}, "stride"),
        ({"mapping": "log"}, "mapping"),
        ({"kernal": "box"}, "kernal"),  # a typo is an error, not ignored
    ],
)
def test_bad_options_are_422_naming_the_field(api, params: dict, field: str) -> None:
    resp = api.post(
        "/v1/images/filter", query_string=params, data=png(np.zeros((10, 10))), content_type="image/png"
    )
    assert resp.status_code == 422, resp.get_json()
    body = resp.get_json()["error"]
    assert field in body["message"] or any(field in d["loc"] for d in body["details"]), body


def test_json_image_shape_errors(api) -> None:
    resp = api.post("/v1/images/filter", json={"image": np.zeros((2, 3, 3, 3)).tolist()})
    assert resp.status_code == 422
    resp = api.post("/v1/images/filter", json={"image": np.zeros((4, 4, 5)).tolist()})
    assert resp.status_code == 422 and "image" in resp.get_json()["error"]["message"]


def test_playground_is_public_and_api_needs_key(tmp_path) -> None:
    keyed = create_app({"api_keys": "s3cret"}).test_client()
    page = keyed.get("/")
    assert page.status_code == 200 and b"mxconv playground" in page.data
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for asset in ("/playground/playground.js", "/playground/playground.css"):
        assert keyed.get(asset).status_code == 200
    assert keyed.get("/v1/kernels").status_code == 401
    assert keyed.post("/v1/images/filter", data=GOOD_PNG, content_type="image/png").status_code == 401
    ok = keyed.get("/v1/kernels", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_page_loads_nothing_from_elsewhere(api) -> None:
    html = api.get("/").data.decode()
    js = api.get("/playground/playground.js").data.decode()
    for text in (html, js):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_openapi_documents_the_image_endpoints(api) -> None:
    spec = api.get("/openapi.json").get_json()
    op = spec["paths"]["/v1/images/filter"]["post"]
    assert set(op["requestBody"]["content"]) >= {"image/png", "image/jpeg", "multipart/form-data"}
    assert {p["name"] for p in op["parameters"]} >= {"kernel", "padding", "stride", "mapping"}
    assert "/v1/kernels" in spec["paths"]


@pytest.mark.parametrize("sigma", [1e-170, 5e-324])
def test_gaussian_of_a_tiny_sigma_is_the_identity_not_nan(client, sigma: float) -> None:
    """Found by fuzzing: sigma**2 underflowed and the matrix came back as nulls."""
    body = client.get(f"/v1/kernels/gaussian?size=3&sigma={sigma}").get_json()
    assert body["matrix"] == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
