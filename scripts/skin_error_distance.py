#!/usr/bin/env python3
"""Where are a model's skin errors? Near the true skin's edge, or far from any skin?

For every photo of a dataset's split part that has a skin mask, the model's skin mask (made
as scoring makes it, lesion counted as skin) is compared with the label. Each false-skin
pixel is measured by its distance to the nearest labelled skin pixel, each missed pixel by
its distance to the nearest predicted skin pixel, both as a share of the photo's long side.
Errors within about 1 % of the long side are edge disagreements (label style, resolution);
errors far out are whole regions called wrongly (background taken for skin, skin missed).
It also counts how many of the photos with much far false skin the ``uncertain_skin``
quality flag raises, the warning scoring gives for unreliable skin masks.

    python scripts/skin_error_distance.py --checkpoint models/default \
        --dataset DATA/skin-photos --split-file RUN/split.json [--part val]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.inference.predictor import Predictor
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.quality.flags import assess_quality

# Upper edges of the distance bins, as a share of the photo's long side.
BIN_EDGES = (0.005, 0.01, 0.02, 0.05, np.inf)


def error_pixels_by_distance(
    predicted: np.ndarray, truth: np.ndarray, edges=BIN_EDGES
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of false-positive and false-negative pixels per distance bin.

    A false positive's distance is to the nearest true pixel, a false negative's to the
    nearest predicted one (Euclidean, px), divided by the long side; bins end at ``edges``.
    """
    long_side = max(predicted.shape)
    false_positive = predicted & ~truth
    false_negative = truth & ~predicted
    return (
        _binned(_distance_to(truth), false_positive, long_side, edges),
        _binned(_distance_to(predicted), false_negative, long_side, edges),
    )


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Per pixel, the distance in px to the nearest pixel of ``mask`` (inf if it is empty)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _binned(distance: np.ndarray, errors: np.ndarray, long_side: int, edges) -> np.ndarray:
    shares = distance[errors] / long_side
    bins = np.searchsorted(np.asarray(edges), shares, side="left")
    return np.bincount(bins, minlength=len(edges))[: len(edges)]


def split_cases(dataset: str, split_file: str, part: str, need_skin: bool) -> list:
    """The dataset's cases in one part of the split, in split order; with ``need_skin``
    only those with a skin mask."""
    cases = {c.case_id: c for c in load_dataset(dataset)}
    ids = load_split(split_file)[Path(dataset).name][part]
    return [cases[i] for i in ids if i in cases and (cases[i].mask_path("skin") or not need_skin)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split-file", required=True)
    parser.add_argument("--part", default="val", choices=("train", "val"))
    args = parser.parse_args()

    chosen = split_cases(args.dataset, args.split_file, args.part, need_skin=True)
    predictor = Predictor.from_folder(args.checkpoint)
    false_positive = np.zeros(len(BIN_EDGES), np.int64)
    false_negative = np.zeros(len(BIN_EDGES), np.int64)
    true_pixels = 0
    far_share_by_photo = {}
    flagged = set()
    for case in chosen:
        rgb = read_rgb(case.image_path)
        truth = read_mask(case.mask_path("skin"))
        truth_pixels = int(truth.sum())
        prediction = predictor.predict(rgb)
        skin, _ = predictor.masks(prediction, rgb)
        report = assess_quality(rgb, skin=skin, skin_probability=prediction.skin)
        if "uncertain_skin" in report.flags:
            flagged.add(case.case_id)
        fp, fn = error_pixels_by_distance(skin, truth)
        false_positive += fp
        false_negative += fn
        true_pixels += truth_pixels
        far_share_by_photo[case.case_id] = fp[-1] / max(truth_pixels, 1)
    print(f"{len(chosen)} {args.part} photos; errors as a share of all labelled skin pixels")
    print("| distance (share of long side) | false skin | missed skin |")
    print("|---|---|---|")
    lower = 0.0
    for edge, fp, fn in zip(BIN_EDGES, false_positive, false_negative, strict=True):
        label = f"over {lower:.1%}" if np.isinf(edge) else f"{lower:.1%} to {edge:.1%}"
        print(f"| {label} | {fp / true_pixels:.2%} | {fn / true_pixels:.2%} |")
        lower = edge
    total_fp, total_fn = false_positive.sum() / true_pixels, false_negative.sum() / true_pixels
    print(f"| all | {total_fp:.2%} | {total_fn:.2%} |")
    much = {case_id for case_id, share in far_share_by_photo.items() if share > 0.1}
    print(
        f"photos whose far false skin (over {BIN_EDGES[-2]:.0%} out) exceeds 10 % of their "
        f"labelled skin: {len(much)} of {len(chosen)}; uncertain_skin flags "
        f"{len(much & flagged)} of them and {len(flagged - much)} of the "
        f"{len(chosen) - len(much)} others; the five worst: "
        + ", ".join(
            f"{case_id} {share:.0%}"
            for case_id, share in sorted(far_share_by_photo.items(), key=lambda kv: -kv[1])[:5]
        )
    )
    # Photo sources by case-id prefix (abdomen_train_0001 -> abdomen_train).
    source = {case.case_id: re.sub(r"_\d+$", "", case.case_id) for case in chosen}
    photos, with_far = Counter(source.values()), Counter(source[c] for c in much)
    counts = (f"{name} {with_far[name]} of {n}" for name, n in photos.items())
    print("by source: " + ", ".join(counts))


if __name__ == "__main__":
    sys.exit(main())
