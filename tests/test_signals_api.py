"""The signals endpoints through Flask's test client: results, the PNG, errors, limits."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import scipy.signal
from mxconv_server.app import create_app
from PIL import Image

SEED_WINDOW = {
    "input": {"kind": "window", "start": 0, "width": 1},
    "system": {"kind": "first_order", "T": 1},
    "dt": 0.01,
    "duration": 5,
}


def b64(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype="<f8")
    return {"dtype": "float64", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}


def decode(v) -> np.ndarray:
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["b64"]), dtype=v["dtype"]).reshape(v["shape"])
    return np.asarray(v)


def test_conv1d_matches_scipy_convolve(client) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 50)), rng.standard_normal((4, 3, 7))
    resp = client.post(
        "/v1/conv1d",
        json={"x": b64(x), "weight": b64(w), "padding": "full", "flip": True, "dtype": "float64"},
    )
    assert resp.status_code == 200
    body = resp.get_json()
    y = decode(body["y"])
    expected = np.array(
        [[sum(scipy.signal.convolve(x[n, c], w[o, c]) for c in range(3)) for o in range(4)] for n in range(2)]
    )
    assert body["shape"] == [2, 4, 56] and body["dtype"] == "float64" and body["flops"] > 0
    np.testing.assert_allclose(y, expected, atol=1e-10)


def test_conv1d_seed_edge_kernel(client) -> None:
    body = client.post("/v1/conv1d", json={"x": [1, 1, 0, 0, 1, 1], "weight": [1, -1]}).get_json()
    assert body["y"] == [0, 1, 0, -1, 0]


def test_lti_seed_window(client) -> None:
    resp = client.post("/v1/lti/response", json=SEED_WINDOW)
    assert resp.status_code == 200
    body = resp.get_json()
    t, y = np.array(body["t"]), np.array(body["y"])
    exact = np.where(t <= 1, 1 - np.exp(-t), (np.e - 1) * np.exp(-t))
    np.testing.assert_allclose(y, exact, atol=1e-5)
    np.testing.assert_allclose(body["y_analytic"], exact, atol=1e-12)
    assert body["max_abs_error"] == pytest.approx(np.abs(y - exact).max(), rel=1e-6)
    assert body["rule"] == "trapezoid" and body["order"] == 2 and "O(dt²)" in body["discretization"]
    assert body["n_samples"] == 501 and len(body["h"]) == len(body["x"]) == 501
    assert "window" in body["input"] and "T = 1" in body["system"]


def test_lti_base64_output_and_no_closed_form(client) -> None:
    resp = client.post(
        "/v1/lti/response",
        json={
            "input": {"kind": "step"},
            "system": {"kind": "transfer_function", "num": [1], "den": [1, 3, 2]},
            "dt": 0.01,
            "duration": 4,
            "output_encoding": "base64",
        },
    )
    body = resp.get_json()
    t, y = decode(body["t"]), decode(body["y"])
    _, y_ref = scipy.signal.step(([1], [1, 3, 2]), T=t)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    assert body["y_analytic"] is None and body["max_abs_error"] is None and body["analytic"] is None


def png_of(resp) -> Image.Image:
    assert resp.status_code == 200, resp.get_json()
    assert resp.mimetype == "image/png"
    assert resp.data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(resp.data)).convert("RGB")


@pytest.mark.parametrize("size", [(800, 500), (641, 317), (200, 150)])
def test_png_has_the_requested_size_and_is_not_blank(client, size) -> None:
    width, height = size
    img = png_of(client.post("/v1/lti/response.png", json={**SEED_WINDOW, "width": width, "height": height}))
    assert img.size == (width, height)
    pixels = np.asarray(img).reshape(-1, 3).astype(int)
    not_white = (pixels < 240).any(axis=1).mean()
    assert 0.005 < not_white < 0.6  # axes, text and curves drawn; not a solid fill
    blue = (np.abs(pixels - (31, 119, 180)).sum(axis=1) < 60).sum()  # the response curve (tab:blue)
    red = (np.abs(pixels - (214, 39, 40)).sum(axis=1) < 60).sum()  # the closed form (tab:red)
    assert blue > width // 4 and red > 0


def test_png_impulse_and_second_order(client) -> None:
    body = {
        "input": {"kind": "impulse"},
        "system": {"kind": "second_order", "wn": 5, "zeta": 0.2},
        "dt": 0.01,
        "duration": 3,
    }
    img = png_of(client.post("/v1/lti/response.png", json=body))
    assert img.size == (800, 500)
    assert len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 20


NAN = {"dtype": "float64", "shape": [2], "b64": base64.b64encode(np.array([1.0, np.nan]).tobytes()).decode()}
INF = {"dtype": "float64", "shape": [2], "b64": base64.b64encode(np.array([1.0, np.inf]).tobytes()).decode()}


def lti(**changes):
    body = {"input": {"kind": "step"}, "system": {"kind": "first_order", "T": 1}, "dt": 0.01, "duration": 2}
    return {**body, **changes}


@pytest.mark.parametrize(
    "path, body, status, code, field",
    [
        ("/v1/lti/response", lti(dt=0), 422, "validation_error", "dt"),
        ("/v1/lti/response", lti(dt=-0.5), 422, "validation_error", "dt"),
        ("/v1/lti/response", lti(dt=3), 422, "invalid_argument", "dt"),
        ("/v1/lti/response", lti(duration=0), 422, "validation_error", "duration"),
        ("/v1/lti/response", lti(dt=1e-6, duration=100), 413, "over_budget", "dt"),
        ("/v1/lti/response", lti(system={"kind": "first_order", "T": 0}), 422, "validation_error", "T"),
        ("/v1/lti/response", lti(system={"kind": "first_order", "T": -2}), 422, "validation_error", "T"),
        ("/v1/lti/response", lti(system={"kind": "first_order"}), 422, "validation_error", "T"),
        (
            "/v1/lti/response",
            lti(system={"kind": "second_order", "wn": 0, "zeta": 0.5}),
            422,
            "validation_error",
            "wn",
        ),
        (
            "/v1/lti/response",
            lti(system={"kind": "transfer_function", "num": [1, 0, 0], "den": [1, 2]}),
            422,
            "invalid_argument",
            "system.num",
        ),
        (
            "/v1/lti/response",
            lti(system={"kind": "transfer_function", "num": [2, 1], "den": [1, 1]}),
            422,
            "invalid_argument",
            "strictly proper",
        ),
        (
            "/v1/lti/response",
            lti(system={"kind": "custom", "h": [1, 0.5], "t0": -0.02}),
            422,
            "invalid_argument",
            "system.t0",
        ),
        ("/v1/lti/response", lti(system={"kind": "custom", "h": NAN}), 422, "validation_error", "h"),
        (
            "/v1/lti/response",
            lti(input={"kind": "custom", "samples": INF}),
            422,
            "validation_error",
            "samples",
        ),
        (
            "/v1/lti/response",
            lti(input={"kind": "custom", "samples": [[1, 2]]}),
            422,
            "invalid_argument",
            "samples",
        ),
        ("/v1/lti/response", lti(input={"kind": "sine", "freq": 60}), 422, "invalid_argument", "input.freq"),
        (
            "/v1/lti/response",
            lti(input={"kind": "window", "start": -1, "width": 1}),
            422,
            "validation_error",
            "start",
        ),
        ("/v1/lti/response", lti(input={"kind": "square"}), 422, "validation_error", "input"),
        (
            "/v1/lti/response",
            lti(system={"kind": "first_order", "T": 1, "tau": 1}),
            422,
            "validation_error",
            "tau",
        ),
        ("/v1/lti/response.png", {**lti(), "width": 10}, 422, "validation_error", "width"),
        ("/v1/lti/response.png", lti(dt=0), 422, "validation_error", "dt"),
        ("/v1/conv1d", {"x": [1, 2, 3], "weight": [1, 1, 1, 1]}, 422, "invalid_argument", "weight"),
        (
            "/v1/conv1d",
            {"x": [1, 2, 3], "weight": [1], "padding": [1, 2, 3]},
            422,
            "validation_error",
            "padding",
        ),
        (
            "/v1/conv1d",
            {"x": [[1, 2, 3]] * 3, "weight": [[[1]]] * 2, "groups": 2},
            422,
            "invalid_argument",
            "groups",
        ),
        ("/v1/conv1d", {"x": [[[[1.0]]]], "weight": [1]}, 422, "invalid_argument", "x"),
        ("/v1/conv1d", {"x": NAN, "weight": [1]}, 422, "validation_error", "x"),
    ],
)
def test_bad_input_table(client, path, body, status, code, field) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == status, resp.get_json()
    err = resp.get_json()["error"]
    assert err["code"] == code
    assert field in err["message"], err["message"]


def test_grid_budget_is_a_setting(tmp_path) -> None:
    small = create_app({"data_dir": tmp_path / "data", "max_signal_samples": 100}).test_client()
    assert small.post("/v1/lti/response", json=lti(dt=0.1, duration=9.9)).status_code == 200
    resp = small.post("/v1/lti/response", json=lti(dt=0.1, duration=10))
    assert resp.status_code == 413 and "MXCONV_MAX_SIGNAL_SAMPLES" in resp.get_json()["error"]["message"]


def test_openapi_and_info_list_signals(client) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"/v1/conv1d", "/v1/lti/response", "/v1/lti/response.png"} <= set(paths)
    png = paths["/v1/lti/response.png"]["post"]["responses"]["200"]["content"]
    assert "image/png" in png
    info = client.get("/v1/info").get_json()
    assert {"conv1d", "lti-response", "lti-response-png"} <= set(info["features"])
    assert info["limits"]["max_signal_samples"] == 20_000
