"""The image client and the image examples of docs/images.md against a real `mxconv serve`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import mxconv
import numpy as np
import pytest
from PIL import Image

from . import readme


@pytest.fixture(scope="module")
def api(live_server) -> mxconv.Client:
    return mxconv.Client(live_server.url)


def _stripes() -> np.ndarray:
    x = np.full((6, 6), 255.0)
    x[:, 2:4] = 0
    return x


def test_filter_image_from_array_path_and_bytes(api: mxconv.Client, tmp_path: Path) -> None:
    y = api.filter_image(_stripes(), kernel="edge-horizontal", padding="valid")
    np.testing.assert_array_equal(y, np.tile([0, 255, 0, -255, 0], (6, 1)))

    png = api.filter_image(_stripes(), kernel="edge", output="png")
    assert png.startswith(b"\x89PNG")
    edges = np.asarray(Image.open(io.BytesIO(png)))
    np.testing.assert_array_equal(edges, np.tile([0, 255, 0, 255, 0, 0], (6, 1)))

    rgb = np.random.default_rng(3).integers(0, 256, size=(70, 90, 3)).astype(np.uint8)  # base64 path
    path = tmp_path / "in.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    pixels = np.asarray(Image.open(path), dtype=np.float64)
    from_path = api.filter_image(path, kernel=[[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(from_path, pixels, atol=1e-3)
    from_bytes = api.filter_image(path.read_bytes(), kernel="box", size=5, padding_mode="reflect", stride=2)
    assert from_bytes.shape == (35, 45, 3)
    gray = api.filter_image(str(path), kernel="sobel-x", grayscale=True)
    assert gray.shape == (70, 90)


def test_filter_image_errors_are_typed(api: mxconv.Client) -> None:
    with pytest.raises(mxconv.UnsupportedMediaTypeError):
        api.filter_image(b"GIF89a\x01\x00\x01\x00", kernel="box")
    with pytest.raises(mxconv.ValidationError) as info:
        api.filter_image(_stripes(), kernel="blurry")
    assert "kernel" in info.value.message
    with pytest.raises(mxconv.ValidationError):
        api.filter_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    presets = api.kernels().presets
    assert len(presets) == 10 and presets[4].matrix == [[1.0, -1.0]]


def test_readme_image_curl_examples_run_as_written(live_server, tmp_path: Path) -> None:
    commands = readme.shell_commands("Images and playground", page="docs/images.md")
    assert len(commands) >= 6
    outputs = []
    for command in commands:
        command = readme.against(command, live_server.url).replace("curl -s", "curl -sS --fail-with-body", 1)
        out = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60, cwd=tmp_path)
        assert out.returncode == 0, (command, out.stdout[:500], out.stderr)
        outputs.append(out.stdout)
    for name in ("stripes.png", "edges.png", "blurred.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
    stripes = np.asarray(Image.open(tmp_path / "stripes.png"))
    np.testing.assert_array_equal(stripes, _stripes())
    edges = np.asarray(Image.open(tmp_path / "edges.png"))
    np.testing.assert_array_equal(edges, np.tile([0, 255, 0, 255, 0, 0], (6, 1)))
    valid = json.loads(outputs[2])
    assert valid["y"] == np.tile([0, 255, 0, -255, 0], (6, 1)).tolist()
    assert json.loads(outputs[3])["shape"] == [3, 3]
    assert len(json.loads(outputs[5])["presets"]) == 10
    assert json.loads(outputs[6])["matrix"] == np.full((5, 5), 1 / 25).tolist()


def test_readme_image_client_example_runs_as_written(live_server, tmp_path: Path) -> None:
    code = readme.against(
        readme.code_block("Images and playground", "python", page="docs/images.md"), live_server.url
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "[   0.  255.    0. -255.    0.]" in out.stdout
    assert "(6, 6)" in out.stdout
    assert "float32 ['identity', 'box', 'gaussian', 'sharpen']" in out.stdout
