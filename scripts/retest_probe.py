#!/usr/bin/env python3
"""How far does a comparison of two visits move when nothing changed?

vitiligo-web holds two or three copies of most of its source photos (flipped, rotated,
cropped or tiled, some identical and annotated twice), so every copy is a re-take of the same
skin with no change. Each copy (follow-up) is compared with the first photo of its source
(baseline) as ``vitiseg-compare`` does with its defaults (SIFT alignment with ECC refinement,
``match_lighting``), twice:

- with the model (default inference unless told otherwise): the comparison a user gets;
- with the truth lesion masks (and the model's skin; the lesion counted fully depigmented):
  what is left when the segmentation is perfect, i.e. the noise of the photos' geometry and
  of the common area;
- with ``--segment-aligned``, also with the model segmenting the follow-up warped into the
  baseline frame (``vitiseg-compare segment_aligned``);
- with ``--hold-within D [D ...]``, also segmenting it there with each output held to the
  baseline's probability where it moved by less than D (``vitiseg-compare
  hold_unchanged_within``);
- with ``--hold-levels M`` each in-frame comparison also holds levels within M
  (``hold_levels_within``), and with ``--follow-patches`` also cuts the follow-up's patches
  along the baseline's (``follow_baseline_patches``).

With ``--healed`` the follow-up copy is "half healed" first (every other true patch painted
over, as in white_balance_probe.py) and the truth masks lose those patches: a known change
under re-take geometry, which the model's improvements should track. ``--heal-blend 0.5``
restores those patches only half-way in colour (a subtle change, whose true improvement is
unclear; the truth masks still lose the patches).

A true improvement is 0 for every pair, so each reported improvement is an error, and an
improvement of 50 % or more is a false "VASI50 responder".

    python scripts/retest_probe.py --dataset DATA/vitiligo-web [--split-file RUN/split.json \
        --part val] [--region face] [--tta --scales 0.75 1.0 1.25] [--segment-aligned] \
        [--hold-within 0.2] [--json retest.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from white_balance_probe import half_healed, healed_patches

from vitiseg.compare import compare_photos
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.inference.factory import predictor_from_config
from vitiseg.inference.paired import HoldingSegmenter, pixels_key
from vitiseg.io.images import read_mask, read_rgb


def pairs_of(cases) -> list[tuple]:
    """(baseline, follow-up) cases: each source's first photo against each of its others."""
    by_source = defaultdict(list)
    for case in cases:
        by_source[case.patient_id].append(case)
    return [
        (copies[0], other)
        for _, copies in sorted(by_source.items())
        for copies in [sorted(copies, key=lambda c: c.case_id)]
        for other in copies[1:]
    ]


class CachedSegmenter:
    """The model's masks of each photo array, computed once (a baseline serves several
    pairs); arrays it has not seen (a re-balanced follow-up) are segmented afresh."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.cache: dict[int, tuple] = {}

    def add(self, rgb: np.ndarray) -> None:
        self.cache[id(rgb)] = self.predictor.segment(rgb)

    def __call__(self, rgb: np.ndarray) -> tuple:
        return self.cache.get(id(rgb)) or self.predictor.segment(rgb)


class CachedPredictions:
    """A predictor whose predictions are kept by the photo's pixels, so the held
    segmentations at several D share one network pass per photo."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.metadata = predictor.metadata
        self.cache: dict[bytes, object] = {}

    def predict(self, rgb: np.ndarray):
        key = pixels_key(rgb)
        if key not in self.cache:
            self.cache[key] = self.predictor.predict(rgb)
        return self.cache[key]

    def segmentation(self, prediction, rgb: np.ndarray) -> tuple:
        return self.predictor.segmentation(prediction, rgb)


def changes(comparison) -> dict[str, float | None]:
    """The comparison's VASI improvement, the improvement of its affected area alone (hand
    units, levels left out: how much of a VASI change the levels make), and how much
    vitiligo the baseline showed (its VASI and the share of the visible skin affected)."""
    return {
        "improvement": comparison.response.improvement,
        "area_improvement": comparison.area_improvement,
        "baseline_vasi": comparison.baseline.vasi,
        "baseline_affected": comparison.baseline.affected_fraction,
    }


def arm_settings(args: argparse.Namespace, sources: list[str]) -> dict[str, dict]:
    """The ``vitiseg-compare`` settings (``vitiseg.compare.retake.COMPARED_SETTINGS``) each
    model arm ran with; the truth arm has none."""
    common = {
        "tta": args.tta,
        "scales": list(args.scales),
        "depigmented_source": "model",
        "match_lighting": True,
        "segment_aligned": False,
        "hold_levels_within": None,
        "hold_unchanged_within": None,
        "follow_baseline_patches": False,
    }
    settings = {}
    for source in sources:
        if source == "truth":
            continue
        arm = dict(common, segment_aligned=source != "model")
        if source.startswith("held_"):
            arm["hold_unchanged_within"] = float(source.split("_")[1])
        if source.endswith(("_levels", "_patches")):
            arm["hold_levels_within"] = args.hold_levels
        arm["follow_baseline_patches"] = source.endswith("_patches")
        settings[source] = arm
    return settings


def summarise(label: str, improvements: list[float | None]) -> dict:
    values = np.array([v for v in improvements if v is not None], dtype=float)
    if values.size == 0:
        print(f"  {label}: no pair with a non-zero baseline")
        return {"pairs": 0}
    errors = np.abs(values)
    low, median, high = np.percentile(errors, [25, 50, 75])
    responders = int(np.sum(values >= 0.5))
    print(
        f"  {label}: |improvement| median {median:.1%} (quartiles {low:.1%}-{high:.1%}); "
        f">= 50 %: {responders} of {values.size}; >= 25 % either way: "
        f"{int(np.sum(errors >= 0.25))} of {values.size}"
    )
    return {
        "pairs": int(values.size),
        "abs_median": float(median),
        "abs_quartiles": [float(low), float(high)],
        "false_vasi50": responders,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--checkpoint", help="a model folder; default: the shipped model")
    parser.add_argument("--split-file", help="use only --part of this split")
    parser.add_argument("--part", default="val")
    parser.add_argument("--region", default="face", help="VASI region the pairs are scored as")
    parser.add_argument("--tta", action="store_true", help="average over the four flips")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--json", help="also write the per-pair figures here")
    parser.add_argument(
        "--healed", action="store_true", help="half heal each follow-up copy (a known change)"
    )
    parser.add_argument(
        "--heal-blend",
        type=float,
        default=1.0,
        help="with --healed: how far the patches are restored in colour (1 = fully)",
    )
    parser.add_argument(
        "--segment-aligned",
        action="store_true",
        help="also compare with the follow-up segmented in the baseline frame",
    )
    parser.add_argument(
        "--hold-within",
        type=float,
        nargs="*",
        default=[],
        help="also compare in the baseline frame with the outputs held within each D",
    )
    parser.add_argument(
        "--hold-levels",
        type=float,
        help="also run each in-frame comparison with hold_levels_within=M",
    )
    parser.add_argument(
        "--follow-patches",
        action="store_true",
        help="with --hold-levels: also with follow_baseline_patches (suffix _patches)",
    )
    args = parser.parse_args()

    predictor, model_dir = predictor_from_config(
        args.checkpoint, {"tta": args.tta, "scales": args.scales}
    )
    cases = [case for case in load_dataset(args.dataset) if case.mask_path("lesion")]
    if args.split_file:
        wanted = set(load_split(args.split_file)[Path(args.dataset).name][args.part])
        cases = [case for case in cases if case.case_id in wanted]
    pairs = pairs_of(cases)
    if not pairs:
        sys.exit(f"{args.dataset}: no source with two or more photos")
    segment = CachedSegmenter(predictor)
    cached = CachedPredictions(predictor)
    holders = {within: HoldingSegmenter(cached, within) for within in args.hold_within}

    def plain(rgb: np.ndarray) -> tuple:
        return cached.segmentation(cached.predict(rgb), rgb)

    level_options = {"": {}}
    if args.hold_levels is not None:
        level_options["_levels"] = {"hold_levels_within": args.hold_levels}
        if args.follow_patches:
            level_options["_patches"] = {
                "hold_levels_within": args.hold_levels,
                "follow_baseline_patches": True,
            }
    photos: dict[str, np.ndarray] = {}
    truth_masks: dict[int, tuple] = {}
    rows = []
    for baseline, followup in pairs:
        for case in (baseline, followup):
            if case.case_id not in photos:
                rgb = read_rgb(case.image_path)
                lesion = read_mask(case.mask_path("lesion"))
                if args.healed and case is followup:
                    healed = half_healed(rgb, lesion).astype(np.float32)
                    blend = args.heal_blend * healed + (1 - args.heal_blend) * rgb
                    rgb = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
                    lesion = lesion & ~healed_patches(lesion)
                photos[case.case_id] = rgb
                segment.add(rgb)
                skin = segment.cache[id(rgb)][0]
                truth_masks[id(rgb)] = (skin | lesion, lesion, lesion)
        base_rgb, follow_rgb = photos[baseline.case_id], photos[followup.case_id]
        model = compare_photos(base_rgb, follow_rgb, segment, args.region, match_lighting=True)
        truth = compare_photos(base_rgb, follow_rgb, lambda rgb: truth_masks[id(rgb)], args.region)
        results = {"model": model, "truth": truth}
        in_frame_arms = {"in_frame": (plain, None)} if args.segment_aligned else {}
        in_frame_arms |= {
            f"held_{within:g}": (holder.segment, holder) for within, holder in holders.items()
        }
        for (name, (segmenter, holder)), (suffix, options) in itertools.product(
            in_frame_arms.items(), level_options.items()
        ):
            results[name + suffix] = compare_photos(
                base_rgb,
                follow_rgb,
                segmenter,
                args.region,
                match_lighting=True,
                segment_aligned=True,
                segment_followup=holder,
                **options,
            )
        rows.append(
            {
                "baseline": baseline.case_id,
                "followup": followup.case_id,
                "identical": bool(np.array_equal(base_rgb, follow_rgb)),
                "aligned": model.comparison.alignment.reliable,
                "alignment": model.comparison.alignment.reason,
                "rebalanced": bool(model.lighting is not None and model.lighting.rebalanced),
                **{
                    f"{source}_{kind}": value
                    for source, result in results.items()
                    for kind, value in changes(result.comparison).items()
                },
            }
        )
        print(f"{len(rows)}/{len(pairs)} {followup.case_id}", file=sys.stderr)

    aligned = [row for row in rows if row["aligned"]]
    print(
        f"{model_dir}: {len(rows)} pairs of {len({r['baseline'] for r in rows})} sources "
        f"(tta={args.tta}, scales={args.scales}, region {args.region}); aligned "
        f"{len(aligned)}, identical photos {sum(r['identical'] for r in rows)}, follow-up "
        f"re-balanced {sum(r['rebalanced'] for r in rows)}"
    )
    summary = {}
    for subset, chosen in (("all pairs", rows), ("aligned pairs", aligned)):
        print(f"{subset}:")
        sources = [
            key.removesuffix("_improvement")
            for key in rows[0]
            if key.endswith("_improvement") and not key.endswith("_area_improvement")
        ]
        for source in sources:
            label = f"{source:8s}"
            summary[f"{subset}, {source}"] = summarise(
                label, [row[f"{source}_improvement"] for row in chosen]
            )
    if args.healed:
        print("aligned pairs, |model - truth| (a known change: half the patches healed):")
        for source in sources:
            if source == "truth":
                continue
            gaps = np.array(
                [
                    abs(row[f"{source}_improvement"] - row["truth_improvement"])
                    for row in aligned
                    if row[f"{source}_improvement"] is not None
                    and row["truth_improvement"] is not None
                ]
            )
            if gaps.size:
                print(
                    f"  {source:8s}: median {np.median(gaps):.3f}; within 0.10 on "
                    f"{int(np.sum(gaps <= 0.10))} of {gaps.size}"
                )
    if args.json:
        record = {
            "dataset": Path(args.dataset).name,
            "part": args.part if args.split_file else None,
            "healed": args.healed,
            "settings": arm_settings(args, sources),
            "summary": summary,
            "pairs": rows,
        }
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    sys.exit(main())
