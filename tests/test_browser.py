"""In a real browser: Debian's Chromium driven by Playwright (no browser download), against ``python app.py``.

Run it alone with ``.venv/bin/python -m pytest tests/test_browser.py -q``; it is skipped (with the
reason) when Chromium or the playwright package is missing. ``.ci/run`` installs Chromium with
apt-get. The screenshot lands in ``test-artifacts/app-pose.png``.
"""

from __future__ import annotations

import shutil

import pytest

from app.settings import ASSETS, ROOT
from app.testing import running_app

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium; .ci/run does this)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def test_upload_run_and_see_output_and_warp_gallery(browser, tmp_path):
    with running_app(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            _upload_run_inspect(page, url)
        finally:  # the screenshot is the artefact, also (especially) when a step failed
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "app-pose.png"), full_page=True)
            page.close()


def _upload_run_inspect(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#pose-run", timeout=60_000)
    assert page.locator("#pose-resolution").is_hidden()  # Advanced is closed by default
    page.set_input_files("#pose-photo input[type=file]", str(ASSETS / "astronaut.jpg"))
    page.set_input_files("#pose-exemplar input[type=file]", str(ASSETS / "grace_hopper.jpg"))
    page.wait_for_selector("#pose-input-condition img", timeout=120_000)  # extracted on upload
    page.get_by_text("Advanced").first.click()
    field = page.locator("#pose-resolution input[type=number]")
    field.fill("128")
    field.press("Enter")
    page.click("#pose-run")
    page.wait_for_selector("#pose-output img", timeout=180_000)
    page.wait_for_selector("#pose-gallery img", timeout=30_000)
    assert page.locator("#pose-gallery img").count() >= 2  # one warp per level
    assert "Engine:" in page.locator("#pose-status").inner_text()
    page.locator("#pose-output img").click()  # click-to-inspect, at the picture's centre
    page.wait_for_selector("#pose-inspect img", timeout=30_000)
    page.wait_for_function("document.body.innerText.includes('candidates')", timeout=30_000)
