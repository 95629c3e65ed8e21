#!/usr/bin/env python3
"""How much does a model's lesion Dice move when the same photos are lit differently?

Clinics and phones differ in white balance and exposure. This probe scores a model on a
labelled dataset's photos as they are and re-lit: red and blue channel gains of a warmer or
cooler illuminant (green, the reference, unchanged) and a darker or brighter exposure. The
masks stay the same, so any change in Dice is the model's sensitivity to lighting alone.
It also prints how the outlined lesion area moves against the photo as taken (median ratio
over photos): a comparison of two visits reads change from that area.

    python scripts/white_balance_probe.py --dataset DATA/vitiligo-web \
        --split-file RUN/split.json --part val [--checkpoint MODEL] [--tta --scales 0.75 1 1.25] \
        [--compare-region face] [--average-gains 1,1,1 1.1,1,0.9]

The default is one pass per photo (no flips, one size): the quickest view of the network
itself. With ``--compare-region`` the comparisons also take a follow-up with a known change
(every other true lesion patch painted over with the skin around it, ``cv2.inpaint``), as
taken and 15 % darker; ``--match-lighting`` prints them again with each follow-up re-balanced
to the baseline's normal skin before it is segmented (``vitiseg-compare match_lighting``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from vitiseg.compare import compare_photos
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.inference.factory import predictor_from_config
from vitiseg.inference.predictor import Prediction
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.metrics.segmentation import score_masks

# Channel gains (red, green, blue). Ten per cent is a modest white-balance error.
LIGHTINGS: dict[str, tuple[float, float, float]] = {
    "as taken": (1.0, 1.0, 1.0),
    "warm 10 %": (1.1, 1.0, 0.9),
    "cool 10 %": (0.9, 1.0, 1.1),
    "warm 20 %": (1.2, 1.0, 0.8),
    "dark 15 %": (0.85, 0.85, 0.85),
    "bright 15 %": (1.15, 1.15, 1.15),
}


def mean_prediction(predictions: list[Prediction]) -> Prediction:
    """The mean of each probability map over ``predictions`` (None stays None)."""

    def mean(name: str) -> np.ndarray | None:
        maps = [getattr(p, name) for p in predictions]
        return None if maps[0] is None else np.mean(maps, axis=0, dtype=np.float32)

    return Prediction(mean("skin"), mean("lesion"), mean("uncertainty"), mean("depigmented"))


def average_over_gains(predictor, gains: list[tuple[float, float, float]]) -> None:
    """Make ``predictor`` average its probabilities over copies of each photo re-lit by each
    of ``gains`` (an inference-time colour averaging, docs/model_history.md session 60)."""
    predict_one = predictor.predict
    predictor.predict = lambda rgb: mean_prediction([predict_one(relit(rgb, g)) for g in gains])


def parse_gains(text: str) -> tuple[float, float, float]:
    """ "1.1,1,0.9" -> (1.1, 1.0, 0.9): red, green and blue gains."""
    values = tuple(float(v) for v in text.split(","))
    if len(values) != 3 or not all(0 < v <= 4 for v in values):
        raise argparse.ArgumentTypeError(f"gains must be three factors in (0, 4], not {text!r}")
    return values


# Follow-ups with a known change: half the patches healed, as taken and darker.
HEALED = "half healed"
HEALED_DARK = "half healed, dark 15 %"


def relit(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """``rgb`` with each channel multiplied by its gain, clipped to 0-255."""
    scaled = rgb.astype(np.float32) * np.asarray(gains, np.float32)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def healed_patches(lesion: np.ndarray) -> np.ndarray:
    """Every other connected patch (8-connected) of ``lesion``: the ones a "half healed"
    follow-up paints over."""
    count, labels = cv2.connectedComponents(lesion.astype(np.uint8), connectivity=8)
    return np.isin(labels, np.arange(1, count, 2))


def half_healed(rgb: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """``rgb`` with every other connected patch of the true lesion painted over from the
    skin around it (Telea inpainting of the patch grown by 5 px)."""
    healed = cv2.dilate(healed_patches(lesion).astype(np.uint8), np.ones((11, 11), np.uint8))
    return cv2.inpaint(rgb, healed, 10, cv2.INPAINT_TELEA)


def compare_with_taken(
    photos: dict[str, np.ndarray],
    masks: dict[str, tuple],
    name: str,
    region: str,
    segment,
    match_lighting: bool = False,
) -> tuple[float | None, bool, bool]:
    """(improvement, lighting note raised, clipped-beyond-repair note raised) of the photo
    as taken against its ``name`` copy, with the masks already found for each copy
    (``segment`` finds any others)."""
    by_photo = {id(photos[key]): masks[key] for key in photos}
    result = compare_photos(
        photos["as taken"],
        photos[name],
        lambda rgb: by_photo[id(rgb)] if id(rgb) in by_photo else segment(rgb),
        region,
        align_method="none",
        match_lighting=match_lighting,
    )
    notes = result.comparison.notes
    noted = any(note.startswith("lighting changed") for note in notes)
    clipped = any("cannot restore" in note for note in notes)
    return result.comparison.response.improvement, noted, clipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--checkpoint", help="a model folder; default: the shipped model")
    parser.add_argument("--split-file", help="score only --part of this split")
    parser.add_argument("--part", default="val")
    parser.add_argument("--tta", action="store_true", help="average over the four flips")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--json", help="also write the per-photo Dice here")
    parser.add_argument(
        "--average-gains",
        type=parse_gains,
        nargs="+",
        metavar="R,G,B",
        help="average the probabilities over copies of each photo re-lit by these channel "
        "gains (include 1,1,1 for the photo itself), on top of --tta and --scales",
    )
    parser.add_argument(
        "--depigmented-source",
        choices=["model", "colour"],
        default="model",
        help="where the patches' depigmentation comes from (infer.depigmented_source)",
    )
    parser.add_argument(
        "--compare-region",
        help="also compare each photo as taken (baseline) with each re-lit copy (follow-up) "
        "as vitiseg-compare would, scoring this VASI region: the response the lighting alone "
        "makes, and how often the lighting note is raised",
    )
    parser.add_argument(
        "--lightings",
        nargs="+",
        choices=list(LIGHTINGS),
        default=list(LIGHTINGS),
        help="re-lit versions to score (default all; 'as taken' is always scored)",
    )
    parser.add_argument(
        "--match-lighting",
        action="store_true",
        help="with --compare-region: also compare with each follow-up re-balanced to the "
        "baseline's normal skin first (vitiseg-compare match_lighting=true)",
    )
    args = parser.parse_args()

    predictor, model_dir = predictor_from_config(
        args.checkpoint,
        {"tta": args.tta, "scales": args.scales, "depigmented_source": args.depigmented_source},
    )
    if args.average_gains:
        average_over_gains(predictor, args.average_gains)
    cases = [case for case in load_dataset(args.dataset) if case.mask_path("lesion")]
    if args.split_file:
        wanted = set(load_split(args.split_file)[Path(args.dataset).name][args.part])
        cases = [case for case in cases if case.case_id in wanted]
    if not cases:
        sys.exit(f"{args.dataset}: no photos with lesion masks to score")
    lightings = {"as taken": LIGHTINGS["as taken"]}
    lightings.update({name: LIGHTINGS[name] for name in args.lightings})
    dice: dict[str, list[float]] = {name: [] for name in lightings}
    # Lesion pixels outlined: a comparison of two visits reads change from this area.
    area: dict[str, list[int]] = {name: [] for name in lightings}
    # With --compare-region: per follow-up and setting of match_lighting, the improvement a
    # comparison with the photo as taken reports, and whether it notes the change of lighting.
    followups = [*lightings, HEALED, HEALED_DARK]
    settings = [False, True] if args.match_lighting else [False]
    responses: dict[tuple[bool, str], list[tuple[float | None, bool, bool]]] = {
        (match, name): [] for match in settings for name in followups
    }
    for case in cases:
        rgb, truth = read_rgb(case.image_path), read_mask(case.mask_path("lesion"))
        photos = {name: relit(rgb, gains) for name, gains in lightings.items()}
        if args.compare_region:
            photos[HEALED] = half_healed(rgb, truth)
            photos[HEALED_DARK] = relit(photos[HEALED], LIGHTINGS["dark 15 %"])
        masks = {name: predictor.segment(photo) for name, photo in photos.items()}
        for name in lightings:
            lesion = masks[name][1]
            dice[name].append(score_masks(lesion, truth, with_hd95=False).dice)
            area[name].append(int(lesion.sum()))
        for match, name in responses if args.compare_region else ():
            response = compare_with_taken(
                photos, masks, name, args.compare_region, predictor.segment, match
            )
            responses[match, name].append(response)

    print(
        f"{model_dir}: {len(cases)} photos, tta={args.tta}, scales={args.scales}, "
        f"averaged over gains {args.average_gains or [(1.0, 1.0, 1.0)]}"
    )
    as_taken = np.array(dice["as taken"])
    area_taken = np.maximum(np.array(area["as taken"]), 1)
    shifted = []
    for name, values in dice.items():
        values = np.array(values)
        change = values - as_taken
        if name != "as taken":
            shifted.append(values.mean())
        area_ratio = np.array(area[name]) / area_taken
        low, median, high = np.percentile(area_ratio, [25, 50, 75])
        print(
            f"  {name:12s} lesion Dice {values.mean():.3f}  change {change.mean():+.3f} "
            f"(worse on {int(np.sum(change < 0))} photos); lesion area x{median:.3f} "
            f"(median; quartiles {low:.3f}-{high:.3f}; smaller on {int(np.sum(area_ratio < 1))})"
        )
    if shifted:
        print(f"  mean over the {len(shifted)} re-lit versions: {np.mean(shifted):.3f}")
    for (match, name), pairs in responses.items() if args.compare_region else ():
        if name == followups[0]:
            how = "follow-up re-balanced first" if match else "follow-up as given"
            print(f"comparisons with the photo as taken ({args.compare_region} VASI, {how}):")
        improvements = np.array([i for i, *_ in pairs if i is not None], dtype=float)
        noted = sum(note for _, note, _ in pairs)
        print(
            f"  {name:12s} improvement median {np.median(improvements):+.1%} "
            f"(quartiles {np.percentile(improvements, 25):+.1%} to "
            f"{np.percentile(improvements, 75):+.1%}; >= 50 %: "
            f"{int(np.sum(improvements >= 0.5))} of {improvements.size}); "
            f"lighting note on {noted} of {len(pairs)}"
        )
    if args.match_lighting:
        print("per photo, a re-balanced follow-up against the same in the baseline's light:")
        for name in followups[1:]:
            reference = HEALED if name in (HEALED, HEALED_DARK) else "as taken"
            paired = [
                (abs(matched - taken), clipped_note)
                for (matched, _, clipped_note), (taken, *_) in zip(
                    responses[True, name], responses[False, reference], strict=True
                )
                if matched is not None and taken is not None
            ]
            if not paired:
                continue
            gaps = np.array([gap for gap, _ in paired])
            clipped = np.array([note for _, note in paired], dtype=bool)
            near = gaps <= 0.05
            print(
                f"  {name:12s} |improvement difference| median {np.median(gaps):.3f}; "
                f"within 0.05 on {int(np.sum(near))} of {gaps.size}; clipped note on "
                f"{int(np.sum(clipped & ~near))} of the {int(np.sum(~near))} beyond, "
                f"{int(np.sum(clipped & near))} of the {int(np.sum(near))} within"
            )
    if args.json:
        cases_out = [
            {
                "case_id": case.case_id,
                **{name: dice[name][i] for name in lightings},
                "lesion_px": {name: area[name][i] for name in lightings},
                "improvement": {
                    f"{name}{', re-balanced' if match else ''}": pairs[i][0]
                    for (match, name), pairs in responses.items()
                },
                "clipped_note": {
                    name: pairs[i][2] for (match, name), pairs in responses.items() if match
                },
            }
            for i, case in enumerate(cases)
        ]
        Path(args.json).write_text(json.dumps(cases_out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
