#!/usr/bin/env python3
"""How close are the VASI levels on real photos to a person's grades? A study, not a test.

    python scripts/real_levels_study.py DATA/vitiligo-web [--model MODEL]
        [--grades docs/real_level_grades.csv] [--sources model colour]

No real photo here has exact depigmented truth, so the reference is one grade per photo
(docs/real_level_grades.csv: one copy of each of the 40 source photos of the shared
vitiligo set, graded by eye by an engineer, not a clinician, as the share of the annotated
outline that looks depigmented, snapped to a VASI level). For each depigmented source
(``infer.depigmented_source``) it prints the level's mean, MAE, bias and Spearman rank
correlation against the grades, two ways: the annotated outlines as the extent (the level
alone), and the full pipeline (predicted lesion, ``score_region`` patches; the area-weighted
level of the kept patches, 0 when every patch was dropped as faint).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from vitiseg.inference.predictor import Predictor, TorchBackend
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.models.model_folder import load_model_folder
from vitiseg.paths import default_model_dir
from vitiseg.vasi import VasiConfig, score_region
from vitiseg.vasi.patches import snap_level

ROOT = Path(__file__).resolve().parents[1]


def photo_levels(predictor: Predictor, image: Path, outline_path: Path) -> tuple[float, float]:
    """(level of the annotated outline, pipeline level) in percent for one photo."""
    vasi = VasiConfig()
    rgb = read_rgb(image)
    outline = read_mask(outline_path) > 0
    prediction = predictor.predict(rgb)
    skin, lesion = predictor.masks(prediction, rgb)
    in_outline = predictor.depigmented_mask(prediction, outline, rgb, skin | outline)
    share = float(in_outline[outline].mean()) if in_outline is not None else 1.0
    outline_level = snap_level(share, vasi.levels, vasi.cut_points) or 0.0
    depigmented = predictor.depigmented_mask(prediction, lesion, rgb, skin)
    score = score_region(skin, lesion, "trunk", depigmented=depigmented, config=vasi)
    area = sum(patch.area_px for patch in score.patches)
    pipeline = sum(p.area_px * p.level for p in score.patches) / area if area else 0.0
    if not (score.patches or score.dropped_faint):
        pipeline = float("nan")  # no lesion found at all: no level to compare
    return 100 * outline_level, 100 * pipeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="the imported vitiligo-web set")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--grades", type=Path, default=ROOT / "docs/real_level_grades.csv")
    parser.add_argument("--sources", nargs="+", default=["model", "colour"])
    args = parser.parse_args()
    model, metadata = load_model_folder(args.model or default_model_dir())
    backend = TorchBackend(model, "cpu")
    rows = list(csv.DictReader(args.grades.open(newline="")))
    grades = np.array([float(row["level_percent"]) for row in rows])
    for source in args.sources:
        predictor = Predictor(backend, metadata, depigmented_source=source)
        levels = []
        for row in rows:
            image = args.dataset / "images" / row["image"]
            outline = args.dataset / "masks" / "lesion" / (Path(row["image"]).stem + ".png")
            if not image.is_file() or not outline.is_file():
                print(f"{image}: missing (or its lesion mask); import the set first")
                return 1
            levels.append(photo_levels(predictor, image, outline))
        table = np.array(levels)
        for column, name in enumerate(("outlines", "pipeline")):
            ok = np.isfinite(table[:, column])
            level, grade = table[ok, column], grades[ok]
            error = level - grade
            rho = spearmanr(level, grade).statistic
            print(
                f"{source:7s} {name:9s} n={ok.sum():2d} level mean {level.mean():5.1f} "
                f"(grades {grade.mean():.1f}) MAE {np.abs(error).mean():5.1f} "
                f"bias {error.mean():+6.1f} Spearman {rho:+.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
