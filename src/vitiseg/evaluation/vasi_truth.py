"""VASI against a synthetic set's exact truth (``truth.json`` from vitiseg-synth).

The generator designs every patch with a level; its VASI in region-share mode is
region hand units x sum(extent x level) / skin, capped at the region's hand units.
We compare that with VASI measured from the true masks (checks the maths) and from
the model's masks (measures the model).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitiseg.data.dataset_format import Case
from vitiseg.io.images import read_mask
from vitiseg.vasi import (
    VasiConfig,
    bland_altman,
    icc_2_1,
    mean_absolute_error,
    plot_bland_altman,
    score_region,
)


def load_truth(dataset: Path) -> dict[str, Any] | None:
    path = Path(dataset) / "truth.json"
    return json.loads(path.read_text())["cases"] if path.is_file() else None


def generator_vasi(case_truth: dict[str, Any], config: VasiConfig) -> float:
    """The VASI the generator designed for one photo (region-share mode)."""
    region_units = config.hand_units(case_truth["region"])
    skin_px = case_truth["skin_px"]
    if not skin_px:
        return 0.0
    designed = sum(p["extent_px"] * p["level"] for p in case_truth["patches"]) / skin_px
    return min(region_units * designed, region_units)


@dataclass(frozen=True)
class VasiAgreement:
    case_ids: list[str]
    generator: np.ndarray
    from_true_masks: np.ndarray
    from_model: np.ndarray | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": len(self.case_ids),
            "true_masks_vs_generator": {
                "max_abs_difference": float(np.max(np.abs(self.from_true_masks - self.generator))),
                "mae": mean_absolute_error(self.from_true_masks, self.generator),
            },
        }
        if self.from_model is not None:
            limits = bland_altman(self.from_model, self.generator)
            out["model_vs_generator"] = {
                "mae": mean_absolute_error(self.from_model, self.generator),
                "icc_2_1": icc_2_1(np.stack([self.from_model, self.generator], axis=1)),
                "bland_altman": limits.to_dict(),
            }
        return out


def masks_vasi(
    case_truth: dict[str, Any],
    config: VasiConfig,
    skin: np.ndarray | None,
    lesion: np.ndarray,
    depigmented: np.ndarray | None,
) -> float:
    """VASI of one photo's masks (true or the model's) in the generator's region."""
    return score_region(
        skin, lesion, case_truth["region"], config=config, depigmented=depigmented
    ).vasi


def vasi_agreement(
    cases: list[Case],
    truth: dict[str, Any],
    config: VasiConfig,
    model_vasi: Mapping[str, float] | None = None,
) -> VasiAgreement:
    """Per-photo VASI: designed, from the true masks, and (optionally) from the model.

    ``model_vasi`` maps case ids to the VASI of the model's masks (:func:`masks_vasi`),
    measured while the photos were evaluated, so the model runs once per photo; a set
    with ``masks/depigmented`` is scored from outlines and exact pixels alike.
    """
    ids, generator, measured, predicted = [], [], [], []
    for case in cases:
        if case.case_id not in truth or case.lesion_mask_path is None:
            continue
        case_truth = truth[case.case_id]
        skin = read_mask(case.skin_mask_path) if case.skin_mask_path else None
        lesion = read_mask(case.lesion_mask_path)
        path = case.depigmented_mask_path
        depigmented = read_mask(path) if path else None
        ids.append(case.case_id)
        generator.append(generator_vasi(case_truth, config))
        measured.append(masks_vasi(case_truth, config, skin, lesion, depigmented))
        if model_vasi is not None:
            predicted.append(model_vasi[case.case_id])
    return VasiAgreement(
        ids,
        np.asarray(generator),
        np.asarray(measured),
        np.asarray(predicted) if model_vasi is not None else None,
    )


def write_bland_altman(agreement: VasiAgreement, path: Path) -> None:
    if agreement.from_model is not None and len(agreement.case_ids) > 1:
        plot_bland_altman(
            agreement.from_model,
            agreement.generator,
            path,
            "Per-photo VASI: model vs generator truth",
        )
