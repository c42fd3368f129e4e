"""/v2, the Open Inference Protocol, driven by Triton's own client (tritonclient.http) against a
live gunicorn server: the seed's numbers in both tensor forms both ways, /v1's answers bit for
bit, the health and metadata calls, every bad input as an InferenceServerException with its
message, API keys, the aio client and the raw protocol through requests, the fast paths."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import mxconv
import numpy as np
import pytest
import requests

from . import oracle
from .conftest import LiveServer, start_server

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

SEED_X = np.arange(9, dtype=np.float32).reshape(3, 3)
SEED_K = np.arange(4, dtype=np.float32).reshape(2, 2)
SEED_Y = [[19, 25], [37, 43]]
KEY = "oip-key-5d1e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(tmp_path_factory.mktemp("oip"), workers=2, MXCONV_JOB_WORKERS="0")
    yield s
    s.stop()


def netloc(server: LiveServer) -> str:
    return urlsplit(server.url).netloc


@pytest.fixture(scope="module")
def triton(server: LiveServer) -> Iterator[Any]:
    client = httpclient.InferenceServerClient(netloc(server))
    yield client
    client.close()


@pytest.fixture(scope="module")
def v1(server: LiveServer) -> mxconv.Client:
    return mxconv.Client(server.url, transport="binary")


def _datatype(a: np.ndarray) -> str:
    return {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64"}[a.dtype]


def inputs(arrays: dict[str, Any], binary: bool = True) -> list[Any]:
    out = []
    for name, value in arrays.items():
        a = np.asarray(value)
        tensor = httpclient.InferInput(name, list(a.shape), _datatype(a))
        tensor.set_data_from_numpy(a, binary_data=binary)
        out.append(tensor)
    return out


def infer(
    client: Any,
    model: str,
    arrays: dict[str, Any],
    *,
    binary_in: bool = True,
    binary_out: bool = True,
    outputs: tuple[str, ...] = ("y",),
    **params: Any,
) -> Any:
    requested = [httpclient.InferRequestedOutput(name, binary_data=binary_out) for name in outputs]
    return client.infer(model, inputs(arrays, binary_in), outputs=requested, parameters=params or None)


# -- the seed's numbers, both forms both ways -----------------------------------------------


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_seed_corr2d(triton: Any, binary_in: bool, binary_out: bool) -> None:
    result = infer(
        triton, "corr2d", {"x": SEED_X, "kernel": SEED_K}, binary_in=binary_in, binary_out=binary_out
    )
    y = result.as_numpy("y")
    assert y.dtype == np.float32 and y.tolist() == SEED_Y
    output = result.get_output("y")
    assert output["datatype"] == "FP32" and output["shape"] == [2, 2]
    assert ("binary_data_size" in output.get("parameters", {})) == binary_out
    assert ("data" in output) == (not binary_out)
    np.testing.assert_array_equal(y, oracle.corr2d(SEED_X, SEED_K))


def test_no_outputs_named_means_all_of_them_as_binary(triton: Any) -> None:
    result = triton.infer("corr2d", inputs({"x": SEED_X, "kernel": SEED_K}))
    assert result.as_numpy("y").tolist() == SEED_Y
    assert result.get_output("y")["parameters"]["binary_data_size"] == 16
    response = result.get_response()
    assert response["model_name"] == "corr2d" and response["model_version"] == "1"
    assert response["parameters"]["flops"] == 32


def test_request_id_comes_back(triton: Any) -> None:
    result = triton.infer("corr2d", inputs({"x": SEED_X, "kernel": SEED_K}), request_id="seed-42")
    assert result.get_response()["id"] == "seed-42"


# -- the same answers as /v1, bit for bit ----------------------------------------------------


def test_edge_map_matches_v1_bit_for_bit(triton: Any, v1: mxconv.Client) -> None:
    stripes = np.ones((6, 6), np.float32)
    stripes[:, 2:4] = 0
    edge = np.array([[1, -1]], np.float32)
    expected = np.tile([0, 1, 0, -1, 0], (6, 1))
    for model, names in (("corr2d", ("x", "kernel")), ("conv2d", ("x", "weight"))):
        y = infer(triton, model, dict(zip(names, (stripes, edge), strict=True))).as_numpy("y")
        np.testing.assert_array_equal(y, expected)
        np.testing.assert_array_equal(y, v1.conv2d(stripes, edge))


GEOMETRIES = [
    {"padding": "same"},
    {"stride": 2},
    {"groups": 2, "padding": 1},
    {"padding": "same", "groups": 2, "padding_mode": "reflect", "dilation": 2},
    {"padding": "[1, 2]", "stride": "[2, 1]", "dilation": 2},  # lists as JSON text: the protocol's strings
    {"padding": [0, 1, 2, 0], "flip": True},  # and as lists, which tritonclient sends as they are
]


@pytest.mark.parametrize("params", GEOMETRIES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_parameters_match_v1_bit_for_bit(triton: Any, v1: mxconv.Client, params: dict[str, Any]) -> None:
    rng = np.random.default_rng(3)
    groups = params.get("groups", 1)
    x = rng.standard_normal((2, 4, 11, 10)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y = infer(triton, "conv2d", {"x": x, "weight": w, "bias": b}, **params).as_numpy("y")
    geometry = {
        k: json.loads(v) if isinstance(v, str) and v.startswith("[") else v for k, v in params.items()
    }
    expected = v1.conv2d(x, w, b, **geometry)
    assert y.shape == expected.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, expected)


def test_parameters_against_the_oracle(triton: Any) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    y = infer(triton, "conv2d", {"x": x, "weight": w}, padding=1, stride=2, groups=2).as_numpy("y")
    expected = oracle.conv2d(x, w, stride=(2, 2), pads=(1, 1, 1, 1), groups=2)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_fp64_inputs_compute_and_answer_in_fp64(triton: Any, v1: mxconv.Client) -> None:
    x, k = SEED_X.astype(np.float64) / 3, SEED_K.astype(np.float64) / 7
    for binary in (False, True):
        result = infer(triton, "corr2d", {"x": x, "kernel": k}, binary_in=binary, binary_out=binary)
        y = result.as_numpy("y")
        assert y.dtype == np.float64 and result.get_output("y")["datatype"] == "FP64"
        np.testing.assert_array_equal(y, v1.corr2d(x, k, dtype="float64"))


def test_conv1d_matches_v1(triton: Any, v1: mxconv.Client) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 40)).astype(np.float32)
    w = rng.standard_normal((4, 3, 5)).astype(np.float32)
    y = infer(triton, "conv1d", {"x": x, "weight": w}, padding="same", dilation=2).as_numpy("y")
    np.testing.assert_array_equal(y, v1.conv1d(x, w, padding="same", dilation=2))
    y = infer(triton, "conv1d", {"x": x, "weight": w}, padding="[2, 1]", stride=3).as_numpy("y")
    np.testing.assert_array_equal(y, v1.conv1d(x, w, padding=[2, 1], stride=3))


def test_channel_mix_and_its_matrix_view_match_v1(triton: Any, v1: mxconv.Client) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    w = rng.standard_normal((2, 3)).astype(np.float32)
    expected = v1.channel_mix(x, w, matrix_view=True)  # JSON lists from /v1: float32 once more is exact
    # Asking for a matrix-view output turns the matrix view on; binary and JSON outputs mixed.
    names = ("y", "x_flat", "w", "y_flat")
    requested = [httpclient.InferRequestedOutput(n, binary_data=n != "w") for n in names]
    result = triton.infer("channel_mix", inputs({"x": x, "weight": w}), outputs=requested)
    np.testing.assert_array_equal(result.as_numpy("y"), expected.y.astype(np.float32))
    for name in ("x_flat", "w", "y_flat"):
        np.testing.assert_array_equal(
            result.as_numpy(name), getattr(expected.matrix_view, name).astype(np.float32)
        )
    # Without it, only y comes back.
    plain = triton.infer("channel_mix", inputs({"x": x, "weight": w}))
    assert [o["name"] for o in plain.get_response()["outputs"]] == ["y"]


def test_image_filter_matches_v1(triton: Any, v1: mxconv.Client) -> None:
    image = np.random.default_rng(7).integers(0, 256, (12, 16, 3)).astype(np.float32)
    expected = v1.filter_image(image, "sobel-x", output="result")
    result = triton.infer("image_filter", inputs({"image": image}), parameters={"kernel": "sobel-x"})
    np.testing.assert_array_equal(result.as_numpy("y"), expected.y)
    np.testing.assert_array_equal(result.as_numpy("kernel"), expected.kernel)
    assert result.get_response()["parameters"]["mapping"] == expected.mapping
    custom = triton.infer(
        "image_filter", inputs({"image": image[..., 0]}), parameters={"kernel": "[[1, -1]]"}
    )
    np.testing.assert_array_equal(custom.as_numpy("y"), v1.filter_image(image[..., 0], [[1, -1]]))


# -- health, metadata, the repository index ---------------------------------------------------


def test_health_and_metadata(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    for model in ("conv2d", "conv1d", "corr2d", "channel_mix", "image_filter"):
        assert triton.is_model_ready(model) and triton.is_model_ready(model, "1")
    assert not triton.is_model_ready("conv3d") and not triton.is_model_ready("conv2d", "2")
    server = triton.get_server_metadata()
    assert server["name"] == "mxconv" and server["version"] == mxconv.__version__
    assert {"binary_tensor_data", "parameters"} <= set(server["extensions"])
    meta = triton.get_model_metadata("conv2d")
    assert meta == triton.get_model_metadata("conv2d", "1")
    assert meta["name"] == "conv2d" and meta["versions"] == ["1"] and meta["platform"]
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, -1, -1, -1]},
        {"name": "weight", "datatype": "FP32", "shape": [-1, -1, -1, -1]},
        {"name": "bias", "datatype": "FP32", "shape": [-1]},
    ]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, -1, -1, -1]}]
    corr = triton.get_model_metadata("corr2d")
    assert [(t["name"], t["shape"]) for t in corr["inputs"]] == [("x", [-1, -1]), ("kernel", [-1, -1])]
    index = triton.get_model_repository_index()
    assert [m["name"] for m in index] == ["conv2d", "conv1d", "corr2d", "channel_mix", "image_filter"]
    assert all(m["state"] == "READY" and m["version"] == "1" for m in index)


# -- every bad input: an InferenceServerException that says what to change ------------------


def _mistyped(_: Any) -> list[Any]:
    x = httpclient.InferInput("x", [3, 3], "INT32")
    x.set_data_from_numpy(SEED_X.astype(np.int32))
    return [x, *inputs({"kernel": SEED_K})]


def _reshaped(binary: bool) -> Any:
    def make(_: Any) -> list[Any]:
        x = httpclient.InferInput("x", [3, 3], "FP32")
        x.set_data_from_numpy(SEED_X, binary_data=binary)
        x.set_shape([2, 2])  # the shape no longer matches the data sent
        return [x, *inputs({"kernel": SEED_K})]

    return make


def _seed(_: Any) -> list[Any]:
    return inputs({"x": SEED_X, "kernel": SEED_K})


BAD = {
    "wrong datatype": (_mistyped, {}, "400", "input 'x': datatype 'INT32'", "FP32 or FP64"),
    "shape vs JSON data": (
        _reshaped(False),
        {},
        "400",
        "shape [2, 2] holds 4 values, but data has 9",
        "row-major",
    ),
    "shape vs binary_data_size": (
        _reshaped(True),
        {},
        "400",
        "binary_data_size is 36",
        "shape [2, 2] of FP32 is 16",
    ),
    "unknown model": (_seed, {"model_name": "conv3d"}, "404", "unknown model 'conv3d'", "corr2d"),
    "unknown version": (_seed, {"model_version": "2"}, "404", "no version '2'", "'1'"),
    "unknown parameter": (_seed, {"parameters": {"strid": 2}}, "400", "takes no parameter 'strid'", "dtype"),
    "reserved parameter": (
        _seed,
        {"priority": 1},
        "400",
        "parameter 'priority' is not supported",
        "leave it out",
    ),
    "bad parameter value": (_seed, {"parameters": {"dtype": "int8"}}, "400", "dtype:", "float32"),
    "unknown input": (lambda _: inputs({"x": SEED_X, "w": SEED_K}), {}, "400", "no input 'w'", "x, kernel"),
    "missing input": (lambda _: inputs({"x": SEED_X}), {}, "400", "needs the input 'kernel'", "x, kernel"),
    "unknown output": (
        _seed,
        {"outputs": [httpclient.InferRequestedOutput("z")]},
        "400",
        "has no output 'z'",
        "its outputs are y",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_raise_with_the_message(triton: Any, case: str) -> None:
    make, kwargs, status, *phrases = BAD[case]
    kwargs = dict(kwargs)
    model = kwargs.pop("model_name", "corr2d")
    with pytest.raises(InferenceServerException) as caught:
        triton.infer(model, make(None), **kwargs)
    message = caught.value.message()
    assert caught.value.status() == status, message
    for phrase in phrases:
        assert phrase in message, message


def test_an_invalid_option_gets_v1s_message(server: LiveServer, triton: Any) -> None:
    """The request is validated by /v1's own model: the same words, the field named the same."""
    x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(InferenceServerException) as caught:
        triton.infer("conv2d", inputs({"x": x, "weight": w}), parameters={"padding": "bogus"})
    v1 = requests.post(
        server.url + "/v1/conv2d", json={"x": x.tolist(), "weight": w.tolist(), "padding": "bogus"}
    )
    assert v1.status_code == 422 and caught.value.status() == "400"
    assert caught.value.message() == v1.json()["error"]["message"]
    assert caught.value.message().startswith("padding: expected")


def _framed(header: dict[str, Any], data: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + data, {"Inference-Header-Content-Length": str(len(head))}


def test_binary_data_size_must_match_the_body(server: LiveServer) -> None:
    """tritonclient always sends a consistent body; a hand-made one may not."""
    url = server.url + "/v2/models/corr2d/infer"

    def tensor(name: str, a: np.ndarray) -> dict[str, Any]:
        return {
            "name": name,
            "shape": list(a.shape),
            "datatype": "FP32",
            "parameters": {"binary_data_size": a.nbytes},
        }

    header = {"inputs": [tensor("x", SEED_X), tensor("kernel", SEED_K)]}
    data = SEED_X.tobytes() + SEED_K.tobytes()
    body, headers = _framed(header, data)
    assert requests.post(url, data=body, headers=headers, timeout=30).status_code == 200
    body, headers = _framed(header, data + b"\0" * 4)  # 4 bytes too many
    resp = requests.post(url, data=body, headers=headers, timeout=30)
    assert resp.status_code == 400
    assert "add up to 52 bytes, but 56 bytes follow" in resp.json()["error"], resp.text
    body, headers = _framed(header, data[:-4])  # 4 bytes short
    resp = requests.post(url, data=body, headers=headers, timeout=30)
    assert (
        resp.status_code == 400
        and "input 'kernel': its 16 bytes of binary data end past the body" in resp.text
    )


# -- API keys -----------------------------------------------------------------------------------


def test_api_keys_are_checked(tmp_path_factory: pytest.TempPathFactory) -> None:
    keyed = start_server(
        tmp_path_factory.mktemp("oip-keys"), workers=1, MXCONV_API_KEYS=KEY, MXCONV_JOB_WORKERS="0"
    )
    client = httpclient.InferenceServerClient(netloc(keyed))
    try:
        assert client.is_server_live() and client.is_server_ready()  # probes need no secret
        with pytest.raises(InferenceServerException) as caught:
            client.infer("corr2d", _seed(None))
        assert caught.value.status() == "401" and "missing API key" in caught.value.message()
        with pytest.raises(InferenceServerException) as caught:
            client.get_model_metadata("corr2d", headers={"Authorization": "Bearer wrong"})
        assert caught.value.status() == "401" and "invalid API key" in caught.value.message()
        auth = {"Authorization": f"Bearer {KEY}"}
        assert client.infer("corr2d", _seed(None), headers=auth).as_numpy("y").tolist() == SEED_Y
        assert client.get_server_metadata(headers=auth)["name"] == "mxconv"
        assert client.get_model_repository_index(headers=auth)
    finally:
        client.close()
        keyed.stop()


# -- no client's quirks: the aio client, and the raw protocol through requests ---------------


def test_the_aio_client(server: LiveServer) -> None:
    import tritonclient.http.aio as aioclient

    async def run() -> Any:
        client = aioclient.InferenceServerClient(netloc(server))
        try:
            assert await client.is_server_ready()
            result = await client.infer("corr2d", inputs({"x": SEED_X, "kernel": SEED_K}))
            meta = await client.get_model_metadata("corr2d")
            return result.as_numpy("y"), meta
        finally:
            await client.close()

    y, meta = asyncio.run(run())
    assert y.tolist() == SEED_Y and meta["name"] == "corr2d"


def test_the_raw_protocol_through_requests(server: LiveServer) -> None:
    body = {
        "id": "raw",
        "inputs": [
            {
                "name": "x",
                "shape": [3, 3],
                "datatype": "FP32",
                "data": SEED_X.tolist(),
            },  # nested: allowed too
            {"name": "kernel", "shape": [2, 2], "datatype": "FP32", "data": [0, 1, 2, 3]},
        ],
        "outputs": [{"name": "y"}],
    }
    resp = requests.post(server.url + "/v2/models/corr2d/versions/1/infer", json=body, timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    answer = resp.json()
    assert answer["id"] == "raw" and answer["outputs"][0]["data"] == [19, 25, 37, 43]
    assert requests.get(server.url + "/v2/health/live", timeout=30).status_code == 200
    missing = requests.get(server.url + "/v2/models/conv3d", timeout=30)
    assert missing.status_code == 404 and "unknown model 'conv3d'" in missing.json()["error"]


# -- the same transport as /v1: fast paths and metrics ---------------------------------------


def _metrics(url: str) -> str:
    return requests.get(url + "/metrics", timeout=30).text


def _counter(text: str, name: str, **labels: str) -> float:
    found = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            found += float(line.rsplit(" ", 1)[1])
    return found


def test_fast_paths_and_metrics(server: LiveServer, triton: Any) -> None:
    """A large binary request is read straight from the socket and answered onto it (the
    counters /v1's tests read, mxconv_fast_path_total), and counted per model."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 8, 128, 128)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    label = "/v2/models/conv2d/infer"
    before = _metrics(server.url)
    for _ in range(2):  # two workers: whichever one serves, its counters are in the sum
        y = infer(triton, "conv2d", {"x": x, "weight": w}, padding=1).as_numpy("y")
        np.testing.assert_allclose(y, oracle.conv2d(x, w, pads=(1, 1, 1, 1)), rtol=1e-4, atol=1e-3)
    after = _metrics(server.url)
    for path in ("body_direct_read", "oip_socket_send"):
        fast = "mxconv_fast_path_total"
        assert _counter(after, fast, path=path) >= _counter(before, fast, path=path) + 2, path
    flops = 2 * 8 * 8 * 9 * 128 * 128
    assert (
        _counter(after, "mxconv_flops_total", endpoint=label)
        - _counter(before, "mxconv_flops_total", endpoint=label)
        == 2 * flops
    )
    assert _counter(after, "mxconv_compute_seconds_count", endpoint=label) >= 2
    assert _counter(after, "mxconv_http_requests_total", endpoint=label, status="200") >= 2


# -- the page's example, exactly as written ---------------------------------------------------


@pytest.mark.parametrize("page", ["README.md", "docs/inference-protocol.md"])
def test_the_docs_example_runs_as_written(server: LiveServer, tmp_path, page: str) -> None:  # noqa: ANN001
    import subprocess
    import sys

    from . import readme

    code = readme.code_block("Use it from Triton or KServe tools", "python", page=page)
    expected = readme.code_block("Use it from Triton or KServe tools", "text", page=page)
    script = tmp_path / "example.py"
    script.write_text(code.replace("127.0.0.1:8000", netloc(server)))
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected, run.stdout
