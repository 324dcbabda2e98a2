"""In a real browser: Debian's Chromium driven by Playwright (no browser download), against ``python app.py``.

Run it alone with ``.venv/bin/python -m pytest tests/test_browser.py -q``; it is skipped (with the
reason) when Chromium or the playwright package is missing. ``.ci/run`` installs Chromium with
apt-get. Each test's screenshot lands in ``test-artifacts/app-<test>.png``.
"""

from __future__ import annotations

import shutil

import pytest

from app.settings import ASSETS, ROOT
from tests.app_server import running_app

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


@pytest.fixture(scope="module")
def url(browser, tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("browser-app")) as address:
        yield address


@pytest.fixture
def page(browser, request):
    """A fresh page; its full-page screenshot is saved as the test's artefact, also when a step failed."""
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    yield tab
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"app-{request.node.name.removeprefix('test_')}.png"), full_page=True)
    tab.close()


def test_upload_run_and_see_output_and_warp_gallery(page, url):
    _upload_run_inspect(page, url)


def test_paint_a_mask_with_palette_brushes_and_run(page, url):
    page.goto(url)
    page.wait_for_selector("#pose-run", timeout=60_000)
    page.get_by_role("tab", name="Mask to image").click()
    page.locator("#mask-kind").get_by_text("Ready condition").click()
    page.set_input_files("#mask-exemplar input[type=file]", str(ASSETS / "astronaut.jpg"))
    page.locator("#mask-advanced").get_by_text("Advanced").click()
    field = page.locator("#mask-resolution input[type=number]")
    field.fill("128")
    field.press("Enter")
    page.locator("#mask-condition button[aria-label=Brush]").click()
    box = page.locator("#mask-condition canvas").last.bounding_box()
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 25):  # a stroke with the default brush: ADE20K "person"
        page.mouse.move(x + 2 * i, y + 10 * i)
    page.mouse.up()
    page.click("#mask-run")
    page.wait_for_selector("#mask-gallery img", timeout=180_000)
    assert "Engine:" in page.locator("#mask-status").inner_text()
    page.wait_for_selector("#mask-input-condition img", timeout=30_000)  # the painted mask, as read by core


def _upload_run_inspect(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#pose-run", timeout=60_000)
    assert page.locator("#pose-resolution").is_hidden()  # Advanced is closed by default
    page.set_input_files("#pose-photo input[type=file]", str(ASSETS / "astronaut.jpg"))
    page.set_input_files("#pose-exemplar input[type=file]", str(ASSETS / "grace_hopper.jpg"))
    page.wait_for_selector("#pose-input-condition img", timeout=120_000)  # extracted on upload
    page.locator("#pose-advanced").get_by_text("Advanced").click()
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


def test_pose_video_tab_shows_progress_then_both_videos(page, url, tmp_path):
    from skimage import data

    from core.video.encode import write_video
    from core.video.samples import moving_photo

    clip = tmp_path / "clip.mp4"
    write_video(clip, moving_photo(data.astronaut(), 6, side=192), 10)
    page.goto(url)
    page.wait_for_selector("#pose-run", timeout=60_000)
    page.get_by_role("tab", name="Pose video").click()
    page.get_by_text("Example: a swaying camera").wait_for(timeout=30_000)  # the offline example row
    page.set_input_files("#video-clip input[type=file]", str(clip))
    page.set_input_files("#video-exemplar input[type=file]", str(ASSETS / "grace_hopper.jpg"))
    field = page.locator("#video-resolution input[type=number]")
    field.fill("128")
    field.press("Enter")
    page.wait_for_selector("#video-clip video", timeout=60_000)  # the upload plays
    page.click("#video-run")
    page.wait_for_function("/(rendering frame|finding the pose|encoding)/.test(document.body.innerText)",
                           timeout=120_000)  # progress while it runs
    page.wait_for_selector("#video-result video", timeout=240_000)
    page.wait_for_selector("#video-skeleton video", timeout=30_000)
    assert "6 frames" in page.locator("#video-status").inner_text()
    duration = page.locator("#video-result video").evaluate(
        "v => new Promise(r => v.readyState >= 1 ? r(v.duration) : (v.onloadedmetadata = () => r(v.duration)))")
    assert duration > 0.4  # the browser decodes it: 6 frames at 10 fps
