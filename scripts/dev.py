#!/usr/bin/env python3
"""Set up vitiseg and run its main job or its tests, on a machine with only Python 3.11.

    python3 scripts/dev.py demo   # make sample photos, score them with the shipped model
    python3 scripts/dev.py test   # run the test suite (add pytest arguments after --)

Uses the active virtual environment, or creates ``.venv`` beside this repository and
installs the project into it (again only when pyproject.toml changes).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def environment_python() -> Path:
    active = os.environ.get("VIRTUAL_ENV")
    folder = Path(active) if active else ROOT / ".venv"
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        print(f"creating virtual environment {folder}", flush=True)
        venv.EnvBuilder(with_pip=True).create(folder)
    return python


def install(python: Path) -> None:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = python.parent.parent / ".vitiseg-install"
    if stamp.is_file() and stamp.read_text() == digest:
        return
    print("installing vitiseg and its dependencies (first run takes a few minutes)", flush=True)
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"])
    stamp.write_text(digest)


def run(command: list[object]) -> None:
    completed = subprocess.run([str(part) for part in command], cwd=ROOT)
    if completed.returncode:
        sys.exit(completed.returncode)


def demo(python: Path) -> None:
    bin_dir = python.parent
    samples, scores = ROOT / "demo" / "samples", ROOT / "demo" / "scores"
    run(
        [
            bin_dir / "vitiseg-synth",
            f"out={samples}",
            "n=6",
            "seed=7",
            f"output={ROOT / 'demo' / 'synth-log'}",
        ]
    )
    run(
        [
            bin_dir / "vitiseg-score",
            f"input={samples / 'images'}",
            f"manifest={samples / 'cases.csv'}",
            f"output={scores}",
        ]
    )
    print(f"\nReport: {scores / 'report.html'}")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test", "setup"):
        sys.exit(__doc__)
    python = environment_python()
    install(python)
    if sys.argv[1] == "demo":
        demo(python)
    elif sys.argv[1] == "test":
        extra = sys.argv[3:] if sys.argv[2:3] == ["--"] else sys.argv[2:]
        run([python, "-m", "pytest", "-q", *extra])


if __name__ == "__main__":
    main()
