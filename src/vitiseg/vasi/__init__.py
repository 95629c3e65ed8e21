"""From masks to VASI: region scores, F-VASI, T-VASI, response and agreement.

NumPy, SciPy and scikit-image only (no torch, no Hydra); definitions and sources are in
``docs/vasi.md``. Typical use::

    from vitiseg.vasi import load_vasi_config, score_region, total_vasi, response

    config = load_vasi_config("configs/vasi/default.yaml")
    face = score_region(skin, lesion, "face", roi=face_area, config=config)
    visit = total_vasi([face, hands, trunk], config)
    change = response(baseline_visit, visit, config)
"""

from __future__ import annotations

from vitiseg.vasi.agreement import (
    BlandAltman,
    bland_altman,
    icc_2_1,
    mean_absolute_error,
    plot_bland_altman,
)
from vitiseg.vasi.config import ADULT_REGIONS_PERCENT_BSA, VasiConfig, load_vasi_config
from vitiseg.vasi.patches import snap_level
from vitiseg.vasi.response import Response, response
from vitiseg.vasi.scoring import (
    LevelReference,
    Patch,
    RegionContribution,
    RegionScore,
    TotalScore,
    combine_photos,
    mosteller_bsa_cm2,
    score_region,
    score_region_labelled,
    total_vasi,
)

__all__ = [
    "ADULT_REGIONS_PERCENT_BSA",
    "BlandAltman",
    "LevelReference",
    "Patch",
    "RegionContribution",
    "RegionScore",
    "Response",
    "TotalScore",
    "VasiConfig",
    "bland_altman",
    "combine_photos",
    "icc_2_1",
    "load_vasi_config",
    "mean_absolute_error",
    "mosteller_bsa_cm2",
    "plot_bland_altman",
    "response",
    "score_region",
    "score_region_labelled",
    "snap_level",
    "total_vasi",
]
