"""padding_mode="symmetric" (numpy's symmetric, scipy's boundary="symm": the mirror that repeats
the edge sample) everywhere a convolution is asked for: conv2d, conv1d, image filtering, training
jobs, the client and the OpenAPI spec."""

from __future__ import annotations

import io

import mxconv
import numpy as np
import pytest
import scipy.signal
from mxconv_server.compute import conv, cost
from mxconv_server.compute.train import TrainConfig, train
from PIL import Image

from . import oracle


def test_scipy_test_sym_boundary() -> None:
    """scipy's own test_sym_boundary: convolve2d(a, b, 'full', 'symm')."""
    a = [[1, 2, 3], [3, 4, 5]]
    b = [[2, 3, 4], [4, 5, 6]]
    d = [[34, 30, 44, 62, 66], [52, 48, 62, 80, 84], [82, 78, 92, 110, 114]]
    y = conv.conv2d(a, b, padding="full", padding_mode="symmetric", flip=True, dtype="float64")
    np.testing.assert_array_equal(y, d)
    np.testing.assert_array_equal(scipy.signal.convolve2d(a, b, "full", "symm"), d)


@pytest.mark.parametrize("flip", [False, True])
def test_scipy_test_same_with_boundary_symm(flip: bool) -> None:
    """scipy's test_same_with_boundary: a 21-wide kernel over a 4-wide image mirrors again."""
    y = conv.conv2d(
        [[2.0, -1.0, 3.0, 4.0]], np.ones((1, 21)), padding="same", padding_mode="symmetric", flip=flip
    )
    np.testing.assert_allclose(y, [[37.0, 42.0, 44.0, 45.0]])


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (2, 0, 3, 1), (5, 4, 6, 7)])
def test_conv2d_every_formulation_against_numpy_pad(pads) -> None:
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 4, 6, 7)), rng.standard_normal((2, 2, 3, 4)), rng.standard_normal(2)
    plan = conv.plan_conv2d(x.shape, w.shape, b.shape, padding=list(pads), padding_mode="symmetric", groups=2)
    expected = oracle.conv2d(x, w, b, pads=pads, padding_mode="symmetric", groups=2)
    for est in cost.candidates(conv.cost_shape(plan, "float64", "cpu"), exhaustive=True):
        y = conv.conv2d(x, w, b, dtype="float64", plan=plan, formulation=est)
        np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10, err_msg=est.label)


def test_conv1d_against_numpy() -> None:
    rng = np.random.default_rng(4)
    x, k = rng.standard_normal(40), rng.standard_normal(9)
    y = conv.conv1d(x, k, padding=[6, 3], padding_mode="symmetric", dtype="float64")
    expected = np.correlate(np.pad(x, (6, 3), mode="symmetric"), k, mode="valid")
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


def test_a_layer_with_symmetric_padding_trains() -> None:
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((4, 1, 9, 9)), rng.standard_normal((1, 1, 3, 3))
    y = conv.conv2d(x, w, padding="same", padding_mode="symmetric")
    cfg = TrainConfig(
        out_channels=1,
        kernel_size=3,
        padding="same",
        padding_mode="symmetric",
        use_bias=False,
        optimizer="adam",
        learning_rate=0.05,
        epochs=300,
    )
    np.testing.assert_allclose(train(x, y, cfg).weight, w, atol=1e-3)


def test_every_endpoint_and_the_spec_take_it(client) -> None:
    x = np.arange(20, dtype=float).reshape(4, 5)
    w = np.array([[1.0, -2.0, 0.5]])
    expected = oracle.conv2d(x[None, None], w[None, None], pads=(1, 1, 2, 2), padding_mode="symmetric")[0, 0]
    r = client.post(
        "/v1/conv2d",
        json={"x": x.tolist(), "weight": w.tolist(), "padding": [1, 2], "padding_mode": "symmetric"},
    )
    assert r.status_code == 200, r.get_json()
    np.testing.assert_allclose(r.get_json()["y"], expected, rtol=1e-5)
    r = client.post(
        "/v1/conv1d",
        json={"x": [1, 2, 3], "weight": [1, 1, 1], "padding": "same", "padding_mode": "symmetric"},
    )
    assert r.get_json()["y"] == [4.0, 6.0, 8.0]  # [1 | 1 2 3 | 3]
    buf = io.BytesIO()
    Image.fromarray(np.array([[0, 100, 200]], np.uint8)).save(buf, format="PNG")
    r = client.post(
        "/v1/images/filter?kernel=[[1,1,1]]&padding_mode=symmetric",
        data=buf.getvalue(),
        headers={"Content-Type": "image/png", "Accept": "application/json"},
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["y"] == [[100.0, 300.0, 500.0]]  # [0 | 0 100 200 | 200]
    job = {
        "x": x.tolist(),
        "y": expected.tolist(),
        "layer": {"kernel_size": [1, 3], "padding": [1, 2], "padding_mode": "symmetric"},
    }
    job["layer"]["padding"] = [1, 1, 2, 2]
    assert client.post("/v1/jobs", json=job).status_code == 202
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    for model in ("Conv2dRequest", "Conv1dRequest", "LayerSpec"):
        assert "symmetric" in str(schemas[model]["properties"]["padding_mode"]), model
    image_params = spec["paths"]["/v1/images/filter"]["post"]["parameters"]
    assert "symmetric" in str(next(p for p in image_params if p["name"] == "padding_mode"))


def test_the_client_sends_it(live_server) -> None:
    x = np.random.default_rng(6).standard_normal((1, 2, 9, 8))
    w = np.random.default_rng(7).standard_normal((3, 2, 4, 4))
    api = mxconv.Client(live_server.url)
    y = api.conv2d(x, w, padding="same", padding_mode="symmetric", dtype="float64")
    pads = conv.plan_conv2d(x.shape, w.shape, padding="same").pads
    np.testing.assert_allclose(
        y, oracle.conv2d(x, w, pads=pads, padding_mode="symmetric"), rtol=1e-9, atol=1e-9
    )
