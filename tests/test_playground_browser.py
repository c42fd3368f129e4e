"""The playground in a real browser: Debian's chromium driven by Playwright, against a live
`mxconv serve` on 127.0.0.1 that requires an API key.

Never runs `playwright install`: the browser is /usr/bin/chromium from apt (.ci/run installs
it). Without it the tests skip locally, and fail under CI=true.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests

from .conftest import ROOT, LiveServer, start_server

ARTIFACTS = ROOT / "test-artifacts"
KEY = "playground-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(tmp_path_factory.mktemp("playground"), MXCONV_API_KEYS=KEY)
    yield s
    s.stop()


@pytest.fixture()
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def check_console(message: Any) -> None:
        # The first API call answers 401 by design (that is how the page learns it needs a key).
        if message.type == "error" and "status of 401" not in message.text:
            problems.append(f"console {message.type}: {message.text}")

    pg.on("console", check_console)

    def check_request(request: Any) -> None:
        if not request.url.startswith((server.url, "data:", "blob:")):
            problems.append(f"request outside the server: {request.url}")

    pg.on("request", check_request)
    pg.problems = problems
    yield pg
    context.close()


def _output_pixels(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
            const c = document.getElementById('output-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            return {width: c.width, height: c.height, data: Array.from(d),
                    cssWidth: c.getBoundingClientRect().width,
                    rendering: getComputedStyle(c).imageRendering};
        }"""
    )


def _rows(px: dict[str, Any], channel: int = 0) -> list[list[int]]:
    w, h, d = px["width"], px["height"], px["data"]
    return [[d[(i * w + j) * 4 + channel] for j in range(w)] for i in range(h)]


def _wait_output(page: Any, kernel: str) -> None:
    page.wait_for_function(
        "k => { const c = document.getElementById('output-canvas');"
        " return c.dataset.state === 'done' && c.dataset.kernel === k; }",
        arg=kernel,
        timeout=20_000,
    )


def _unlock(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.wait_for_selector("#auth:not([hidden])", timeout=15_000)  # the server wants a key
    page.fill("#api-key", KEY)
    page.click("#auth button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert page.is_hidden("#auth")


def test_edge_preset_on_the_seed_image(page: Any, server: LiveServer) -> None:
    _unlock(page, server)
    assert page.input_value("#source") == "seed"

    page.select_option("#preset", "identity")
    _wait_output(page, "identity")
    px = _output_pixels(page)
    stripe = [255, 255, 0, 0, 255, 255]
    assert (px["width"], px["height"]) == (6, 6)
    assert _rows(px) == [stripe] * 6

    page.select_option("#preset", "edge-horizontal")
    _wait_output(page, "edge-horizontal")
    px = _output_pixels(page)
    # [1,-1] with "same" padding (replicated border) and |y| mapped to 0-255
    assert (px["width"], px["height"]) == (6, 6)
    for channel in (0, 1, 2):
        assert _rows(px, channel) == [[0, 255, 0, 255, 0, 0]] * 6
    assert set(px["data"][3::4]) == {255}
    assert px["cssWidth"] >= 6 * 40 and px["rendering"] == "pixelated"  # tiny image scaled up, crisp
    assert page.locator("#matrix input").count() == 2

    # Valid padding: the seed's 6x5 edge map; the table shows the signed values
    page.select_option("#padding", "valid")
    page.wait_for_function("() => document.getElementById('output-canvas').width === 5", timeout=20_000)
    _wait_output(page, "edge-horizontal")
    assert _rows(_output_pixels(page)) == [[0, 255, 0, 255, 0]] * 6
    first_row = page.locator("#output-values tr").first.locator("td").all_inner_texts()
    assert first_row == ["0", "255", "0", "-255", "0"]

    # Edit the matrix: [1, 1] is custom; clip mapping now gives 255 except at the stripe
    page.locator("#matrix input").nth(1).fill("1")
    _wait_output(page, "[[1,1]]")
    assert page.input_value("#preset") == "custom"
    assert _rows(_output_pixels(page)) == [[255, 255, 0, 255, 255]] * 6

    page.select_option("#padding", "same")
    page.select_option("#preset", "edge-horizontal")
    page.wait_for_function("() => document.getElementById('output-canvas').width === 6", timeout=20_000)
    _wait_output(page, "edge-horizontal")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground-filter.png"), full_page=True)
    assert not page.problems, page.problems


def test_learning_job_recovers_the_edge_kernel(page: Any, server: LiveServer) -> None:
    _unlock(page, server)
    page.select_option("#preset", "edge-horizontal")
    _wait_output(page, "edge-horizontal")
    assert page.input_value("#optimizer") == "adam"

    page.click("#learn")
    page.wait_for_selector(
        "#job-status[data-status=running], #job-status[data-status=succeeded]", timeout=30_000
    )
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=90_000)
    learned = json.loads(page.get_attribute("#learned-kernel", "data-kernel") or "null")
    assert np.allclose(learned, [[1, -1]], atol=1e-2), learned
    assert "succeeded" in page.inner_text("#job-status")
    assert page.locator("#learned-kernel td").all_inner_texts() == ["1", "-1"]
    # The loss curve is drawn: the canvas holds the curve's blue
    blue = page.evaluate(
        """() => { const c = document.getElementById('loss-canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 0; i < d.length; i += 4)
                     if (d[i] < 90 && d[i + 2] > 180 && d[i + 3] > 0) n++;
                   return n; }"""
    )
    assert blue > 100

    # The page drove the jobs API: the job is there, with the seed's shapes
    headers = {"Authorization": f"Bearer {KEY}"}
    jobs = requests.get(f"{server.url}/v1/jobs", headers=headers, timeout=10).json()["jobs"]
    job = requests.get(f"{server.url}/v1/jobs/{jobs[0]['id']}", headers=headers, timeout=10).json()
    assert job["status"] == "succeeded" and job["spec"]["layer"]["kernel_size"] == [1, 2]
    np.testing.assert_allclose(np.ravel(job["result"]["weight"]), [1, -1], atol=1e-2)
    assert len(job["loss_history"]) == job["result"]["epochs_run"]
    # The chart's axis goes down as far as the losses do (it stopped at 1e-12 once)
    smallest = min(v for v in job["loss_history"] if v > 0)
    bottom, _top = map(int, page.get_attribute("#loss-canvas", "data-axis").split(","))
    assert bottom <= np.floor(np.log10(smallest)), (bottom, smallest)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
    assert not page.problems, page.problems


def test_a_failed_apply_clears_the_old_output_and_its_message_covers_nothing(
    page: Any, server: LiveServer
) -> None:
    _unlock(page, server)
    page.select_option("#preset", "edge-horizontal")
    _wait_output(page, "edge-horizontal")
    assert any(_output_pixels(page)["data"][3::4])  # an answer is drawn

    page.fill("#stride", "0")  # the server refuses it: stride must be at least 1
    page.dispatch_event("#stride", "change")
    page.wait_for_selector("#output-canvas[data-state=error]", state="attached", timeout=20_000)
    page.wait_for_selector("#error:not([hidden])", timeout=20_000)
    assert page.inner_text("#output-status") == "failed"
    assert not any(_output_pixels(page)["data"][3::4]), "the earlier answer is still drawn"
    assert page.inner_text("#output-info") == ""
    assert page.locator("#output-values td").count() == 0
    assert "stride" in page.inner_text("#error")

    boxes = {sel: page.locator(sel).bounding_box() for sel in ("#error", "#seed", "#learn")}

    def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
        return not (
            a["x"] + a["width"] <= b["x"]
            or b["x"] + b["width"] <= a["x"]
            or a["y"] + a["height"] <= b["y"]
            or b["y"] + b["height"] <= a["y"]
        )

    assert not overlap(boxes["#error"], boxes["#seed"]) and not overlap(boxes["#error"], boxes["#learn"]), (
        boxes
    )
    page.problems.clear()  # the refused request is logged by the browser: expected here


def test_a_network_trains_with_live_loss_and_accuracy_curves(page: Any, server: LiveServer) -> None:
    _unlock(page, server)
    layers = json.loads(page.input_value("#net-layers"))
    assert [layer["type"] for layer in layers][0] == "conv2d"
    page.fill("#net-epochs", "12")
    page.click("#net-train")
    page.wait_for_selector("#net-summary td", timeout=30_000)  # the summary came back first
    assert "parameters" in page.inner_text("#net-summary caption")
    page.wait_for_selector("#net-status[data-done=true]", timeout=90_000)
    assert page.get_attribute("#net-status", "data-status") == "succeeded", page.inner_text("#net-status")
    # Both panels hold a training and a validation curve of one point per epoch.
    assert json.loads(page.get_attribute("#net-loss", "data-points") or "[]") == [12, 12]
    assert json.loads(page.get_attribute("#net-acc", "data-points") or "[]") == [12, 12]
    drawn = page.evaluate(
        """() => ['net-loss', 'net-acc'].map((id) => {
                   const c = document.getElementById(id);
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let blue = 0, orange = 0;
                   for (let i = 0; i < d.length; i += 4) {
                     if (d[i] < 90 && d[i + 2] > 180 && d[i + 3] > 0) blue++;
                     if (d[i] > 200 && d[i + 1] > 100 && d[i + 1] < 160 && d[i + 2] < 90) orange++;
                   }
                   return [blue, orange]; })"""
    )
    assert all(blue > 50 and orange > 50 for blue, orange in drawn), drawn
    headers = {"Authorization": f"Bearer {KEY}"}
    newest = requests.get(f"{server.url}/v1/jobs?limit=1", headers=headers, timeout=10).json()["jobs"][0]
    job = requests.get(f"{server.url}/v1/jobs/{newest['id']}", headers=headers, timeout=10).json()
    assert job["spec"]["network"][0]["type"] == "conv2d" and job["spec"]["x_shape"] == [300, 1, 8, 8]
    assert f"validation {job['result']['metrics']['val_accuracy']:.3g}"[:14] in page.inner_text("#net-status")
    assert job["result"]["metrics"]["val_accuracy"] > 0.9
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground-network.png"), full_page=True)
    assert not page.problems, page.problems
