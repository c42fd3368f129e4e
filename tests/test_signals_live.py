"""The typed client's signals methods against a real `mxconv serve`, and the
examples of docs/signals.md run exactly as written."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import mxconv
import numpy as np
import pytest
import scipy.signal
from mxconv.schemas import CustomInput, CustomSystem, FirstOrder, ImpulseInput, StepInput, WindowInput
from PIL import Image

from . import readme


@pytest.fixture(scope="module")
def api(live_server) -> mxconv.Client:
    return mxconv.Client(live_server.url)


def test_conv1d_batched_grouped_matches_scipy(api: mxconv.Client) -> None:
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 4, 300)), rng.standard_normal((6, 2, 9)), rng.standard_normal(6)
    result = api.conv1d(
        x, w, b, groups=2, padding=(3, 5), stride=2, flip=True, dtype="float64", detailed=True
    )
    expected = np.array(
        [
            [
                sum(
                    scipy.signal.convolve(np.pad(x[n, (o // 3) * 2 + c], (3, 5)), w[o, c], "valid")
                    for c in range(2)
                )[::2]
                + b[o]
                for o in range(6)
            ]
            for n in range(2)
        ]
    )
    assert isinstance(result.y, np.ndarray) and result.y.shape == expected.shape
    np.testing.assert_allclose(result.y, expected, atol=1e-10)


def test_lti_seed_step_and_window(api: mxconv.Client) -> None:
    step = api.lti_response(StepInput(), FirstOrder(T=2), dt=0.01, duration=10)
    assert isinstance(step.y, np.ndarray) and step.y.dtype == np.float64
    np.testing.assert_allclose(step.y, 1 - np.exp(-step.t / 2), atol=1e-5)
    window = api.lti_response(WindowInput(start=0, width=1), FirstOrder(T=2), dt=0.01, duration=10)
    t = window.t
    exact = np.where(t <= 1, 1 - np.exp(-t / 2), (np.exp(0.5) - 1) * np.exp(-t / 2))
    np.testing.assert_allclose(window.y, exact, atol=1e-5)
    assert window.y_analytic is not None and window.max_abs_error is not None
    assert window.rule == "trapezoid" and window.order == 2


def test_lti_custom_arrays_travel_as_base64(api: mxconv.Client) -> None:
    dt = 0.001
    t = np.arange(3001) * dt
    h = np.exp(-t) * np.cos(4 * t)  # over the list threshold: goes as base64
    r = api.lti_response(CustomInput(samples=np.ones(3001)), CustomSystem(h=h), dt=dt, duration=3)
    _, y_ref, _ = scipy.signal.lsim(([1, 1], [1, 2, 17]), np.ones_like(t), t)
    np.testing.assert_allclose(r.y, y_ref, atol=1e-5)
    r = api.lti_response(ImpulseInput(area=2), {"kind": "custom", "h": h.tolist()[:10]}, dt=dt, duration=0.02)
    np.testing.assert_allclose(r.y[:10], 2 * h[:10])


def test_lti_png(api: mxconv.Client) -> None:
    png = api.lti_response_png(WindowInput(), FirstOrder(T=0.5), dt=0.01, duration=4, width=500, height=300)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (500, 300)
    assert np.asarray(img.convert("L")).std() > 5


def test_lti_errors_are_typed(api: mxconv.Client) -> None:
    with pytest.raises(mxconv.ValidationError) as info:
        api.lti_response(StepInput(), {"kind": "custom", "h": [1, 2], "t0": -1}, dt=0.1, duration=1)
    assert info.value.code == "invalid_argument" and info.value.details[0]["loc"] == ["system", "t0"]
    with pytest.raises(mxconv.PayloadTooLargeError, match="dt"):
        api.lti_response(StepInput(), FirstOrder(T=1), dt=1e-5, duration=10)
    with pytest.raises(mxconv.ValidationError, match="dt"):
        api.lti_response(StepInput(), FirstOrder(T=1), dt=0, duration=1)


def test_readme_signals_curl_examples_run_as_written(live_server, tmp_path: Path) -> None:
    commands = readme.shell_commands("Signals", page="docs/signals.md")
    assert len(commands) == 5
    for command in commands:
        command = readme.against(command, live_server.url)
        out = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=tmp_path,
        ).stdout
        body, status = out.rsplit("\n", 1)
        assert status == "200", (command, body)
        if "-o response.png" not in command:
            assert "error" not in json.loads(body)
    assert Image.open(tmp_path / "response.png").size == (800, 500)


def test_readme_signals_client_example_runs_as_written(live_server, tmp_path: Path) -> None:
    code = readme.against(readme.code_block("Signals", "python", page="docs/signals.md"), live_server.url)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:7] == [
        "(2, 4, 100)",
        "trapezoid 2 5.3e-06",
        "(501,) 0.6321",
        "4.0",
        "1.2e-04",
        "0.4",
        "b'\\x89PNG'",
    ]
    assert lines[7] == "422 system.num: the transfer function must be strictly proper"
