"""Regenerate ``docs/report_screenshot.png``: synthetic photos -> vitiseg-score -> Chromium.

Only synthetic photos are used (real photos may not be redistributed). Run it again when a
new default model ships::

    python scripts/report_screenshot.py [--checkpoint MODEL] [--out docs/report_screenshot.png]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vitiseg.paths import default_model_dir
from vitiseg.synth import generate_dataset

log = logging.getLogger("report_screenshot")

# Two patients, two visits, several regions, and one broken file to show an error row.
MANIFEST = """case_id,patient_id,visit,region
synth7_00000,P-001,baseline,face
synth7_00002,P-001,baseline,hands
synth7_00004,P-001,baseline,trunk
synth7_00001,P-001,week 24,face
synth7_00003,P-002,baseline,feet
synth7_00005,P-002,baseline,trunk
synth7_00006,P-002,baseline,upper_extremities
synth7_00007,P-002,baseline,lower_extremities
broken,P-002,baseline,hands
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=default_model_dir())
    parser.add_argument("--out", type=Path, default=Path("docs/report_screenshot.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        log.error("chromium not found (apt-get install -y chromium)")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        generate_dataset(work / "samples", 8, 7)
        (work / "samples" / "manifest.csv").write_text(MANIFEST)
        (work / "samples" / "images" / "broken.jpg").write_text("not a photo")
        scores = work / "scores"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "vitiseg.cli.score",
                f"input={work / 'samples' / 'images'}",
                f"manifest={work / 'samples' / 'manifest.csv'}",
                f"output={scores}",
                f"checkpoint={args.checkpoint.resolve()}",
                "progress=false",
            ],
            check=False,  # exit code 1: the broken file is there on purpose
        )
        completed = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={work / 'profile'}",
                "--enable-logging=stderr",
                "--v=0",
                f"--screenshot={args.out.resolve()}",
                "--window-size=1280,2000",
                (scores / "report.html").as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
    console = [line for line in completed.stderr.splitlines() if ":CONSOLE" in line]
    if console:
        log.error("console messages:\n%s", "\n".join(console))
        return 1
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
