"""scripts/skin_threshold_study.py: every skin setting scored from one prediction per photo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import make_split_skin_photos
from vitiseg.data.dataset_format import load_dataset
from vitiseg.inference.predictor import Predictor
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.metrics.segmentation import score_masks

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "skin_threshold_study.py"


def skin_dice_as_scored(model_dir: Path, cases) -> float:
    """Mean skin Dice of the model's own masks, the way vitiseg-eval makes them."""
    predictor = Predictor.from_folder(model_dir)
    scores = []
    for case in cases:
        rgb = read_rgb(case.image_path)
        skin, _ = predictor.masks(predictor.predict(rgb), rgb)
        scores.append(score_masks(skin, read_mask(case.mask_path("skin")), with_hd95=False).dice)
    return float(np.mean(scores))


def test_the_study_reproduces_the_models_skin_dice_and_picks_on_train(tmp_path, tiny_model_dir):
    dataset, split_file, folds = make_split_skin_photos(tmp_path)
    out = tmp_path / "study.json"
    # A threshold off the study's grid must still get its own row.
    metadata_path = tiny_model_dir / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["thresholds"]["skin"] = 0.45
    metadata_path.write_text(json.dumps(metadata))

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--checkpoint", str(tiny_model_dir),
         "--dataset", str(dataset), "--split-file", str(split_file), "--json", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "4 train, 2 val photos" in done.stdout
    rows = json.loads(out.read_text())
    assert len({(r["threshold"], r["min_area_fraction"], r["fill_holes"]) for r in rows}) == len(
        rows
    )
    current = next(
        r
        for r in rows
        if r["threshold"] == 0.45 and not r["min_area_fraction"] and not r["fill_holes"]
    )
    cases = {c.case_id: c for c in load_dataset(dataset)}
    for fold in ("train", "val"):
        expected = skin_dice_as_scored(tiny_model_dir, [cases[i] for i in folds[fold]])
        assert abs(current[f"{fold}_dice"] - expected) < 1e-9
    best = max(rows, key=lambda r: r["train_dice"])
    assert f'"threshold": {best["threshold"]}' in done.stdout.split("best on train")[1]
