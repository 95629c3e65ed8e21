#!/usr/bin/env python3
"""Which ``max_ambiguous_skin_share`` suits a model? Chosen on train, reported on val.

``uncertain_skin`` is raised when more than ``max_ambiguous_skin_share`` of the photo has an
ambiguous skin probability (configs/quality/default.yaml). A photo the flag should catch is
one whose skin mask scores Dice below 0.7 against its label. The share is chosen on the
TRAIN skin photos as the one with the most sensitivity + specificity (session 16's
procedure); the validation photos only report what that share does. The model runs as
scoring runs it by default (flips at three sizes).

    python scripts/uncertain_skin_study.py --checkpoint models/default \
        --dataset DATA/skin-photos --split-file RUN/split.json [--record]

``--record`` writes the chosen share into the model folder (``metadata.json`` "quality", and
the study's figures under "evaluation"), where scoring, evaluation and comparisons take it
while their quality config leaves ``max_ambiguous_skin_share`` null (the default).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np
from skin_error_distance import split_cases
from tqdm import tqdm

from vitiseg.inference.predictor import Predictor
from vitiseg.io.atomic import write_json_atomic
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.metrics.segmentation import score_masks
from vitiseg.models.metadata import METADATA_NAME
from vitiseg.quality.flags import QualityConfig, assess_quality

POOR_SKIN_DICE = 0.7  # a skin mask below this misstates the affected fraction's denominator
LIMITS = tuple(round(0.01 * step, 2) for step in range(1, 51))  # 0.01 ... 0.50


def measure_photos(predictor: Predictor, cases, part: str) -> tuple[np.ndarray, np.ndarray]:
    """(ambiguous skin share, skin Dice) per photo, the skin mask as scoring makes it."""
    shares, dices = [], []
    # Twelve passes per photo: the 800 skin photos took 19 min alone on two cores.
    for case in tqdm(cases, desc=part, unit="photo"):
        rgb = read_rgb(case.image_path)
        prediction = predictor.predict(rgb)
        skin, _ = predictor.masks(prediction, rgb)
        report = assess_quality(rgb, skin=skin, skin_probability=prediction.skin)
        shares.append(report.ambiguous_skin_share)
        dices.append(score_masks(skin, read_mask(case.mask_path("skin")), with_hd95=False).dice)
    return np.array(shares), np.array(dices)


def area_under_curve(scores: np.ndarray, positive: np.ndarray) -> float:
    """Chance that a positive photo scores above a negative one (ties count half)."""
    above = scores[positive][:, None] > scores[~positive][None, :]
    ties = scores[positive][:, None] == scores[~positive][None, :]
    return float(np.mean(above + 0.5 * ties)) if positive.any() and (~positive).any() else 0.5


def youden(shares: np.ndarray, positive: np.ndarray, limit: float) -> float:
    flagged = shares > limit
    return float(flagged[positive].mean() - flagged[~positive].mean())


def part_figures(shares: np.ndarray, dice: np.ndarray, limit: float) -> dict:
    """What the flag at ``limit`` does on one part: photos, poor ones caught, others flagged."""
    poor = dice < POOR_SKIN_DICE
    flagged = shares > limit
    return {
        "photos": len(dice),
        "poor": int(poor.sum()),
        "poor_flagged": int(flagged[poor].sum()),
        "others_flagged": int(flagged[~poor].sum()),
        "sensitivity_plus_specificity_minus_1": round(youden(shares, poor, limit), 4),
        "auc": round(area_under_curve(shares, poor), 4),
    }


def record_choice(model_folder: Path, chosen: float, study: dict) -> Path:
    """Write the chosen share into the model folder's metadata.json (atomically)."""
    path = Path(model_folder) / METADATA_NAME
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata.setdefault("quality", {})["max_ambiguous_skin_share"] = chosen
    metadata.setdefault("evaluation", {})["uncertain_skin_study"] = study
    write_json_atomic(path, metadata)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True, help="a dataset with skin masks")
    parser.add_argument("--split-file", required=True)
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[0.75, 1.0, 1.25], help="as scoring's default"
    )
    parser.add_argument("--no-tta", action="store_true", help="one pass, no flips")
    parser.add_argument(
        "--record", action="store_true", help="write the chosen share into the model folder"
    )
    args = parser.parse_args()

    predictor = Predictor.from_folder(
        args.checkpoint, tta=not args.no_tta, scales=tuple(args.scales)
    )
    parts = {
        part: measure_photos(
            predictor, split_cases(args.dataset, args.split_file, part, True), part
        )
        for part in ("train", "val")
    }
    train_shares, train_dice = parts["train"]
    # The config keeps two decimals, so the choice is among shares on that grid.
    train_poor = train_dice < POOR_SKIN_DICE
    chosen = max(LIMITS, key=lambda limit: youden(train_shares, train_poor, limit))
    shipped = predictor.metadata.quality.get(
        "max_ambiguous_skin_share", QualityConfig().max_ambiguous_skin_share
    )
    print(f"chosen on train: max_ambiguous_skin_share = {chosen} (the model's now {shipped})")
    print(
        "| part | limit | photos | skin Dice < 0.7 | caught | others flagged | sens + spec - 1 "
        "| Dice flagged / others | AUC |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for part, (shares, dice) in parts.items():
        for limit in sorted({chosen, shipped, round(chosen - 0.02, 2), round(chosen + 0.02, 2)}):
            row = part_figures(shares, dice, limit)
            flagged = shares > limit
            dice_flagged = f"{dice[flagged].mean():.3f}" if flagged.any() else "-"
            dice_others = f"{dice[~flagged].mean():.3f}" if (~flagged).any() else "-"
            print(
                f"| {part} | {limit} | {row['photos']} | {row['poor']} | {row['poor_flagged']} "
                f"| {row['others_flagged']} | {row['sensitivity_plus_specificity_minus_1']:.3f} "
                f"| {dice_flagged} / {dice_others} | {row['auc']:.2f} |"
            )
    if args.record:
        study = {
            "max_ambiguous_skin_share": chosen,
            "poor_skin_dice_below": POOR_SKIN_DICE,
            "dataset": Path(args.dataset).name,
            "inference": {"tta": not args.no_tta, "scales": list(args.scales)},
            "date": datetime.date.today().isoformat(),
            **{part: part_figures(*figures, chosen) for part, figures in parts.items()},
        }
        print(f"recorded in {record_choice(Path(args.checkpoint), chosen, study)}")


if __name__ == "__main__":
    sys.exit(main())
