"""The `mxconv` command against a live server: one test per command, results checked against
independent oracles, plus --version, --json, short job ids and a pipe closed early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from . import oracle
from .conftest import LiveServer

CLI = [sys.executable, "-m", "mxconv.cli"]


def run(
    server: LiveServer, *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "MXCONV_URL": server.url},
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def test_version_and_help() -> None:
    out = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "mxconv 0.1.0"
    helptext = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60).stdout
    for command in (
        "conv2d",
        "conv1d",
        "corr2d",
        "channel-mix",
        "filter",
        "lti",
        "kernels",
        "jobs",
        "info",
        "health",
    ):
        assert f"    {command}" in helptext, command


def test_info_and_health(live_server: LiveServer) -> None:
    assert "device cpu" in run(live_server, "info").stdout
    info = json.loads(run(live_server, "--json", "info").stdout)
    assert info["service"] == "mxconv" and "max_flops" in info["limits"]
    assert run(live_server, "health").stdout.strip() == "ok"


def test_corr2d_prints_the_seed(live_server: LiveServer) -> None:
    out = run(live_server, "corr2d", "[[0,1,2],[3,4,5],[6,7,8]]", "[[0,1],[2,3]]").stdout
    assert json.loads(out) == [[19, 25], [37, 43]]


def test_conv2d_npy_in_npy_out(live_server: LiveServer, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, w = (
        rng.standard_normal((1, 2, 9, 8)).astype(np.float32),
        rng.standard_normal((4, 2, 3, 3)).astype(np.float32),
    )
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    out = run(
        live_server,
        "conv2d",
        "x.npy",
        "w.npy",
        "--padding",
        "1",
        "--stride",
        "2",
        "-o",
        "y.npy",
        cwd=tmp_path,
    )
    assert "y.npy: [1, 4, 5, 4]" in out.stdout
    y = np.load(tmp_path / "y.npy", allow_pickle=False)
    expected = oracle.conv2d(x, w, pads=(1, 1, 1, 1), stride=(2, 2))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    result = json.loads(
        run(
            live_server,
            "--json",
            "conv2d",
            "x.npy",
            "w.npy",
            "--padding-mode",
            "symmetric",
            "--padding",
            "1",
            cwd=tmp_path,
        ).stdout
    )
    assert result["shape"] == [1, 4, 9, 8] and result["flops"] > 0


def test_conv1d_and_channel_mix(live_server: LiveServer) -> None:
    y = json.loads(
        run(live_server, "--json", "conv1d", "[1,2,3]", "[1,1]", "--padding", "full", "--flip").stdout
    )
    assert y["y"] == [1.0, 3.0, 5.0, 3.0]  # numpy.convolve([1,2,3], [1,1])
    mix = json.loads(
        run(
            live_server,
            "--json",
            "channel-mix",
            "[[[1,2],[3,4]],[[5,6],[7,8]]]",
            "[[1,1],[0,-1]]",
            "--matrix-view",
        ).stdout
    )
    assert mix["y"] == [[[6.0, 8.0], [10.0, 12.0]], [[-5.0, -6.0], [-7.0, -8.0]]]
    assert mix["matrix_view"]["y_flat"] == [[6.0, 8.0, 10.0, 12.0], [-5.0, -6.0, -7.0, -8.0]]


def test_filter_png_in_png_out(live_server: LiveServer, tmp_path: Path) -> None:
    stripes = np.full((6, 6), 255, np.uint8)
    stripes[:, 2:4] = 0
    Image.fromarray(stripes).save(tmp_path / "in.png")
    run(live_server, "filter", "in.png", "--preset", "edge-horizontal", "-o", "out.png", cwd=tmp_path)
    edges = np.asarray(Image.open(tmp_path / "out.png"))
    assert (
        edges.shape[:2] == (6, 6)
        and (edges[..., 0] if edges.ndim == 3 else edges).tolist() == [[0, 255, 0, 255, 0, 0]] * 6
    )
    run(
        live_server,
        "filter",
        "in.png",
        "--kernel",
        "[[1,-1]]",
        "--padding",
        "valid",
        "-o",
        "v.npy",
        cwd=tmp_path,
    )
    assert np.load(tmp_path / "v.npy").tolist() == [[0, 255, 0, -255, 0]] * 6


def test_lti_plot_and_numbers(live_server: LiveServer, tmp_path: Path) -> None:
    run(
        live_server,
        "lti",
        "--input",
        "window",
        "--system",
        "first-order",
        "--T",
        "1",
        "-o",
        "plot.png",
        cwd=tmp_path,
    )
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    out = run(
        live_server, "lti", "--input", "step", "--system", "first-order", "--T", "1", "--duration", "1"
    ).stdout
    assert "y(end) = 0.632" in out  # 1 - 1/e
    r = json.loads(
        run(
            live_server,
            "--json",
            "lti",
            "--input",
            "step",
            "--system",
            "second-order",
            "--wn",
            "3",
            "--zeta",
            "0.2",
        ).stdout
    )
    assert r["max_abs_error"] < 1e-3


def test_kernels(live_server: LiveServer) -> None:
    assert "sobel-x" in run(live_server, "kernels").stdout
    box = json.loads(run(live_server, "--json", "kernels", "box", "--size", "3").stdout)
    np.testing.assert_allclose(box["matrix"], np.full((3, 3), 1 / 9))


def test_jobs_take_short_ids_and_cancel_prints_one_line(live_server: LiveServer, tmp_path: Path) -> None:
    spec = {
        "x": np.ones((6, 6)).tolist(),
        "y": np.zeros((6, 5)).tolist(),
        "layer": {"kernel_size": [1, 2]},
        "epochs": 20_000,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    job_id = run(live_server, "jobs", "submit", "spec.json", cwd=tmp_path).stdout.strip()
    short = job_id[:8]
    assert json.loads(run(live_server, "jobs", "get", short, "--no-history").stdout)["id"] == job_id
    cancelled = run(live_server, "jobs", "cancel", short).stdout
    assert cancelled.count("\n") == 1 and cancelled.startswith(f"job {short}: ")
    listed = run(live_server, "jobs", "list").stdout
    assert short in listed
    missing = run(live_server, "jobs", "get", "zzzz", check=False)
    assert missing.returncode != 0 and "no job's id starts with 'zzzz'" in missing.stderr


def test_a_pipe_closed_early_prints_no_traceback(live_server: LiveServer) -> None:
    cmd = f"{sys.executable} -m mxconv.cli --url {live_server.url} kernels | head -n 1"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert out.stdout.count("\n") == 1
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr


@pytest.mark.parametrize("argv", [["conv2d", "nope", "[[1]]"], ["corr2d", "[[1]]", "[[1,2,3]]"]])
def test_mistakes_are_one_line(live_server: LiveServer, argv: list[str]) -> None:
    out = run(live_server, *argv, check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr


def _examples_print_what_they_say(server: LiveServer, title: str, page: str) -> int:
    from . import readme

    examples = readme.examples(title, page=page)
    for command, want in examples:
        command = command.replace(".venv/bin/mxconv", f"{sys.executable} -m mxconv.cli --url {server.url}")
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (command, out.stderr)
        readme.expected(out.stdout, want)
    return len(examples)


def test_readme_shell_examples_print_what_the_readme_says(live_server: LiveServer) -> None:
    assert _examples_print_what_they_say(live_server, "From the shell", "README.md") >= 3


def test_the_cli_page_prints_what_it_says(live_server: LiveServer) -> None:
    assert _examples_print_what_they_say(live_server, "Commands", "docs/cli.md") >= 6
