#!/usr/bin/env python3
"""Which per-photo measure of the model's own output tells when its lesion mask is poor?

Runs a model (default inference: flips at three sizes) once over a labelled dataset and
writes, per photo, candidate confidence measures taken from the output alone (never the
truth) beside the scores against the truth:

- ``ambiguous_share``: share of skin with a lesion probability in [0.35, 0.65] (the
  ``low_confidence`` flag's measure up to session 47);
- ``mean_uncertainty``: the flips' mean spread over skin;
- ``lesion_share``: the predicted lesion's share of skin;
- ``expected_dice``: the Dice the lesion mask would score if the probabilities were the truth's
  odds, 2 Σ_mask p / (Σ p + |mask|) over skin (``expected_dice`` below);
- ``boundary_ambiguity``: ambiguous pixels over ambiguous plus lesion pixels, i.e. ambiguity
  relative to the lesion's size rather than to the skin's;
- ``ita_deg``: the normal skin's typology angle (the ``light_skin`` flag's measure);
- ``relit_agreement`` (with ``--relit``): mean Dice between the one-pass lesion mask of the
  photo as taken and of two re-lit copies (10 % cooler, 15 % darker; both empty -> 1): how
  fragile the mask is under a small change of light. Costs three more passes per photo.

    python scripts/confidence_study.py --dataset DATA/vitiligo-web --split-file RUN/split.json \
        --parts train val --out study.csv [--checkpoint MODEL] [--scales 0.75 1.0 1.25] [--relit]

Then ``--analyse study.csv`` prints rank correlations with Dice per part.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from white_balance_probe import LIGHTINGS, relit

from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.evaluation.evaluate import affected_fraction, read_truth, true_affected_fraction
from vitiseg.inference.factory import predictor_from_config
from vitiseg.io.images import read_rgb
from vitiseg.metrics.segmentation import score_masks
from vitiseg.metrics.skin_tone import individual_typology_angle
from vitiseg.quality import QualityConfig

MEASURES = (
    "ambiguous_share",
    "mean_uncertainty",
    "lesion_share",
    "expected_dice",
    "boundary_ambiguity",
    "ita_deg",
    "relit_agreement",
)
# The re-lit copies of relit_agreement: gains per channel, as in white_balance_probe.py.
AGREEMENT_LIGHTINGS = ("cool 10 %", "dark 15 %")


def expected_dice(probability: np.ndarray, mask: np.ndarray, region: np.ndarray) -> float:
    """The Dice ``mask`` would score against a truth drawn pixel by pixel with the odds
    ``probability`` (over ``region``): 2 * sum of p inside the mask / (sum of p + mask size).

    A model's own estimate of its mask's Dice, needing no truth: low when much probability
    lies outside the mask or the mask holds many doubtful pixels. 1.0 when neither the mask
    nor the probability holds anything (nothing to find, nothing found).
    """
    mass = float(np.sum(probability, where=region, dtype=np.float64))
    size = int(np.count_nonzero(mask & region))
    if mass + size == 0:
        return 1.0
    overlap = float(np.sum(probability, where=mask & region, dtype=np.float64))
    return 2 * overlap / (mass + size)


def measures_of(prediction, skin: np.ndarray, lesion: np.ndarray, rgb) -> dict:
    region = skin if skin.any() else np.ones_like(skin)
    probability = prediction.lesion
    band = QualityConfig()  # the low_confidence flag's ambiguous band
    ambiguous = (probability >= band.ambiguous_low) & (probability <= band.ambiguous_high) & region
    lesion_in = lesion & region
    spread = prediction.uncertainty
    return {
        "ambiguous_share": float(ambiguous.sum() / region.sum()),
        "mean_uncertainty": float(spread[region].mean()) if spread is not None else None,
        "lesion_share": float(lesion_in.sum() / region.sum()),
        "expected_dice": expected_dice(probability, lesion, region),
        "boundary_ambiguity": float(ambiguous.sum() / max(1, int((ambiguous | lesion_in).sum()))),
        "ita_deg": individual_typology_angle(rgb, skin & ~lesion),
    }


def relit_agreement(one_pass, rgb: np.ndarray) -> float:
    """Mean Dice between the one-pass lesion mask of ``rgb`` and of its re-lit copies
    (``AGREEMENT_LIGHTINGS``); two empty masks agree fully."""

    def lesion_of(image: np.ndarray) -> np.ndarray:
        return one_pass.masks(one_pass.predict(image), image)[1]

    as_taken = lesion_of(rgb)
    agreements = []
    for name in AGREEMENT_LIGHTINGS:
        copy = lesion_of(relit(rgb, LIGHTINGS[name]))
        total = int(as_taken.sum()) + int(copy.sum())
        overlap = int(np.count_nonzero(as_taken & copy))
        agreements.append(1.0 if total == 0 else 2 * overlap / total)
    return float(np.mean(agreements))


def study(args) -> None:
    infer = {"tta": not args.no_tta, "scales": args.scales}
    predictor, model_dir = predictor_from_config(args.checkpoint, infer)
    one_pass = None
    if args.relit:
        one_pass, _ = predictor_from_config(args.checkpoint, {"tta": False, "scales": [1.0]})
    cases = list(load_dataset(args.dataset))
    if args.split_file:
        folds = load_split(args.split_file)[Path(args.dataset).name]
        part_of = {case_id: part for part in args.parts for case_id in folds[part]}
    else:
        part_of = {case.case_id: "all" for case in cases}
    rows = []
    for case in cases:
        if case.case_id not in part_of:
            continue
        rgb = read_rgb(case.image_path)
        prediction = predictor.predict(rgb)
        skin, lesion = predictor.masks(prediction, rgb)
        depigmented = predictor.depigmented_mask(prediction, lesion, rgb, skin)
        truth = read_truth(case)
        row = {
            "case_id": case.case_id,
            "patient_id": case.patient_id,
            "part": part_of[case.case_id],
        }
        row |= measures_of(prediction, skin, lesion, rgb)
        if one_pass is not None:
            row["relit_agreement"] = relit_agreement(one_pass, rgb)
        if truth["lesion"] is not None:
            row["lesion_dice"] = score_masks(lesion, truth["lesion"], with_hd95=False).dice
        if truth["depigmented"] is not None and depigmented is not None:
            row["depigmented_dice"] = score_masks(
                depigmented, truth["depigmented"], with_hd95=False
            ).dice
        affected_true = true_affected_fraction(truth)
        if affected_true is not None:
            predicted = depigmented if depigmented is not None else lesion
            row["affected_error_pp"] = 100 * (affected_fraction(predicted, skin) - affected_true)
        rows.append(row)
        print(f"{len(rows)} {case.case_id}", file=sys.stderr)
    fields = sorted({key for row in rows for key in row}, key=lambda k: (k not in rows[0], k))
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} photos, model {model_dir}, scales {args.scales} -> {args.out}")


def youden_threshold(values: np.ndarray, poor: np.ndarray, low_is_bad: bool) -> float:
    """The cut maximising sensitivity + specificity for ``poor`` (ties: fewer flagged)."""
    best = None
    for cut in np.unique(values):
        flagged = values <= cut if low_is_bad else values >= cut
        sensitivity = flagged[poor].mean() if poor.any() else 0.0
        specificity = (~flagged[~poor]).mean() if (~poor).any() else 0.0
        key = (sensitivity + specificity, -flagged.sum())
        if best is None or key > best[0]:
            best = (key, float(cut))
    return best[1]


def analyse(path: str, target: str, parts: list[str] | None) -> None:
    with open(path) as handle:
        rows = [r for r in csv.DictReader(handle) if r.get(target)]
    for part in sorted({r["part"] for r in rows} & set(parts or [r["part"] for r in rows])):
        chosen = [r for r in rows if r["part"] == part]
        truth = np.array([float(r[target]) for r in chosen])
        print(f"{part}: {len(chosen)} photos, mean {target} {truth.mean():.3f}")
        for name in MEASURES:
            values = np.array([float(r[name]) if r.get(name) else np.nan for r in chosen])
            keep = ~np.isnan(values)
            if keep.sum() < 3:
                continue
            rho = spearmanr(values[keep], truth[keep]).statistic
            print(f"  {name:20s} Spearman with {target}: {rho:+.2f}")


def apply_cut(path: str, target: str, measure: str, choose_on: str, poor_below: float) -> None:
    """Cut ``measure`` where it best separates ``target`` < ``poor_below`` on the
    ``choose_on`` part, then report flagged against unflagged photos in every part."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    low_is_bad = measure in ("expected_dice", "relit_agreement")
    chosen = [r for r in rows if r["part"] == choose_on and r.get(target)]
    values = np.array([float(r[measure]) for r in chosen])
    poor = np.array([float(r[target]) < poor_below for r in chosen])
    cut = youden_threshold(values, poor, low_is_bad)
    print(f"{measure} cut {cut:.4f} ({'<=' if low_is_bad else '>='} flags), chosen on {choose_on}")
    for part in sorted({r["part"] for r in rows}):
        subset = [r for r in rows if r["part"] == part]
        flagged = [
            (float(r[measure]) <= cut) if low_is_bad else (float(r[measure]) >= cut)
            for r in subset
        ]
        line = f"  {part}: {sum(flagged)} of {len(subset)} flagged"
        for name in ("lesion_dice", "depigmented_dice", "affected_error_pp"):
            scores = [
                (float(r[name]), f) for r, f in zip(subset, flagged, strict=True) if r.get(name)
            ]
            if not scores:
                continue
            values_in = [abs(v) if name.endswith("_pp") else v for v, f in scores if f]
            values_out = [abs(v) if name.endswith("_pp") else v for v, f in scores if not f]
            mean_in = f"{np.mean(values_in):.3f}" if values_in else "-"
            mean_out = f"{np.mean(values_out):.3f}" if values_out else "-"
            line += f"; {name} flagged {mean_in} / not {mean_out}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset")
    parser.add_argument("--checkpoint")
    parser.add_argument("--split-file")
    parser.add_argument("--parts", nargs="+", default=["train", "val"])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.75, 1.0, 1.25])
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--relit", action="store_true", help="also measure relit_agreement")
    parser.add_argument("--out")
    parser.add_argument("--analyse", help="a CSV this script wrote")
    parser.add_argument("--target", default="lesion_dice")
    parser.add_argument("--measure", choices=MEASURES, help="with --analyse: cut this one")
    parser.add_argument("--choose-on", default="train", help="part the cut is chosen on")
    parser.add_argument("--poor-below", type=float, default=0.5, help="a poor photo's Dice")
    parser.add_argument(
        "--only-parts", action="store_true", help="--analyse only the --parts given"
    )
    args = parser.parse_args()
    if args.analyse and args.measure:
        apply_cut(args.analyse, args.target, args.measure, args.choose_on, args.poor_below)
    elif args.analyse:
        analyse(args.analyse, args.target, args.parts if args.only_parts else None)
    else:
        study(args)


if __name__ == "__main__":
    sys.exit(main())
