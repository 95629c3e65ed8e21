"""How accurate a model was measured to be, in sentences a report reader can weigh.

A model folder's ``metadata.json`` keeps the ``vitiseg-eval`` summaries it shipped with
(``evaluation``). A scoring report shows them beside the scores, so whoever reads the VASI
also reads how far the masks behind it were from hand-drawn or exact truth. Its
``recipe_cv`` record is the recipe's cross-validation: the same recipe trained again on
folds of patients, each fold's model scored on patients it never saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RECIPE_CV_KEY = "recipe_cv"
# Names the shipped model's evaluations go by; other names are shown as they are.
KNOWN_SETS = {
    "real_val": "real vitiligo photos, validation patients (hand-drawn outlines)",
    "skin_val": "real skin photos without vitiligo, validation split",
    "backdrop": "the same skin photos before plain backdrops",
    "synth": "procedural synthetic photos (exact truth)",
    "painted": "vitiligo painted on real skin photos (exact truth)",
    "painted_heldout": "vitiligo painted on held-out skin photos (exact truth)",
}


def _interval(mean: Mapping[str, Any], key: str) -> str:
    interval = (mean.get("ci95_by_patient") or {}).get(key)
    return f" (95 % CI {interval[0]:.2f}–{interval[1]:.2f})" if interval else ""


def _figures(summary: Mapping[str, Any]) -> list[str]:
    mean = summary.get("mean") or {}
    figures = []
    # Photos annotated without a lesion score 1 or 0 under the empty-mask policy, so the
    # lesion Dice is given over the photos that have one.
    lesion = mean.get("lesion_nonempty") or {}
    if lesion.get("dice") is not None:
        figures.append(
            f"lesion Dice {lesion['dice']:.2f}{_interval(mean, 'lesion_nonempty_dice')}"
        )
    for output in ("depigmented", "skin"):
        dice = (mean.get(output) or {}).get("dice")
        if dice is not None:
            figures.append(f"{output} Dice {dice:.2f}")
    affected = mean.get("affected_fraction") or {}
    if affected.get("mae") is not None:
        figures.append(
            f"mean error of the affected skin share {100 * affected['mae']:.1f} percentage "
            f"points (bias {100 * affected['bias']:+.1f})"
        )
    vasi = (summary.get("vasi_vs_truth") or {}).get("model_vs_generator") or {}
    if vasi.get("mae") is not None:
        figures.append(f"mean VASI error {vasi['mae']:.2f} against the exact VASI")
    agreement = (summary.get("annotator_agreement") or {}).get("lesion")
    if agreement:
        figures.append(
            f"on {agreement['photos']} photo(s) annotated twice the annotators agree at "
            f"lesion Dice {agreement['annotator_dice']:.2f}, the model "
            f"{agreement['model_dice']:.2f}"
        )
    return figures


def measured_accuracy(evaluation: Mapping[str, Any] | None) -> list[str]:
    """One sentence per evaluation summary in a model's metadata (``evaluation``) that has
    means; [] when it has none. Studies without means (re-take noise, flag shares) are left
    out: they describe settings, not accuracy."""
    sentences = []
    for name, summary in (evaluation or {}).items():
        if not isinstance(summary, Mapping) or "mean" not in summary:
            continue
        figures = _figures(summary)
        if not figures:
            continue
        mean = summary["mean"]
        described = KNOWN_SETS.get(name, name)
        if name == RECIPE_CV_KEY:
            # Not these weights: say so, or the figure reads as the shipped model's own.
            described = (
                "real vitiligo photos of patients outside training, scored by the same recipe "
                f"trained again without them ({len(summary.get('folds') or [])} cross-validation "
                "fold(s), other weights than this model's)"
            )
        photos = f"{mean.get('n_cases', '?')} photos"
        if mean.get("n_patients") and mean["n_patients"] != mean.get("n_cases"):
            photos += f" of {mean['n_patients']} patients"
        sentences.append(f"{described}, {photos}: " + "; ".join(figures))
    return sentences
