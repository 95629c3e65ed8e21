"""Overlays and the self-contained HTML report of a scoring run."""

from __future__ import annotations

from vitiseg.report.html import (
    DISCLAIMER,
    RegionSum,
    ReportPhoto,
    VisitTotal,
    render_report,
    write_report,
)
from vitiseg.report.overlay import (
    LEGEND,
    LESION_COLOUR,
    SKIN_COLOUR,
    draw_overlay,
    encode_jpeg,
    shrink_long_side,
)

__all__ = [
    "DISCLAIMER",
    "LEGEND",
    "LESION_COLOUR",
    "SKIN_COLOUR",
    "RegionSum",
    "ReportPhoto",
    "VisitTotal",
    "draw_overlay",
    "encode_jpeg",
    "render_report",
    "shrink_long_side",
    "write_report",
]
