"""/v2 through Flask's test client: the protocol's framing and errors case by case, the limits
and deadline /v1 has, the error shape chosen by the route, the spec, and the aligned body."""

from __future__ import annotations

import ctypes
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mxconv_server.app import create_app
from mxconv_server.errors import raw_error_response
from mxconv_server.transport import body as transport_body

SEED = {
    "inputs": [
        {"name": "x", "shape": [3, 3], "datatype": "FP32", "data": [0, 1, 2, 3, 4, 5, 6, 7, 8]},
        {"name": "kernel", "shape": [2, 2], "datatype": "FP32", "data": [0, 1, 2, 3]},
    ]
}
INFER = "/v2/models/corr2d/infer"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return create_app({"data_dir": tmp_path_factory.mktemp("oip")})


@pytest.fixture()
def client(app):  # noqa: ANN001, ANN201
    return app.test_client()


def post(client: Any, body: Any, path: str = INFER, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, data=data, headers=headers)


def with_input(index: int, **changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(SEED))
    body["inputs"][index].update(changes)
    return body


def framed(header: dict[str, Any], data: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + data, {"Inference-Header-Content-Length": str(len(head))}


def error(resp: Any, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.data[:400])
    body = resp.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    return body["error"]


def test_seed_with_or_without_a_content_type(client) -> None:  # noqa: ANN001
    for headers in ({}, {"Content-Type": "application/json"}, {"Content-Type": "application/octet-stream"}):
        resp = post(client, SEED, **headers)
        assert resp.status_code == 200, resp.data
        assert resp.get_json()["outputs"][0]["data"] == [19, 25, 37, 43]


def test_nested_data_is_taken_and_outputs_are_flat(client) -> None:  # noqa: ANN001
    resp = post(client, with_input(0, data=[[0, 1, 2], [3, 4, 5], [6, 7, 8]]))
    assert resp.get_json()["outputs"][0]["data"] == [19, 25, 37, 43]


def test_binary_in_binary_out(client) -> None:  # noqa: ANN001
    x, k = np.arange(9, dtype="<f4"), np.arange(4, dtype="<f4")
    header = {
        "inputs": [
            {"name": "x", "shape": [3, 3], "datatype": "FP32", "parameters": {"binary_data_size": 36}},
            {"name": "kernel", "shape": [2, 2], "datatype": "FP32", "data": k.tolist()},  # mixed forms
        ],
        "parameters": {"binary_data_output": True},
    }
    data, headers = framed(header, x.tobytes())
    resp = post(client, data, **headers)
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    n = int(resp.headers["Inference-Header-Content-Length"])
    head = json.loads(resp.data[:n])
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert int(resp.headers["Content-Length"]) == n + 16 == len(resp.data)
    np.testing.assert_array_equal(np.frombuffer(resp.data[n:], "<f4"), [19, 25, 37, 43])


def test_per_output_binary_data_overrides_the_request_default(client) -> None:  # noqa: ANN001
    body = {
        **SEED,
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "y", "parameters": {"binary_data": False}}],
    }
    resp = post(client, body)
    assert resp.mimetype == "application/json" and "Inference-Header-Content-Length" not in resp.headers
    assert resp.get_json()["outputs"][0]["data"] == [19, 25, 37, 43]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_requests(client, encoding: str) -> None:  # noqa: ANN001
    raw = json.dumps(SEED).encode()
    data = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    resp = post(client, data, **{"Content-Encoding": encoding})
    assert resp.get_json()["outputs"][0]["data"] == [19, 25, 37, 43]


BAD = [
    ("datatype INT64", with_input(0, datatype="INT64"), {}, "datatype 'INT64' is a datatype of the protocol"),
    ("not a datatype", with_input(0, datatype="FLOAT"), {}, "datatype 'FLOAT' is not a datatype"),
    ("too few values", with_input(0, data=[1, 2]), {}, "shape [3, 3] holds 9 values, but data has 2"),
    ("non-numbers", with_input(0, data=["a"] * 9), {}, "input 'x': data: expected a rectangular array"),
    ("no data", with_input(0, data=None), {}, "input 'x' has no data"),
    ("rank 0", with_input(0, shape=[], data=[1]), {}, "shape []: give 1 to 4 dimensions"),
    ("a zero dimension", with_input(0, shape=[3, 0]), {}, "each at least 1"),
    ("rank 5", with_input(0, shape=[1, 1, 1, 3, 3]), {}, "inputs.0.shape: List should have at most 4 items"),
    ("duplicate input", {"inputs": [SEED["inputs"][0]] * 2}, {}, "input 'x' is given twice"),
    (
        "shared memory",
        with_input(0, parameters={"shared_memory_region": "r"}),
        {},
        "'shared_memory_region' is not supported",
    ),
    (
        "binary without header",
        with_input(0, data=None, parameters={"binary_data_size": 36}),
        {},
        "no Inference-Header-Content-Length",
    ),
    (
        "binary and data",
        with_input(0, parameters={"binary_data_size": 36}),
        {"Inference-Header-Content-Length": "<the JSON's length>"},
        "has both data and binary_data_size",
    ),
    (
        "binary_data_output not a bool",
        {**SEED, "parameters": {"binary_data_output": "yes"}},
        {},
        "binary_data_output must be true or false",
    ),
    (
        "an output parameter",
        {**SEED, "outputs": [{"name": "y", "parameters": {"classification": 3}}]},
        {},
        "'classification' is not supported",
    ),
    ("an output twice", {**SEED, "outputs": [{"name": "y"}, {"name": "y"}]}, {}, "asked for twice"),
    ("sequences", {**SEED, "parameters": {"sequence_id": 3}}, {}, "stateless"),
    ("timeout", {**SEED, "parameters": {"timeout": 100}}, {}, "MXCONV_MAX_REQUEST_SECONDS (30 s here)"),
    (
        "body names another model",
        {**SEED, "model_name": "conv2d"},
        {},
        "the body names model 'conv2d', the URL 'corr2d'",
    ),
    ("an unknown field", {**SEED, "priorty": 1}, {}, "priorty: Extra inputs are not permitted"),
    ("not JSON", b"{nope", {}, "the inference request is not valid JSON"),
    (
        "header not JSON",
        b"\x00" * 8,
        {"Inference-Header-Content-Length": "4"},
        "(its first 4 bytes, Inference-Header-Content-Length) is not valid JSON",
    ),
    (
        "header length too long",
        json.dumps(SEED).encode(),
        {"Inference-Header-Content-Length": "99999"},
        "but the body has only",
    ),
    (
        "header length not a number",
        json.dumps(SEED).encode(),
        {"Inference-Header-Content-Length": "-3"},
        "must be a non-negative integer",
    ),
]


@pytest.mark.parametrize(("case", "body", "headers", "phrase"), BAD, ids=[b[0] for b in BAD])
def test_each_bad_request_is_a_400_that_says_which(client, case, body, headers, phrase) -> None:  # noqa: ANN001
    if headers.get("Inference-Header-Content-Length") == "<the JSON's length>":
        headers = {"Inference-Header-Content-Length": str(len(json.dumps(body)))}
    message = error(post(client, body, **headers), 400)
    assert phrase in message, message


def test_an_invalid_option_is_v1s_422_message_as_a_400(client) -> None:  # noqa: ANN001
    x, w = [[[[1.0] * 4] * 4]], [[[[1.0, 0.0], [0.0, 1.0]]]]
    v1 = client.post("/v1/conv2d", json={"x": x, "weight": w, "groups": 0, "stride": [1, 2, 3]})
    assert v1.status_code == 422
    body = {
        "inputs": [
            {"name": "x", "shape": [1, 1, 4, 4], "datatype": "FP32", "data": np.ravel(x).tolist()},
            {"name": "weight", "shape": [1, 1, 2, 2], "datatype": "FP32", "data": np.ravel(w).tolist()},
        ],
        "parameters": {"groups": 0, "stride": "[1, 2, 3]"},
    }
    assert error(post(client, body, path="/v2/models/conv2d/infer"), 400) == v1.get_json()["error"]["message"]


def test_unknown_models_versions_and_paths_are_404s(client) -> None:  # noqa: ANN001
    assert "unknown model 'nope'; the models are conv2d, conv1d" in error(
        post(client, SEED, path="/v2/models/nope/infer"), 404
    )
    assert "has no version '7'" in error(post(client, SEED, path="/v2/models/corr2d/versions/7/infer"), 404)
    assert "has no version '7'" in error(client.get("/v2/models/corr2d/versions/7/ready"), 404)
    assert "the inference protocol's endpoints are" in error(client.get("/v2/models/corr2d/config"), 404)
    assert error(client.get("/v2/models/corr2d/infer"), 405)
    # /v1 keeps its own shape
    v1 = client.get("/v1/nope")
    assert v1.status_code == 404 and v1.get_json()["error"]["code"] == "not_found"


def test_content_type_and_encoding_are_checked(client) -> None:  # noqa: ANN001
    assert "is not accepted here" in error(post(client, SEED, **{"Content-Type": "text/plain"}), 415)
    assert "Content-Encoding 'br' is not supported" in error(
        post(client, SEED, **{"Content-Encoding": "br"}), 415
    )
    assert "not valid gzip data" in error(post(client, b"not gzip", **{"Content-Encoding": "gzip"}), 400)


def test_the_limits_of_v1_hold(tmp_path: Path) -> None:
    def tight(**config: Any) -> Any:
        return create_app({"data_dir": tmp_path / "d", **config}).test_client()

    assert "MXCONV_MAX_FLOPS" in error(post(tight(max_flops=10), SEED), 413)
    assert "MXCONV_MAX_BODY_BYTES" in error(
        post(tight(max_body_bytes=1024), with_input(0, data=[0.5] * 9, pad="x" * 2000)), 413
    )
    assert "x has 9 elements, over the limit of 4 (MXCONV_MAX_TENSOR_ELEMENTS)" in error(
        post(tight(max_tensor_elements=4), SEED), 413
    )
    bomb = gzip.compress(json.dumps(SEED).encode() + b" " * 4096)
    assert "decompressed body is over the limit" in error(
        post(tight(max_body_bytes=1024), bomb, **{"Content-Encoding": "gzip"}), 413
    )
    keyed = tight(api_keys="k")
    assert "missing API key" in error(post(keyed, SEED), 401)
    assert (
        keyed.get("/v2/health/live").status_code == 200 and keyed.get("/v2/health/ready").status_code == 200
    )
    assert post(keyed, SEED, Authorization="Bearer k").status_code == 200


def test_work_past_the_deadline_is_a_504(tmp_path: Path) -> None:
    """Admitted by an optimistic cost model (about 3-4 s of work predicted at half that), stopped
    between pieces at the deadline: /v1's 504 (tests/test_bounded_work.py), in /v2's shape."""
    client = create_app(
        {"data_dir": tmp_path / "d", "max_request_seconds": 2.0, "cost_scale": 0.5, "max_flops": 10**13}
    ).test_client()
    x, w = np.ones((1, 1, 2048, 2048)), np.ones((1, 1, 64, 64))
    header = {
        "inputs": [
            {
                "name": n,
                "shape": list(a.shape),
                "datatype": "FP64",
                "parameters": {"binary_data_size": a.nbytes},
            }
            for n, a in (("x", x), ("weight", w))
        ]
    }
    data, headers = framed(header, x.tobytes() + w.tobytes())
    message = error(post(client, data, path="/v2/models/conv2d/infer", **headers), 504)
    assert "MXCONV_MAX_REQUEST_SECONDS" in message


def test_the_watchdogs_answer_takes_the_routes_shape() -> None:
    v2 = raw_error_response(504, "deadline_exceeded", "too slow", "r1", "/v2/models/conv2d/infer")
    v1 = raw_error_response(504, "deadline_exceeded", "too slow", "r1", "/v1/conv2d")
    assert json.loads(v2.split(b"\r\n\r\n", 1)[1]) == {"error": "too slow"}
    assert json.loads(v1.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "deadline_exceeded"


def test_repository_index_body(client) -> None:  # noqa: ANN001
    for data in (b"", b"{}", b'{"ready": true}'):
        resp = client.post(
            "/v2/repository/index", data=data, content_type="application/json" if data else None
        )
        assert resp.status_code == 200 and len(resp.get_json()) == 5
    assert "ready: Input should be a valid boolean" in error(
        post(client, {"ready": "maybe"}, path="/v2/repository/index"), 400
    )
    assert "not valid JSON" in error(post(client, b"[", path="/v2/repository/index"), 400)


def test_the_spec_and_docs_include_v2(client) -> None:  # noqa: ANN001
    spec = client.get("/openapi.json").get_json()
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model_name}",
        "/v2/repository/index",
    ):
        assert path in spec["paths"], path
    infer = spec["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert set(infer["responses"]["200"]["content"]) == {"application/json", "application/octet-stream"}
    assert infer["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceErrorResponse"
    }
    assert "422" not in infer["responses"]
    names = next(p for p in infer["parameters"] if p["name"] == "model_name")["schema"]["enum"]
    assert names == ["conv2d", "conv1d", "corr2d", "channel_mix", "image_filter"]
    for name in ("InferenceRequest", "RequestInput", "InferenceResponse", "InferenceErrorResponse"):
        assert name in spec["components"]["schemas"], name
    assert client.get("/docs/").status_code == 200


def test_the_body_is_placed_so_tensor_bytes_are_aligned() -> None:
    for size, at in ((1000, 0), (1000, 37), (5000, 4999), (64, 63)):
        view = transport_body._aligned(size, at)  # noqa: SLF001
        assert len(view) == size and not view.readonly
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
        assert (address + at) % transport_body.ALIGN == 0, (size, at)
