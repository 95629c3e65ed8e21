"""The scoring report in a real browser: headless Chromium renders it without console errors.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from vitiseg.inference.predictor import Predictor
from vitiseg.scoring import ScoreJob, ScoreSettings, run_score_job

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)"
)


def render(page: Path, screenshot: Path, profile: Path) -> list[str]:
    """Open ``page`` headless, save a 1280x2000 screenshot; return console log lines."""
    completed = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={screenshot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    # Chromium logs every console message (errors, CSP violations, uncaught exceptions)
    # as ":INFO:CONSOLE..." on stderr.
    return [line for line in completed.stderr.splitlines() if ":CONSOLE" in line]


def photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), (70, 100, 150), np.uint8)  # BGR skin tone
    cv2.circle(image, (width // 2, height // 2), min(height, width) // 4, (210, 215, 235), -1)
    noise = rng.integers(-10, 11, size=(height, width, 1), dtype=np.int16)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@needs_chromium
def test_console_errors_are_caught_by_this_method(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><p>x</p><script>undefinedFunction()</script>")
    console = render(page, tmp_path / "broken.png", tmp_path / "profile")
    assert any("Uncaught" in line for line in console), console


@needs_chromium
def test_report_renders_in_chromium_without_console_errors(tmp_path, tiny_model_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"photo{index}.jpg"), photo(300, 400, index))
    cv2.imwrite(str(folder / "<img src=x onerror=alert(1)>.png"), photo(200, 200, 9))
    (folder / "broken.jpg").write_text("not a photo")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "image,patient_id,visit,region\n"
        "photo0.jpg,<b>P1</b>,baseline,face\n"
        "photo1.jpg,<b>P1</b>,baseline,hands\n"
        "photo2.jpg,P2,week 12,trunk\n"
        "<img src=x onerror=alert(1)>.png,P2,week 12,feet\n"
        "broken.jpg,P2,week 12,feet\n"
    )
    out = tmp_path / "out"
    run_score_job(
        ScoreJob(output=out, input=folder, manifest=manifest, progress=False),
        Predictor.from_folder(tiny_model_dir),
        ScoreSettings(overlay_long_side=400, thumbnail_long_side=160),
    )
    screenshot = tmp_path / "report.png"

    console = render(out / "report.html", screenshot, tmp_path / "profile")

    assert console == []
    shot = cv2.imread(str(screenshot))
    assert shot.shape[:2] == (2000, 1280)
    assert float(shot.std()) > 10, "the screenshot looks blank"
    page = (out / "report.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page and "<img src=x" not in page
