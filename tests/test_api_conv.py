"""The conv endpoints through Flask's test client: results, encodings, errors, limits, auth."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from mxconv_server.app import create_app

from . import oracle

SEED = {"x": [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "kernel": [[0, 1], [2, 3]]}
STRIPES = [[1, 1, 0, 0, 1, 1]] * 6


def test_seed_corr2d(client) -> None:
    resp = client.post("/v1/corr2d", json=SEED)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["y"] == [[19, 25], [37, 43]]
    assert body["shape"] == [2, 2] and body["dtype"] == "float32" and body["flops"] == 32


def test_seed_edge_map(client) -> None:
    body = client.post("/v1/conv2d", json={"x": STRIPES, "weight": [[1, -1]]}).get_json()
    assert body["y"] == [[0, 1, 0, -1, 0]] * 6


def test_base64_in_and_out_round_trip(client) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype("<f4")
    w = rng.standard_normal((4, 3, 3, 3)).astype("<f4")

    def b64(a: np.ndarray) -> dict:
        return {"dtype": "float32", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}

    body = client.post(
        "/v1/conv2d",
        json={"x": b64(x), "weight": b64(w), "padding": 1, "output_encoding": "base64"},
    ).get_json()
    out = body["y"]
    y = np.frombuffer(base64.b64decode(out["b64"]), dtype="<f4").reshape(out["shape"])
    assert body["shape"] == out["shape"] == [2, 4, 8, 8]
    np.testing.assert_allclose(y, oracle.conv2d(x, w, pads=(1, 1, 1, 1)), atol=1e-4)


def test_float64_on_request(client) -> None:
    body = client.post("/v1/corr2d", json={**SEED, "dtype": "float64"}).get_json()
    assert body["dtype"] == "float64" and body["y"] == [[19, 25], [37, 43]]


def test_channel_mix_matrix_view(client) -> None:
    x = np.arange(12.0).reshape(3, 2, 2)
    w = [[1, 1, 0], [0, 1, -1]]
    body = client.post("/v1/channel-mix", json={"x": x.tolist(), "weight": w, "matrix_view": True}).get_json()
    y_flat = np.array(w) @ x.reshape(3, 4)
    np.testing.assert_allclose(body["y"], y_flat.reshape(2, 2, 2))
    np.testing.assert_allclose(body["matrix_view"]["y_flat"], y_flat)
    np.testing.assert_allclose(body["matrix_view"]["x_flat"], x.reshape(3, 4))


CONV = {"x": [[1, 2, 3], [4, 5, 6], [7, 8, 9]], "weight": [[1, 0], [0, 1]]}


@pytest.mark.parametrize(
    "path, body, status, code, field",
    [
        ("/v1/conv2d", {**CONV, "x": [[1, 2], [3]]}, 422, "validation_error", "x"),
        ("/v1/conv2d", {**CONV, "x": []}, 422, "validation_error", "x"),
        ("/v1/conv2d", {**CONV, "x": [[]]}, 422, "validation_error", "x"),
        ("/v1/conv2d", {**CONV, "x": [["a", 1], [2, 3]]}, 422, "validation_error", "x"),
        ("/v1/conv2d", {**CONV, "x": 3}, 422, "validation_error", "x"),
        ("/v1/conv2d", {**CONV, "x": [["1", "2"], ["3", "4"]]}, 422, "validation_error", "x"),
        ("/v1/conv2d", {**CONV, "x": [[True, False]]}, 422, "validation_error", "x"),
        ("/v1/corr2d", {"x": [[1, 2], [3, 4]], "kernel": [[1] * 3] * 3}, 422, "invalid_argument", "kernel"),
        ("/v1/conv2d", {**CONV, "weight": [[1e999, 1]]}, 422, "validation_error", "weight"),
        ("/v1/conv2d", {**CONV, "x": [[[[[1]]]]]}, 422, "validation_error", "x"),
        (
            "/v1/conv2d",
            {**CONV, "weight": [[[1, 1]]] * 2, "x": [[[1, 2]]] * 3, "groups": 2},
            422,
            "invalid_argument",
            "groups",
        ),
        (
            "/v1/conv2d",
            {"x": [[[1, 2, 3]]] * 4, "weight": [[[[1]]] * 3] * 2},
            422,
            "invalid_argument",
            "weight",
        ),
        ("/v1/conv2d", {**CONV, "weight": [[1] * 5] * 5}, 422, "invalid_argument", "weight"),
        ("/v1/conv2d", {**CONV, "stride": 0}, 422, "validation_error", "stride"),
        ("/v1/conv2d", {**CONV, "stride": 100000}, 422, "validation_error", "stride"),
        ("/v1/conv2d", {**CONV, "dilation": [1, -1]}, 422, "validation_error", "dilation"),
        ("/v1/conv2d", {**CONV, "padding": -1}, 422, "validation_error", "padding"),
        ("/v1/conv2d", {**CONV, "padding": [1, 2, 3]}, 422, "validation_error", "padding"),
        ("/v1/conv2d", {**CONV, "padding": "middle"}, 422, "validation_error", "padding"),
        ("/v1/conv2d", {**CONV, "padding_mode": "mirror"}, 422, "validation_error", "padding_mode"),
        ("/v1/conv2d", {**CONV, "padding": 3, "padding_mode": "reflect"}, 422, "invalid_argument", "padding"),
        ("/v1/conv2d", {**CONV, "bias": [1, 2]}, 422, "invalid_argument", "bias"),
        ("/v1/conv2d", {**CONV, "dtype": "int8"}, 422, "validation_error", "dtype"),
        ("/v1/conv2d", {**CONV, "colour": "blue"}, 422, "validation_error", "colour"),
        ("/v1/conv2d", {"weight": CONV["weight"]}, 422, "validation_error", "x"),
        (
            "/v1/conv2d",
            {**CONV, "x": {"dtype": "float32", "shape": [2], "b64": "AAAA"}},
            422,
            "validation_error",
            "x",
        ),
        ("/v1/corr2d", {"x": [[[1, 2]]], "kernel": [[1]]}, 422, "invalid_argument", "x"),
        ("/v1/channel-mix", {"x": [[[1.0]]], "weight": [1, 2]}, 422, "invalid_argument", "weight"),
        ("/v1/channel-mix", {"x": [[[1.0]]] * 3, "weight": [[1, 2]]}, 422, "invalid_argument", "weight"),
    ],
)
def test_bad_input_table(client, path: str, body: dict, status: int, code: str, field: str) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == status, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == code
    assert field in error["message"], error["message"]
    if code == "validation_error":
        assert any(d["loc"][0] == field for d in error["details"])


def test_union_fields_get_one_clear_message(client) -> None:
    error = client.post("/v1/conv2d", json={**CONV, "padding": "sam"}).get_json()["error"]
    assert error["message"] == (
        'padding: expected an integer from 0 to 1024, [ph, pw], [top, bottom, left, right], '
        "or \"valid\", \"same\", \"full\"; got 'sam'"
    )
    assert len(error["details"]) == 1 and error["details"][0]["loc"] == ["padding"]


def test_missing_body_says_what_to_send(client) -> None:
    error = client.post("/v1/conv2d").get_json()["error"]
    assert error["message"] == "body: the body must be a JSON object with the fields in /openapi.json"


def test_unknown_path_hints_at_the_v1_prefix(client) -> None:
    error = client.post("/conv2d", json=CONV).get_json()["error"]
    assert error["code"] == "not_found" and "/v1/" in error["message"]


def test_nan_literal_is_malformed_json(client) -> None:
    resp = client.post("/v1/conv2d", data='{"x": [[NaN]], "weight": [[1]]}', content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "malformed_body"


def test_malformed_json_is_400(client) -> None:
    resp = client.post("/v1/conv2d", data='{"x": [[1]', content_type="application/json")
    assert resp.status_code == 400
    assert "not valid JSON" in resp.get_json()["error"]["message"]


def test_wrong_content_type_is_415(client) -> None:
    resp = client.post("/v1/conv2d", data="x=1", content_type="text/plain")
    assert resp.status_code == 415
    assert resp.get_json()["error"]["code"] == "unsupported_media_type"


def test_unknown_path_and_method(client) -> None:
    assert client.get("/v1/nope").get_json()["error"]["code"] == "not_found"
    resp = client.get("/v1/conv2d")
    assert resp.status_code == 405 and resp.get_json()["error"]["code"] == "method_not_allowed"


def test_body_over_limit_is_413_before_parsing(tmp_path) -> None:
    app = create_app({"max_body_bytes": 2048, "data_dir": tmp_path})
    payload = '{"x": [' + ",".join(["[1,2,3]"] * 1000) + '], "weight": [[1]]}'
    resp = app.test_client().post("/v1/conv2d", data=payload, content_type="application/json")
    assert resp.status_code == 413
    assert "MXCONV_MAX_BODY_BYTES" in resp.get_json()["error"]["message"]


def test_flop_and_size_budgets_are_413(tmp_path) -> None:
    client = create_app({"max_flops": 1000, "max_tensor_elements": 500, "data_dir": tmp_path}).test_client()
    resp = client.post(
        "/v1/conv2d", json={"x": np.ones((20, 20)).tolist(), "weight": np.ones((3, 3)).tolist()}
    )
    assert resp.status_code == 413 and "FLOPs" in resp.get_json()["error"]["message"]
    resp = client.post("/v1/conv2d", json={"x": np.ones((30, 30)).tolist(), "weight": [[1]]})
    assert resp.status_code == 413 and "MXCONV_MAX_TENSOR_ELEMENTS" in resp.get_json()["error"]["message"]


@pytest.fixture()
def keyed(tmp_path):
    return create_app({"api_keys": "alpha-key, beta-key", "data_dir": tmp_path}).test_client()


def test_api_keys(keyed) -> None:
    assert keyed.get("/v1/health/live").status_code == 200
    assert keyed.get("/v1/health/ready").status_code == 200
    resp = keyed.post("/v1/corr2d", json=SEED)
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "unauthorized"
    assert keyed.get("/v1/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    for key in ("alpha-key", "beta-key"):
        resp = keyed.post("/v1/corr2d", json=SEED, headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200
    resp = keyed.get("/v1/info", headers={"Authorization": "Bearer wrong"})
    assert "alpha-key" not in resp.get_data(as_text=True)


def test_request_id_is_echoed_or_made(client) -> None:
    assert (
        client.get("/v1/health/live", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    made = client.get("/v1/health/live").headers["X-Request-ID"]
    assert len(made) == 32
    assert client.post("/v1/corr2d", json={}).headers["X-Request-ID"]


def test_info_health_openapi_docs(client) -> None:
    info = client.get("/v1/info").get_json()
    assert info["device"] == "cpu" and info["versions"]["mxnet"] == "1.9.1"
    assert info["limits"]["max_body_bytes"] > 0
    ready = client.get("/v1/health/ready").get_json()
    assert ready["status"] == "ok" and ready["checks"]["mxnet"] == "ok"
    spec = client.get("/openapi.json").get_json()
    assert {"/v1/conv2d", "/v1/corr2d", "/v1/channel-mix", "/v1/info"} <= set(spec["paths"])
    docs = client.get("/docs/swagger")
    assert docs.status_code == 200
    html = docs.get_data(as_text=True)
    assert "swagger" in html.lower() and "https://" not in html  # no CDN: works offline


def test_unexpected_error_is_500_without_trace(app) -> None:
    @app.get("/v1/boom")
    def boom():
        raise RuntimeError("secret internals")

    resp = app.test_client().get("/v1/boom")
    assert resp.status_code == 500
    text = resp.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text
    assert resp.headers["X-Request-ID"] in resp.get_json()["error"]["message"]
