"""The binary transport: .npy parts in, .npy out, on every compute endpoint, with JSON's limits."""

from __future__ import annotations

import io
import json

import mxconv
import numpy as np
import pytest
import requests
from mxconv import tensors
from mxconv.client import BINARY_MIN_ELEMENTS
from mxconv_server.app import create_app
from mxconv_server.transport import multipart

from . import oracle

NPY = "application/x-npy"


def npy(a: np.ndarray) -> bytes:
    """What numpy.save writes: the test builds files with numpy itself, not with mxconv."""
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def form(**parts: object) -> dict:
    """A werkzeug test-client multipart body: arrays as .npy file parts, the rest as params."""
    data: dict = {}
    params = {k: v for k, v in parts.items() if not isinstance(v, (np.ndarray, bytes))}
    for name, value in parts.items():
        if isinstance(value, np.ndarray):
            data[name] = (io.BytesIO(npy(value)), f"{name}.npy")
        elif isinstance(value, bytes):
            data[name] = (io.BytesIO(value), f"{name}.npy")
    if params:
        data["params"] = json.dumps(params)
    return data


def post(client, path: str, accept: str = "application/json", **parts: object):
    return client.post(
        path, data=form(**parts), content_type="multipart/form-data", headers={"Accept": accept}
    )


# -- the npy codec (client/mxconv/tensors.py) -------------------------------------------


@pytest.mark.parametrize("dtype", ["<f4", "<f8", ">f4", ">f8"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 3, 4, 5), (1, 1, 1, 1)])
def test_from_npy_reads_what_numpy_saves(dtype: str, shape: tuple[int, ...]) -> None:
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    b = tensors.from_npy(npy(a))
    assert b.dtype == np.dtype(dtype).newbyteorder("<") and b.shape == shape
    np.testing.assert_array_equal(b, a)


def test_from_npy_fortran_order_and_version_2() -> None:
    a = np.asfortranarray(np.arange(12, dtype="<f4").reshape(3, 4))
    np.testing.assert_array_equal(tensors.from_npy(npy(a)), a)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=(2, 0))
    np.testing.assert_array_equal(tensors.from_npy(buf.getvalue()), a)


def _npy_with_header(fields: str, data: bytes) -> bytes:
    """A version 1.0 .npy file with a hand-written header (padded as numpy pads it)."""
    pad = -(10 + len(fields) + 1) % 64
    header = (fields + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def test_from_npy_headers_numpy_reads_the_long_way() -> None:
    """Headers that are not the plain literal numpy writes today go to numpy's own reader: a
    Python 2 header (long integers) still loads; a wrong one is refused with numpy's reason."""
    data = np.arange(6, dtype="<f4").tobytes()
    py2 = _npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", data)
    np.testing.assert_array_equal(tensors.from_npy(py2), np.arange(6, dtype="<f4").reshape(2, 3))
    for fields, message in [
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1}", "keys"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (True, 6)}", "shape"),
        ("{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", "fortran_order"),
        ("(" * 3000 + ")" * 3000, "header"),
        ("{'descr': 'nonsense', 'fortran_order': False, 'shape': (6,)}", "descr"),
    ]:
        with pytest.raises(tensors.TensorDecodeError, match=message):
            tensors.from_npy(_npy_with_header(fields, data))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_npy_is_what_numpy_loads(dtype: str) -> None:
    a = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(dtype)
    b = np.load(io.BytesIO(tensors.to_npy(a)), allow_pickle=False)
    assert b.dtype == a.dtype
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not an npy file at all", "not a .npy file"),
        (b"", "not a .npy file"),
        (npy(np.arange(4, dtype=np.int64)), "int64"),
        (npy(np.zeros((2, 0), np.float32)), "at least 1"),
        (npy(np.float32(3.0)), "at least one dimension"),
        (npy(np.zeros((1, 1, 1, 1, 2), np.float32)), "rank 5"),
        (npy(np.zeros((4, 4), np.float32))[:-8], "needs 64"),
    ],
)
def test_from_npy_refuses(payload: bytes, message: str) -> None:
    with pytest.raises(tensors.TensorDecodeError, match=message):
        tensors.from_npy(payload)


def pickled_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_from_npy_never_unpickles() -> None:
    with pytest.raises(tensors.TensorDecodeError, match="pickled"):
        tensors.from_npy(pickled_npy())


# -- the server, through Flask's test client ----------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "padding"),
    [((5, 6), (2, 3), 0), ((3, 9, 9), (4, 3, 3, 3), 1), ((2, 4, 8, 7), (6, 4, 1, 1), 0)],
)
def test_conv2d_npy_in_npy_out(client, dtype: str, x_shape, w_shape, padding: int) -> None:
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    resp = post(client, "/v1/conv2d", accept=NPY, x=x, weight=w, padding=padding, dtype=dtype)
    assert resp.status_code == 200, resp.get_json()
    assert resp.mimetype == NPY
    y = np.load(io.BytesIO(resp.data), allow_pickle=False)
    x4 = x.reshape((1,) * (4 - x.ndim) + x.shape)
    expected = oracle.conv2d(x4, w.reshape((1,) * (4 - w.ndim) + w.shape), pads=(padding,) * 4)
    np.testing.assert_allclose(y.reshape(expected.shape), expected, rtol=1e-4, atol=1e-3)
    assert y.dtype == np.dtype(dtype)
    assert resp.headers["X-Tensor-Shape"] == ",".join(map(str, y.shape))
    assert resp.headers["X-Tensor-Dtype"] == dtype
    assert int(resp.headers["X-Flops"]) > 0 and float(resp.headers["X-Elapsed-Ms"]) >= 0


def test_npy_in_json_out_matches_json_in(client) -> None:
    x = np.arange(9, dtype=np.float32).reshape(3, 3)
    k = np.array([[0, 1], [2, 3]], np.float32)
    resp = post(client, "/v1/corr2d", x=x, kernel=k)
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json()["y"] == [[19, 25], [37, 43]]


def test_conv1d_takes_the_binary_transport_too(client) -> None:
    """An endpoint added later gets the binary transport from the one decorator."""
    x = np.array([1, 2, 3, 4, 5], np.float32)
    w = np.array([1, -1], np.float32)
    resp = post(client, "/v1/conv1d", accept=NPY, x=x, weight=w)
    assert resp.status_code == 200, resp.get_json()
    np.testing.assert_array_equal(np.load(io.BytesIO(resp.data)), np.correlate(x, w, mode="valid"))
    api = mxconv.Client("http://test", session=Recorder(client), transport="binary")
    np.testing.assert_array_equal(api.conv1d(x, w), np.correlate(x, w, mode="valid"))


def test_json_in_npy_out(client) -> None:
    resp = client.post(
        "/v1/corr2d",
        json={"x": [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "kernel": [[0, 1], [2, 3]]},
        headers={"Accept": NPY},
    )
    assert resp.mimetype == NPY
    np.testing.assert_array_equal(np.load(io.BytesIO(resp.data)), [[19, 25], [37, 43]])


def test_channel_mix_binary_and_matrix_view_needs_json(client) -> None:
    x = np.random.default_rng(3).standard_normal((3, 4, 4)).astype(np.float32)
    w = np.array([[1, 1, 0], [0, 1, -1]], np.float32)
    resp = post(client, "/v1/channel-mix", accept=NPY, x=x, weight=w)
    np.testing.assert_allclose(np.load(io.BytesIO(resp.data)), np.einsum("oc,chw->ohw", w, x), atol=1e-5)
    resp = post(client, "/v1/channel-mix", accept=NPY, x=x, weight=w, matrix_view=True)
    assert resp.status_code == 406 and resp.get_json()["error"]["code"] == "not_acceptable"
    resp = post(client, "/v1/channel-mix", x=x, weight=w, matrix_view=True)
    assert resp.status_code == 200 and "matrix_view" in resp.get_json()


def test_pickled_npy_is_refused_with_a_clear_message(client) -> None:
    resp = post(client, "/v1/conv2d", x=pickled_npy(), weight=np.ones((2, 2), np.float32))
    assert resp.status_code == 422
    err = resp.get_json()["error"]
    assert "pickled" in err["message"] and err["details"][0]["loc"] == ["x"]


def test_pydantic_still_validates_multipart(client) -> None:
    resp = post(
        client, "/v1/conv2d", x=np.ones((3, 3), np.float32), weight=np.ones((2, 2), np.float32), stride=0
    )
    assert resp.status_code == 422 and resp.get_json()["error"]["details"][0]["loc"][0] == "stride"
    resp = post(
        client, "/v1/conv2d", x=np.ones((3, 3), np.float32), weight=np.ones((2, 2), np.float32), bogus=1
    )
    assert resp.status_code == 422 and "bogus" in resp.get_json()["error"]["message"]
    resp = post(
        client, "/v1/conv2d", x=np.full((3, 3), np.nan, np.float32), weight=np.ones((2, 2), np.float32)
    )
    assert resp.status_code == 422 and "finite" in resp.get_json()["error"]["message"]


def test_bad_params_part(client) -> None:
    data = {"x": (io.BytesIO(npy(np.ones((3, 3)))), "x.npy"), "params": "{not json"}
    resp = client.post("/v1/corr2d", data=data, content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.get_json()["error"]["message"].startswith("params:")
    data = {"x": (io.BytesIO(npy(np.ones((3, 3)))), "x.npy"), "params": json.dumps({"x": [[1]]})}
    resp = client.post("/v1/corr2d", data=data, content_type="multipart/form-data")
    assert resp.status_code == 422 and "given twice" in resp.get_json()["error"]["message"]


def test_oversize_body_is_413(tmp_path) -> None:
    app = create_app({"data_dir": tmp_path, "max_body_bytes": 64 * 1024})
    x = np.zeros((128, 128), np.float32)  # 64 KiB of data + the header: over the limit
    resp = post(app.test_client(), "/v1/corr2d", x=x, kernel=np.ones((2, 2), np.float32))
    assert resp.status_code == 413
    assert "MXCONV_MAX_BODY_BYTES" in resp.get_json()["error"]["message"]


def test_over_element_and_flop_limits_are_413(tmp_path) -> None:
    app = create_app({"data_dir": tmp_path, "max_tensor_elements": 100, "max_flops": 10**9})
    resp = post(app.test_client(), "/v1/corr2d", x=np.zeros((11, 11), np.float32), kernel=np.ones((2, 2)))
    assert resp.status_code == 413 and "MXCONV_MAX_TENSOR_ELEMENTS" in resp.get_json()["error"]["message"]
    app = create_app({"data_dir": tmp_path, "max_flops": 1000})
    resp = post(app.test_client(), "/v1/corr2d", x=np.zeros((30, 30), np.float32), kernel=np.ones((3, 3)))
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "over_budget"


def test_other_content_types_still_415(client) -> None:
    resp = client.post("/v1/conv2d", data=npy(np.ones((2, 2))), content_type=NPY)
    assert resp.status_code == 415 and "multipart/form-data" in resp.get_json()["error"]["message"]


def test_openapi_describes_the_multipart_form(client) -> None:
    spec = client.get("/openapi.json").get_json()
    for path in ("/v1/conv2d", "/v1/corr2d", "/v1/channel-mix"):
        op = spec["paths"][path]["post"]
        form_schema = op["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form_schema["properties"]["params"]["type"] == "string"
        assert form_schema["properties"]["x"]["format"] == "binary"
        assert NPY in op["responses"]["200"]["content"]


# -- the client's choice of transport ------------------------------------------------------


def _as_bytes(data):  # noqa: ANN001, ANN202 - a streamed multipart body, as Flask's test client takes it
    return bytes(data) if isinstance(data, tensors.MultipartBody) else data


class Recorder(requests.Session):
    """A session that records what the client sends, and sends it on to Flask's test client."""

    def __init__(self, flask_client) -> None:
        super().__init__()
        self.flask = flask_client
        self.sent: list[dict] = []

    def request(self, method, url, **kwargs):  # type: ignore[override]
        self.sent.append(kwargs)
        path = url.split("://", 1)[1].split("/", 1)[1]
        r = self.flask.open(
            "/" + path,
            method=method,
            json=kwargs.get("json"),
            data=_as_bytes(kwargs.get("data")),
            headers=kwargs.get("headers"),
        )
        resp = requests.Response()
        resp.status_code = r.status_code
        resp.headers.update(r.headers)
        resp._content, resp._content_consumed = r.data, True
        return resp


def test_client_chooses_binary_above_the_threshold(client) -> None:
    session = Recorder(client)
    api = mxconv.Client("http://test", session=session)
    small = np.ones((8, 8))
    y = api.conv2d(small, np.ones((2, 2)))
    assert session.sent[-1]["headers"]["Content-Type"] == "application/json"
    np.testing.assert_array_equal(y, np.full((7, 7), 4.0))

    side = int(np.sqrt(BINARY_MIN_ELEMENTS)) + 1  # just over the threshold
    x = np.random.default_rng(4).standard_normal((side, side))
    result = api.conv2d(x, np.ones((3, 3)), padding="same", detailed=True)
    sent = session.sent[-1]
    assert sent["headers"]["Content-Type"].startswith("multipart/form-data")
    assert sent["headers"]["Accept"] == NPY
    np.testing.assert_allclose(
        result.y, oracle.conv2d(x[None, None], np.ones((1, 1, 3, 3)), pads=(1,) * 4)[0, 0], atol=1e-3
    )
    assert result.flops == 2 * 9 * side * side and result.dtype == "float32"

    forced = mxconv.Client("http://test", session=session, transport="binary")
    np.testing.assert_array_equal(forced.corr2d(np.eye(3), np.ones((2, 2))), [[2, 1], [1, 2]])
    assert session.sent[-1]["headers"]["Accept"] == NPY


@pytest.mark.parametrize("transport", ["lists", "base64", "binary"])
def test_every_transport_gives_the_same_answer(client, transport: str) -> None:
    api = mxconv.Client("http://test", session=Recorder(client), transport=transport)  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    y = api.conv2d(x, w, b, padding=1, dtype="float64")
    np.testing.assert_allclose(y, oracle.conv2d(x, w, b, pads=(1,) * 4), rtol=1e-10, atol=1e-10)
    mix = api.channel_mix(x, rng.standard_normal((2, 3)), matrix_view=True)
    assert mix.matrix_view is not None and mix.y.shape == (2, 2, 9, 9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_base64_fragments_write_the_same_json(dtype: str) -> None:
    """The base64 text goes into orjson's output as a pre-built fragment: the document must be
    byte for byte what the plain string gives, and decode to the same array."""
    import orjson

    a = np.random.default_rng(9).standard_normal((3, 70, 50)).astype(dtype)
    fast = orjson.dumps({"x": tensors.to_b64_orjson(a), "n": 1})
    assert fast == orjson.dumps({"x": tensors.to_b64(a), "n": 1})
    back = tensors.from_b64(orjson.loads(fast)["x"])
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, a)


def test_decoded_base64_is_writable_without_a_copy() -> None:
    """A base64 tensor decodes into memory the array owns outright, so a response tensor is
    the caller's to change without the copy a read-only buffer would need."""
    from mxconv.schemas import common as schemas

    a = np.random.default_rng(8).standard_normal((4, 50, 60)).astype(np.float32)
    back = tensors.from_b64(tensors.to_b64(a))
    assert back.flags.writeable
    assert schemas._decode_any(back) is back
    np.testing.assert_array_equal(back, a)


@pytest.mark.parametrize("lifted", [False, True])
def test_large_base64_round_trip_both_ways(client, monkeypatch, lifted: bool) -> None:
    """Over the list threshold, the base64 transport sends and receives fragments; the answer
    is the same whether the server and client parse the base64 strings in place or lift them
    out first (tensors.loads_json, here with thresholds low enough to lift these)."""
    if lifted:
        monkeypatch.setattr(tensors, "LIFT_DOC_MIN_BYTES", 0)
        monkeypatch.setattr(tensors, "LIFT_STRING_MIN_BYTES", 1024)
    session = Recorder(client)
    api = mxconv.Client("http://test", session=session, transport="base64")
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((1, 2, 60, 50)), rng.standard_normal((3, 2, 3, 3))
    assert x.size > mxconv.client.LIST_ENCODING_MAX_ELEMENTS
    result = api.conv2d(x, w, dtype="float64", detailed=True)
    sent = json.loads(session.sent[-1]["data"])  # base64 travels as JSON, not multipart
    assert set(sent["x"]) == {"dtype", "shape", "b64"} and sent["output_encoding"] == "base64"
    np.testing.assert_allclose(result.y, oracle.conv2d(x, w), rtol=1e-10, atol=1e-10)


def test_bad_transport_name() -> None:
    with pytest.raises(ValueError, match="transport"):
        mxconv.Client(transport="pickle")  # type: ignore[arg-type]


# -- against a live gunicorn server --------------------------------------------------------


def test_live_binary_round_trip_and_curl_style_upload(live_server) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 8, 32, 32)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    api = mxconv.Client(live_server.url)
    result = api.conv2d(x, w, padding=1, detailed=True)  # 16k input elements: binary by default
    np.testing.assert_allclose(result.y, oracle.conv2d(x, w, pads=(1,) * 4), rtol=1e-4, atol=1e-3)
    # What curl -F sends: application/octet-stream parts named after files on disk.
    files = {
        "x": ("x.npy", npy(x), "application/octet-stream"),
        "weight": ("w.npy", npy(w), "application/octet-stream"),
        "params": (None, json.dumps({"padding": 1})),
    }
    resp = requests.post(f"{live_server.url}/v1/conv2d", files=files, headers={"Accept": NPY}, timeout=60)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == NPY
    np.testing.assert_array_equal(np.load(io.BytesIO(resp.content), allow_pickle=False), result.y)
    resp = requests.post(
        f"{live_server.url}/v1/conv2d",
        files={"x": ("x.npy", pickled_npy()), "weight": ("w.npy", npy(w))},
        timeout=60,
    )
    assert resp.status_code == 422 and "pickled" in resp.json()["error"]["message"]


# -- the multipart splitter (client/mxconv/tensors.py) -------------------------------------


def test_decode_multipart_round_trip_with_preamble_and_epilogue() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    body, content_type = tensors.encode_multipart({"x": x}, {"padding": 1}, boundary="b0und")
    assert content_type == "multipart/form-data; boundary=b0und"
    parts = multipart.decode_multipart(b"preamble\r\n" + body + b"epilogue", "b0und")
    assert [(p.name, p.filename) for p in parts] == [("params", None), ("x", "x.npy")]
    assert json.loads(bytes(parts[0].data)) == {"padding": 1}
    np.testing.assert_array_equal(tensors.from_npy(parts[1].data), x)
    assert parts[1].content_type == NPY


def test_streamed_body_is_the_joined_body_every_time() -> None:
    """The client sends the pieces under their total length, and a retry iterates them again."""
    x = np.random.default_rng(3).standard_normal((4, 5, 6)).astype(np.float32)
    arrays = {"x": x, "weight": np.ones((2, 5, 3, 3))}
    body = tensors.multipart_body(arrays, {"padding": 1}, boundary="bb")
    first, second = b"".join(body), b"".join(body)
    assert first == second == bytes(body) and len(body) == len(first)
    assert first == tensors.encode_multipart(arrays, {"padding": 1}, "bb")[0]
    assert any(isinstance(p, memoryview) and p.nbytes == x.nbytes for p in body.pieces), "x was copied"


def test_client_aligns_npy_data_in_the_body() -> None:
    """The array bytes start 64-byte aligned within the body, so the server's view of them is
    aligned and reaches MXNet without a copy."""
    arrays = {"x": np.ones((2, 3, 5), np.float32), "weight": np.ones((7,), np.float64)}
    body, content_type = tensors.encode_multipart(arrays, {"dtype": "float64"})
    base = np.frombuffer(body, np.uint8).ctypes.data
    for part in multipart.decode_multipart(body, content_type.split("boundary=")[1])[1:]:
        arr = tensors.from_npy(part.data)
        assert (arr.ctypes.data - base) % 64 == 0
        np.testing.assert_array_equal(arr, arrays[part.name])


def _one_part(payload: bytes, boundary: str = "bnd") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="x"; filename="x.npy"\r\n\r\n'.encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )


@pytest.mark.parametrize("data_bytes", [24, 2_000_000])  # a small part, and one over 1 MiB
def test_npy_header_that_is_not_utf8_is_422(client, data_bytes: int) -> None:
    """Version 3 .npy headers are UTF-8; bytes that are not were a 500 (UnicodeDecodeError)."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), '\xff\xfe': 1}"
    header += b" " * (-(12 + len(header) + 1) % 64) + b"\n"
    npy = b"\x93NUMPY\x03\x00" + len(header).to_bytes(4, "little") + header + bytes(data_bytes)
    body = (
        _one_part(npy, "b")[: -len(b"--b--\r\n")]
        + b'--b\r\nContent-Disposition: form-data; name="kernel"\r\n\r\n[[1]]\r\n--b--\r\n'
    )
    resp = client.post("/v1/corr2d", data=body, content_type="multipart/form-data; boundary=b")
    assert resp.status_code == 422, resp.get_json()
    assert "not valid utf-8" in resp.get_json()["error"]["message"]


def test_part_headers_parse_the_same_cached_or_not() -> None:
    """Header blocks up to 1 KiB are parsed once and cached; longer ones every time."""
    short = b'Content-Disposition: form-data; name="x"; filename="x.npy"\r\nContent-Type: application/x-npy'
    long = b'Content-Disposition: form-data; name="x"; filename="' + b"f" * 2000 + b'.npy"'
    assert multipart._part_headers(short) == multipart._part_headers(short) == ("x", "x.npy", NPY)
    before = multipart._part_headers_cached.cache_info().currsize
    assert multipart._part_headers(long) == ("x", "f" * 2000 + ".npy", "text/plain")
    assert multipart._part_headers_cached.cache_info().currsize == before  # not kept
    assert multipart._part_headers(b"Content-Type: text/plain") == (None, None, "text/plain")


def test_large_npy_parts_split_where_their_header_says() -> None:
    """Parts over 1 MiB end where their .npy header says (no search through the data);
    the result is the same as searching: every part, every byte."""
    rng = np.random.default_rng(4)
    arrays = {"x": rng.standard_normal((3, 300, 400)).astype(np.float32), "weight": np.ones((5, 3, 3, 3))}
    body, content_type = tensors.encode_multipart(arrays, {"padding": 1})
    parts = multipart.decode_multipart(body, content_type.split("boundary=")[1])
    assert [p.name for p in parts] == ["params", "x", "weight"]
    for part in parts[1:]:
        np.testing.assert_array_equal(tensors.from_npy(part.data), arrays[part.name])
    x_start = body.index(b"\x93NUMPY")  # and the header was what found the end of x
    closing = b"\r\n--" + content_type.split("boundary=")[1].encode()
    assert multipart._npy_part_end(body, x_start, closing) == x_start + parts[1].data.nbytes


@pytest.mark.parametrize(
    ("shape_text", "message"),
    [
        ("(1000,)", r"holds 2000000 bytes, but shape \[1000\]"),  # claims less than it carries
        ("(10000000,)", r"holds 2000000 bytes, but shape \[10000000\]"),  # claims more
        ("(-499990,)", "dimensions|at least 1"),  # a negative size points back into the body
        ("(0,)", "at least 1"),
    ],
)
def test_large_npy_part_whose_header_lies(shape_text: str, message: str) -> None:
    """A header that disagrees with the data falls back to the search: the part is what lies
    between the delimiters, and reading it names the mismatch."""
    payload = _npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text + ", }", bytes(2_000_000)
    )
    (part,) = multipart.decode_multipart(_one_part(payload), "bnd")
    assert part.data.nbytes == len(payload)
    with pytest.raises(tensors.TensorDecodeError, match=message):
        tensors.from_npy(part.data)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"no boundary here", "never occurs"),
        (b"--b\r\nContent-Disposition: form-data; name=x\r\n", "headers do not end"),
        (b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\ndata without end", "truncated"),
        (b"--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--\r\n", "no Content-Disposition name"),
    ],
)
def test_decode_multipart_refuses(body: bytes, message: str) -> None:
    with pytest.raises(tensors.TensorDecodeError, match=message):
        multipart.decode_multipart(body, "b")


def test_malformed_multipart_is_400(client) -> None:
    resp = client.post(
        "/v1/conv2d",
        data=b"--zz\r\nContent-Disposition: form-data; name=x\r\n\r\nno end",
        content_type="multipart/form-data; boundary=zz",
    )
    assert resp.status_code == 400 and "truncated" in resp.get_json()["error"]["message"]
    resp = client.post("/v1/conv2d", data=b"x", content_type="multipart/form-data")
    assert resp.status_code == 400 and "boundary" in resp.get_json()["error"]["message"]


def test_text_parts_are_json_values(client) -> None:
    """curl -F 'x=[[0,1,2],...]' -F 'kernel=...' : plain text parts, read as JSON."""
    data = {"x": "[[0,1,2],[3,4,5],[6,7,8]]", "kernel": "[[0,1],[2,3]]", "dtype": "float64"}
    resp = client.post("/v1/corr2d", data=data, content_type="multipart/form-data")
    assert resp.status_code == 200 and resp.get_json()["y"] == [[19, 25], [37, 43]]
    assert resp.get_json()["dtype"] == "float64"


def test_live_chunked_upload(live_server) -> None:
    """A body without Content-Length (chunked) still parses, under the same body limit."""
    x = np.arange(9, dtype=np.float32).reshape(3, 3)
    body, content_type = tensors.encode_multipart(
        {"x": x, "kernel": np.array([[0, 1], [2, 3]], np.float32)}, {}
    )
    resp = requests.post(
        f"{live_server.url}/v1/corr2d",
        data=iter([body[:100], body[100:]]),  # a generator: requests sends it chunked
        headers={"Content-Type": content_type, "Accept": NPY},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    np.testing.assert_array_equal(np.load(io.BytesIO(resp.content)), [[19, 25], [37, 43]])


def test_other_multipart_views_keep_werkzeug_form_parsing(tmp_path) -> None:
    """Only tensor views get the .npy treatment; an upload view reads request.files, and
    get_data() still works after the middleware read a JSON body."""
    from flask import request as flask_request
    from mxconv_server.transport import io as view_io

    app = create_app({"data_dir": tmp_path})

    @view_io.describe(view_io.ViewIO(accepts=frozenset({"multipart/form-data"})))
    def upload() -> dict:
        f = flask_request.files["image"]
        return {"name": f.filename, "size": len(f.read()), "note": flask_request.form["note"]}

    def raw() -> dict:
        return {"bytes": len(flask_request.get_data()), "json": flask_request.get_json()}

    app.add_url_rule("/test-upload", view_func=upload, methods=["POST"])
    app.add_url_rule("/test-raw", view_func=raw, methods=["POST"])
    c = app.test_client()
    resp = c.post(
        "/test-upload",
        data={"image": (io.BytesIO(b"not an npy"), "cat.png"), "note": "hi"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"name": "cat.png", "size": 10, "note": "hi"}
    resp = c.post("/test-raw", data=b'{"a": 1}', content_type="application/json")
    assert resp.get_json() == {"bytes": len(b'{"a": 1}'), "json": {"a": 1}}
