"""The demo in a real headless browser (Debian's chromium driven by Playwright).

Launches demo/app.py in a subprocess on a free localhost port, uploads a real and a synthetic
recording, checks the verdicts and the rendered timeline, uploads a corrupt file and sees the
error while the page keeps working, and saves screenshots as test artefacts (folder
$VOICEFAKE_TEST_ARTIFACTS, default: the test's tmp_path).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.demo.server import running_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)"),
]
REAL = "librispeech_resemblyzer/test-other/1688/1688-142285-0003.flac"
FAKE = "debian_tts/espeak-ng_en-us/call01.flac"


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("VOICEFAKE_TEST_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def _demo_page(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium page on the demo, served from a subprocess for the block's duration."""
    playwright = pytest.importorskip("playwright.sync_api")
    with running_demo(tmp_path) as url, playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            page.goto(url, timeout=60_000)
            yield page
        finally:
            browser.close()


def test_detect_tab_in_browser(data_root: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt_call.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(64))
    artifacts = _artifacts(tmp_path)
    with _demo_page(tmp_path) as page:
        page.locator("#detect-files input[type=file]").set_input_files(
            [str(data_root / REAL), str(data_root / FAKE)])
        page.wait_for_timeout(1500)
        page.locator("#detect-run").click()
        table = page.locator("#detect-table")
        page.wait_for_function(
            "document.querySelector('#detect-table') && /call01/.test(document.querySelector('#detect-table').innerText)",
            timeout=120_000)
        rows = table.inner_text()
        assert _verdict(rows, "1688-142285-0003") == "real", rows
        assert _verdict(rows, "call01") == "fake", rows
        page.locator("#detect-timeline img").wait_for(timeout=60_000)
        assert page.locator("#detect-verdict").inner_text().strip()
        page.screenshot(path=str(artifacts / "demo_detect.png"), full_page=True)

        page.reload()
        page.locator("#detect-files input[type=file]").set_input_files([str(corrupt)])
        page.wait_for_timeout(1500)
        page.locator("#detect-run").click()
        page.wait_for_function(
            "document.querySelector('#detect-table') && /corrupt_call/.test(document.querySelector('#detect-table').innerText)",
            timeout=60_000)
        assert "error" in page.locator("#detect-table").inner_text()
        page.screenshot(path=str(artifacts / "demo_corrupt.png"), full_page=True)

        page.locator("#detect-files input[type=file]").set_input_files([str(data_root / REAL)])
        page.wait_for_timeout(1500)
        page.locator("#detect-run").click()
        page.wait_for_function(
            "document.querySelector('#detect-table') && /1688-142285-0003/.test(document.querySelector('#detect-table').innerText)",
            timeout=120_000)


def test_moving_a_clone_slider_unticks_the_mode_defaults_box(tmp_path: Path) -> None:
    """The Clone tab's "mode defaults" box (ticked: the API picks blend, contrast and pitch range) is
    unticked in the page itself when the user moves one of those sliders, so the value shown is the
    value that runs."""
    with _demo_page(tmp_path) as page:
        page.get_by_role("tab", name="Clone").click()
        box = page.locator("#clone-mode-defaults input[type=checkbox]")
        box.wait_for(timeout=30_000)
        assert box.is_checked()
        page.locator("#clone-blend input[type=range]").fill("0.5")
        page.wait_for_function("!document.querySelector('#clone-mode-defaults input[type=checkbox]').checked",
                               timeout=10_000)
        box.check()  # ticked again by hand, it stays ticked
        page.wait_for_timeout(500)
        assert box.is_checked()


def _verdict(table_text: str, name: str) -> str:
    """The verdict cell that follows the file-name cell containing ``name`` (cells are
    separate lines or tab-separated in the rendered table's text)."""
    cells = table_text.split()
    for index, cell in enumerate(cells[:-1]):
        if name in cell:
            return cells[index + 1] if cells[index + 1] in ("fake", "real", "error") else "missing"
    return "missing"
