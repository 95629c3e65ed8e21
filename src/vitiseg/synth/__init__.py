"""Synthetic vitiligo photos with exact masks and VASI truth (``vitiseg-synth``).

Two modes: ``procedural`` draws clinical-style photos from scratch on skin of
Fitzpatrick I-VI; ``painted`` paints depigmented patches onto real photos with skin
masks. Both write the vitiseg dataset format plus ``truth.json``; see
``docs/synthetic_data.md``.
"""

from __future__ import annotations

from vitiseg.synth.contact_sheet import make_contact_sheet
from vitiseg.synth.dataset import MODES, SynthSummary, case_rng, generate_dataset, iter_cases
from vitiseg.synth.patches import CUT_POINTS, LEVELS, PatchTruth, level_band, snap_share
from vitiseg.synth.records import REGIONS, CaseTruth, SynthCase

__all__ = [
    "CUT_POINTS",
    "LEVELS",
    "MODES",
    "REGIONS",
    "CaseTruth",
    "PatchTruth",
    "SynthCase",
    "SynthSummary",
    "case_rng",
    "generate_dataset",
    "iter_cases",
    "level_band",
    "make_contact_sheet",
    "snap_share",
]
