"""Swagger UI in a real browser with API keys on: the page loads without a key, and its
Authorize button takes one for the calls it makes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LiveServer, start_server

KEY = "docs-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(tmp_path_factory.mktemp("docs"), workers=1, MXCONV_API_KEYS=KEY, MXCONV_JOB_WORKERS="0")
    yield s
    s.stop()


def test_swagger_ui_loads_without_a_key_and_authorizes_calls(browser: Any, server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    sent: dict[str, str | None] = {}
    page.on(
        "request",
        lambda r: sent.__setitem__(r.url, r.headers.get("authorization")) if "/v1/info" in r.url else None,
    )
    try:
        page.goto(f"{server.url}/docs/swagger", wait_until="networkidle")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/v1/conv2d" in p for p in paths), paths

        page.click("button.authorize")
        page.fill(".auth-container input", KEY)
        page.click(".auth-btn-wrapper button.authorize")
        page.click(".auth-btn-wrapper button.btn-done")

        info = page.locator(".opblock-get", has=page.locator(".opblock-summary-path", has_text="/v1/info"))
        info.locator(".opblock-summary").click()
        info.locator("button.try-out__btn").click()
        info.locator("button.execute").click()
        status = info.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for(timeout=20_000)
        assert status.inner_text().strip().startswith("200"), status.inner_text()
        assert list(sent.values()) == [f"Bearer {KEY}"], sent
    finally:
        context.close()
