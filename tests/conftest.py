"""Shared test fixtures: the real photo sets (skipped with a reason when absent), tmp data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitiseg.paths import shared_data_dir

# Tests run on CPU with few threads so they stay fast and repeatable on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real photos with masks); skips where a user's clone has none."""
    root = shared_data_dir()
    if not (root / "vitiligo-web" / "manifest.csv").is_file():
        pytest.skip(f"real photo sets not found at {root} (only CI and developers have ../shared)")
    return root


def run_eval_command(
    model_dir: Path, dataset: Path, out: Path, *overrides: str, check: bool = True, cwd=None
) -> subprocess.CompletedProcess:
    """``vitiseg-eval`` as a user runs it, in a process of its own (output captured as text)."""
    command = [
        sys.executable,
        "-m",
        "vitiseg.cli.evaluate",
        f"checkpoint={model_dir}",
        f"dataset={dataset}",
        f"output={out}",
        *overrides,
    ]
    return subprocess.run(command, check=check, capture_output=True, text=True, cwd=cwd)


@pytest.fixture(autouse=True)
def _clear_hydra():
    """Hydra keeps global state between compose calls; clear it after each test."""
    yield
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()


def make_split_skin_photos(tmp_path: Path) -> tuple[Path, Path, dict[str, list[str]]]:
    """Six tiny skin photos (``tmp_path/skin-photos``) and a split file giving four to train
    and two to validation: (dataset, split file, folds), for the studies that choose on train."""
    dataset = make_tiny_dataset(tmp_path / "skin-photos", n_cases=6)
    folds = {"train": ["case00", "case01", "case02", "case03"], "val": ["case04", "case05"]}
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"skin-photos": folds}))
    return dataset, split_file, folds


def make_tiny_dataset(
    root: Path,
    n_cases: int = 6,
    size: tuple[int, int] = (72, 88),
    *,
    lesion: bool = True,
    skin: bool = True,
    seed: int = 0,
    depigmented: bool = False,
) -> Path:
    """A small dataset in the vitiseg format: a skin ellipse with a pale lesion inside.

    Two cases per patient so grouped splits have something to group. ``depigmented``: the
    lesion keeps a pigmented island, left out of ``masks/depigmented`` but inside the
    outline in ``masks/lesion``.
    """
    import cv2
    import numpy as np

    from vitiseg.data.dataset_format import write_cases_csv
    from vitiseg.io.atomic import write_png_atomic

    rng = np.random.default_rng(seed)
    rows = []
    height, width = size
    for index in range(n_cases):
        case_id = f"case{index:02d}"
        image = np.full((height, width, 3), (40, 60, 90), np.uint8)
        skin_mask = np.zeros((height, width), np.uint8)
        centre = (int(width * rng.uniform(0.4, 0.6)), int(height * rng.uniform(0.4, 0.6)))
        cv2.ellipse(skin_mask, centre, (width // 3, height // 3), 0, 0, 360, 255, -1)
        lesion_mask = np.zeros_like(skin_mask)
        cv2.circle(lesion_mask, centre, min(height, width) // 8, 255, -1)
        image[skin_mask > 0] = (150, 100, 70)
        image[lesion_mask > 0] = (235, 215, 210)
        depigmented_mask = lesion_mask.copy()
        if depigmented:
            cv2.circle(depigmented_mask, centre, max(1, min(height, width) // 24), 0, -1)
            image[(lesion_mask > 0) & (depigmented_mask == 0)] = (150, 100, 70)
        noise = rng.normal(0, 4, image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        write_png_atomic(root / "images" / f"{case_id}.png", image)
        if lesion:
            write_png_atomic(root / "masks" / "lesion" / f"{case_id}.png", lesion_mask)
        if depigmented:
            write_png_atomic(root / "masks" / "depigmented" / f"{case_id}.png", depigmented_mask)
        if skin:
            write_png_atomic(root / "masks" / "skin" / f"{case_id}.png", skin_mask)
        rows.append(
            {
                "case_id": case_id,
                "patient_id": f"p{index // 2}",
                "region": "trunk",
                "fitzpatrick": 2 + index % 4,
            }
        )
    write_cases_csv(root / "cases.csv", rows)
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_tiny_dataset(tmp_path / "tiny")


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A randomly initialised compact model folder (for plumbing tests, not accuracy)."""
    import torch

    from vitiseg.models.model_folder import ModelMetadata, Preprocessing, save_model_folder
    from vitiseg.models.unet import build_model

    torch.manual_seed(0)
    model = build_model("compact_unet", width=4)
    metadata = ModelMetadata(
        arch="compact_unet",
        model_kwargs={"width": 4},
        preprocessing=Preprocessing(long_side=128, tile=64),
    )
    folder = tmp_path / "tiny-model"
    save_model_folder(folder, model.eval(), metadata)
    return folder
