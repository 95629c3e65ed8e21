#!/usr/bin/env python3
"""Can colour cues flag the confidently wrong skin masks that ``uncertain_skin`` misses?

``uncertain_skin`` fires when much of the photo has an ambiguous skin probability, so a
light wall the model calls skin with confidence goes unflagged. This study measures, on
the skin the model calls normal (its skin minus its lesion, on the 512-px copy the quality
flags use), colour cues that a wall or a shirt might give away: the share of near-grey
pixels, the share off the hue band of skin, the share far from the median colour, and the
spread of a*b* and of L*. A photo is one to catch when its far false skin (over 5 % of the
long side from any labelled skin, ``skin_error_distance.py``) exceeds a tenth of its
labelled skin. Each cue's threshold, and a logistic regression of all cues with the
ambiguous share, is chosen on the training part's skin photos (the most sensitivity +
specificity for "uncertain_skin OR cue"); the validation part, and the real vitiligo
photos (which should rarely be flagged), only report.

    python scripts/skin_flag_cues.py --checkpoint models/default \
        --skin-dataset DATA/skin-photos --real-dataset DATA/vitiligo-web \
        --split-file RUN/split.json
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np
from scipy.optimize import minimize
from skin_error_distance import error_pixels_by_distance, split_cases

from vitiseg.inference.predictor import Predictor
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.quality.flags import (
    QualityConfig,
    assess_quality,
    mask_at_size_of,
    quality_config_from_mapping,
    shrink_to_long_side,
)

CUES = ("grey_share", "off_hue_share", "far_colour_share", "ab_spread", "lightness_spread")
FAR_SHARE_TO_CATCH = 0.1  # far false skin over a tenth of the photo's labelled skin


def colour_cues(rgb: np.ndarray, normal_skin: np.ndarray) -> dict[str, float]:
    """Colour cues of the pixels in ``normal_skin`` (bool, same size as ``rgb``).

    grey_share: share with chroma below 8 (8-bit Lab units); off_hue_share: share with a
    hue angle outside 10-90 degrees or chroma below 5 (skin is reddish to yellowish);
    far_colour_share: share over 30 Lab units from the median colour; ab_spread: the
    length of the a*, b* standard deviations; lightness_spread: the L* (0-100) standard
    deviation. All 0 when fewer than 50 pixels are skin (nothing to judge).
    """
    if np.count_nonzero(normal_skin) < 50:
        return dict.fromkeys(CUES, 0.0)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)[normal_skin]
    a, b = lab[:, 1] - 128, lab[:, 2] - 128  # OpenCV offsets a*, b* by 128
    chroma, hue = np.hypot(a, b), np.degrees(np.arctan2(b, a))
    distance = np.linalg.norm(lab - np.median(lab, axis=0), axis=1)
    return {
        "grey_share": float(np.mean(chroma < 8)),
        "off_hue_share": float(np.mean((hue < 10) | (hue > 90) | (chroma < 5))),
        "far_colour_share": float(np.mean(distance > 30)),
        "ab_spread": float(np.hypot(a.std(), b.std())),
        "lightness_spread": float(lab[:, 0].std() * 100 / 255),
    }


def choose_threshold(
    values: np.ndarray, already_flagged: np.ndarray, positive: np.ndarray
) -> tuple[float, float]:
    """The threshold t for which "already_flagged OR values > t" has the most
    sensitivity + specificity on ``positive``; returns (t, sensitivity + specificity - 1)."""
    best = (np.inf, -np.inf)
    for threshold in np.unique(values):
        flagged = already_flagged | (values > threshold)
        youden = flagged[positive].mean() - flagged[~positive].mean()
        if youden > best[1]:
            best = (float(threshold), float(youden))
    return best


def fit_logistic(features: np.ndarray, positive: np.ndarray, ridge: float = 1.0):
    """A ridge-penalised logistic regression on standardised features; returns a scorer."""
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-9

    def design(x: np.ndarray) -> np.ndarray:
        return np.hstack([(x - mean) / std, np.ones((len(x), 1))])

    def loss(weights: np.ndarray) -> float:
        logits = design(features) @ weights
        return float(
            np.sum(np.logaddexp(0, logits) - positive * logits)
            + 0.5 * ridge * np.sum(weights[:-1] ** 2)
        )

    weights = minimize(loss, np.zeros(features.shape[1] + 1)).x
    return lambda x: design(x) @ weights


def measure_photos(predictor, cases, with_truth: bool):
    """Per photo: ambiguous skin share, colour cues and (with truth) far false skin share."""
    config = QualityConfig()
    rows = []
    for case in cases:
        rgb = read_rgb(case.image_path)
        prediction = predictor.predict(rgb)
        skin, lesion = predictor.masks(prediction, rgb)
        report = assess_quality(rgb, skin=skin, skin_probability=prediction.skin)
        small = shrink_to_long_side(rgb, config.analysis_long_side, cv2.INTER_AREA)
        normal = mask_at_size_of(skin & ~lesion, small)
        row = {"ambiguous": report.ambiguous_skin_share, **colour_cues(small, normal)}
        if with_truth:
            truth = read_mask(case.mask_path("skin"))
            far_false = error_pixels_by_distance(skin, truth)[0][-1]
            row["to_catch"] = far_false / max(int(truth.sum()), 1) > FAR_SHARE_TO_CATCH
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--skin-dataset", required=True)
    parser.add_argument("--real-dataset", required=True)
    parser.add_argument("--split-file", required=True)
    args = parser.parse_args()

    predictor = Predictor.from_folder(args.checkpoint)
    parts = {
        f"{kind} {part}": measure_photos(
            predictor, split_cases(dataset, args.split_file, part, kind == "skin"), kind == "skin"
        )
        for kind, dataset in (("skin", args.skin_dataset), ("real", args.real_dataset))
        for part in ("train", "val")
    }
    limit = quality_config_from_mapping(
        {"max_ambiguous_skin_share": None}, predictor.metadata.quality
    ).max_ambiguous_skin_share  # the model's own share, as scoring uses it
    columns = ("ambiguous", *CUES)
    features = {
        name: np.array([[r[c] for c in columns] for r in rows]) for name, rows in parts.items()
    }
    uncertain = {name: f[:, 0] > limit for name, f in features.items()}
    train_positive = np.array([r["to_catch"] for r in parts["skin train"]])
    val_positive = np.array([r["to_catch"] for r in parts["skin val"]])

    # A scorer that never fires adds nothing: the shipped flag alone.
    scorers = {"uncertain_skin alone": lambda x: np.full(len(x), -np.inf)}
    for index, cue in enumerate(CUES, start=1):
        scorers[cue] = lambda x, index=index: x[:, index]
    scorers["logistic of all"] = fit_logistic(features["skin train"], train_positive)

    print(
        f"far false skin over {FAR_SHARE_TO_CATCH:.0%} of labelled skin: "
        f"{train_positive.sum()} of {len(train_positive)} training, "
        f"{val_positive.sum()} of {len(val_positive)} validation skin photos"
    )
    print(
        "| cue, OR uncertain_skin | threshold (train) | val: caught | val: others flagged "
        "| real train flagged | real val flagged |"
    )
    print("|---|---|---|---|---|---|")
    for name, scorer in scorers.items():
        threshold, _ = choose_threshold(
            scorer(features["skin train"]), uncertain["skin train"], train_positive
        )
        shown = f"{threshold:.4g}" if np.isfinite(threshold) else "-"
        flagged = {p: uncertain[p] | (scorer(features[p]) > threshold) for p in parts}
        val = flagged["skin val"]
        print(
            f"| {name} | {shown} | {val[val_positive].sum()} of {val_positive.sum()} "
            f"| {val[~val_positive].sum()} of {(~val_positive).sum()} "
            f"| {flagged['real train'].sum()} of {len(flagged['real train'])} "
            f"| {flagged['real val'].sum()} of {len(flagged['real val'])} |"
        )


if __name__ == "__main__":
    sys.exit(main())
