"""A self-contained HTML report of a scoring run, readable by a clinician.

Thumbnails are embedded as base64 JPEG, so the single file can be mailed or archived.
Every name and value from the photos or the manifest goes through :func:`html.escape`,
and a Content-Security-Policy forbids scripts, so a hostile file name cannot run code.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vitiseg.io.atomic import write_text_atomic
from vitiseg.report.accuracy import measured_accuracy
from vitiseg.report.overlay import LEGEND

DISCLAIMER = (
    "Research use only. These scores approximate a clinician's VASI (Vitiligo Area "
    "Scoring Index) from photographs; they are not a diagnosis, are not validated for "
    "treatment decisions and must be checked by a clinician. A photo shows only part of a "
    "body region, and flagged photos may be scored wrongly."
)


@dataclass(frozen=True)
class ReportPhoto:
    """One row of the photo table.

    Attributes:
        image: Photo name as given (relative path).
        status: ``ok`` or ``error``.
        error: Error message (empty when ok).
        patient_id: Patient identifier from the manifest.
        visit: Visit label from the manifest.
        region: VASI body region.
        affected_fraction: Patch extents / visible skin in [0, 1].
        n_patches: Patches kept.
        patch_levels: Patches per depigmentation level, e.g. ``100%:2;50%:1``.
        hand_units_affected: Affected hand units.
        vasi: Region VASI of the photo.
        mean_uncertainty: Mean TTA spread of the lesion probability over skin.
        quality_flags: Raised quality flag names.
        photo_jpeg: Thumbnail of the photo (JPEG bytes).
        overlay_jpeg: Thumbnail of the overlay (JPEG bytes).
        overlay_href: Relative link to the full-size overlay.
    """

    image: str
    status: str
    error: str = ""
    patient_id: str = ""
    visit: str = ""
    region: str = ""
    affected_fraction: float | None = None
    n_patches: int | None = None
    patch_levels: str = ""
    hand_units_affected: float | None = None
    vasi: float | None = None
    mean_uncertainty: float | None = None
    quality_flags: tuple[str, ...] = ()
    photo_jpeg: bytes | None = None
    overlay_jpeg: bytes | None = None
    overlay_href: str = ""


@dataclass(frozen=True)
class RegionSum:
    """Sums over the scored photos of one region.

    Attributes:
        region: VASI body region.
        n_photos: Photos scored.
        n_flagged: Of them, photos with quality flags.
        hand_units_affected: Sum of affected hand units.
        vasi: Sum of the photos' region VASI.
        mean_affected_fraction: Mean affected fraction.
    """

    region: str
    n_photos: int
    n_flagged: int
    hand_units_affected: float
    vasi: float
    mean_affected_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VisitTotal:
    """F-VASI and T-VASI of one patient visit (``vitiseg.vasi.total_vasi``).

    Attributes:
        patient_id: Patient identifier.
        visit: Visit label.
        n_photos: Photos scored for the visit.
        n_flagged: Of them, photos with quality flags.
        f_vasi: Face VASI, None without a face photo.
        t_vasi: Sum of the photographed regions' VASI.
        t_vasi_max: Hand units of the photographed regions included in T-VASI.
        regions: (region, VASI, photos) per photographed region.
        regions_missing: Regions counted in T-VASI that had no photo.
        problem: Why no total could be made, if so.
    """

    patient_id: str
    visit: str
    n_photos: int
    n_flagged: int
    f_vasi: float | None
    t_vasi: float | None
    t_vasi_max: float | None
    regions: tuple[tuple[str, float, int], ...] = ()
    regions_missing: tuple[str, ...] = ()
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["regions"] = [
            {"region": region, "vasi": vasi, "n_photos": n} for region, vasi, n in self.regions
        ]
        data["regions_missing"] = list(self.regions_missing)
        return data


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1b1b;
max-width:1500px}
h1{margin:0 0 4px 0;font-size:26px}h2{margin-top:32px;font-size:20px;border-bottom:1px solid #ccc}
.disclaimer{border:3px solid #b00020;background:#fff0f0;padding:12px 16px;font-size:16px;
margin:16px 0;border-radius:6px}
.disclaimer strong{color:#b00020}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{border:1px solid #ccc;border-radius:6px;padding:8px 14px;min-width:110px;background:#fafafa}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eee;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.flagged td{background:#fff6d6}tr.error td{background:#fde2e2}
.flag{display:inline-block;background:#f0b400;color:#000;border-radius:3px;padding:0 4px;
margin:1px;font-size:12px;white-space:nowrap}
.status-ok{color:#1b6e20;font-weight:bold}.status-error{color:#b00020;font-weight:bold}
img.thumb{max-width:150px;max-height:150px;display:block}
td.name{min-width:150px;max-width:240px;overflow-wrap:anywhere}
.swatch{display:inline-block;width:28px;height:6px;vertical-align:middle;margin:0 6px 0 12px}
.muted{color:#555;font-size:13px}.message{color:#7a0016;font-size:13px}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px;max-height:400px}
@media print{th{position:static}.disclaimer{border-width:2px}}
"""


def _e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _img(data: bytes | None, alt: str) -> str:
    if not data:
        return "<span class='muted'>–</span>"
    encoded = base64.b64encode(data).decode("ascii")
    return f"<img class='thumb' alt='{_e(alt)}' src='data:image/jpeg;base64,{encoded}'>"


def _flags(flags: Sequence[str], descriptions: Mapping[str, str]) -> str:
    return "".join(
        f"<span class='flag' title='{_e(descriptions.get(flag, flag))}'>{_e(flag)}</span>"
        for flag in flags
    )


def _photo_rows(photos: Sequence[ReportPhoto], descriptions: Mapping[str, str]) -> str:
    rows = []
    for photo in photos:
        css = "error" if photo.status != "ok" else ("flagged" if photo.quality_flags else "")
        overlay = _img(photo.overlay_jpeg, f"overlay of {photo.image}")
        if photo.overlay_href and photo.overlay_jpeg:
            overlay = f"<a href='{_e(quote(photo.overlay_href))}'>{overlay}</a>"
        details = (
            f"<div class='message'>{_e(photo.error)}</div>"
            if photo.status != "ok"
            else _flags(photo.quality_flags, descriptions)
        )
        rows.append(
            f"<tr class='{css}'>"
            f"<td>{_img(photo.photo_jpeg, photo.image)}</td><td>{overlay}</td>"
            f"<td class='name'><div>{_e(photo.image)}</div>"
            f"<div class='status-{_e(photo.status)}'>{_e(photo.status)}</div>{details}</td>"
            f"<td>{_e(photo.patient_id)}</td><td>{_e(photo.visit)}</td>"
            f"<td>{_e(photo.region)}</td>"
            f"<td class='num'>{_e(_percent(photo.affected_fraction))}</td>"
            f"<td class='num'>{_e('–' if photo.n_patches is None else photo.n_patches)}</td>"
            f"<td>{_e(photo.patch_levels.replace(';', ' '))}</td>"
            f"<td class='num'>{_e(_number(photo.hand_units_affected))}</td>"
            f"<td class='num'>{_e(_number(photo.vasi))}</td>"
            f"<td class='num'>{_e(_number(photo.mean_uncertainty, 3))}</td></tr>"
        )
    return "\n".join(rows)


def _visit_table(visits: Sequence[VisitTotal]) -> str:
    rows = []
    for visit in visits:
        regions = ", ".join(
            f"{region} {vasi:.2f} ({n} photo{'s' if n != 1 else ''})"
            for region, vasi, n in visit.regions
        )
        flagged = f"{visit.n_flagged} flagged" if visit.n_flagged else ""
        notes = "; ".join(
            part
            for part in (
                visit.problem,
                flagged,
                "not photographed: " + ", ".join(visit.regions_missing)
                if visit.regions_missing
                else "",
            )
            if part
        )
        css = "flagged" if visit.n_flagged or visit.problem else ""
        rows.append(
            f"<tr class='{css}'><td>{_e(visit.patient_id)}</td><td>{_e(visit.visit)}</td>"
            f"<td class='num'>{visit.n_photos}</td>"
            f"<td class='num'>{_e(_number(visit.f_vasi))}</td>"
            f"<td class='num'>{_e(_number(visit.t_vasi))}</td>"
            f"<td class='num'>{_e(_number(visit.t_vasi_max, 0))}</td>"
            f"<td>{_e(regions)}</td><td>{_e(notes)}</td></tr>"
        )
    return (
        "<table><thead><tr><th>patient</th><th>visit</th><th>photos</th><th>F-VASI</th>"
        "<th>T-VASI (photographed regions)</th><th>max possible</th><th>regions</th>"
        "<th>notes</th>"
        "</tr></thead><tbody>" + "\n".join(rows) + "</tbody></table>"
    )


def _region_table(region_sums: Sequence[RegionSum]) -> str:
    rows = [
        f"<tr><td>{_e(r.region)}</td><td class='num'>{r.n_photos}</td>"
        f"<td class='num'>{r.n_flagged}</td>"
        f"<td class='num'>{_e(_percent(r.mean_affected_fraction))}</td>"
        f"<td class='num'>{_e(_number(r.hand_units_affected))}</td>"
        f"<td class='num'>{_e(_number(r.vasi))}</td></tr>"
        for r in region_sums
    ]
    return (
        "<table><thead><tr><th>region</th><th>photos</th><th>flagged</th>"
        "<th>mean affected</th><th>sum of affected hand units</th><th>sum of VASI</th></tr>"
        "</thead><tbody>" + "\n".join(rows) + "</tbody></table>"
    )


def render_report(
    photos: Sequence[ReportPhoto],
    *,
    region_sums: Sequence[RegionSum] = (),
    visits: Sequence[VisitTotal] = (),
    run: Mapping[str, Any] | None = None,
    flag_descriptions: Mapping[str, str] | None = None,
    title: str = "vitiseg scoring report",
) -> str:
    """The report as one HTML string (no external resources, no scripts).

    Args:
        photos: One row per input photo, in input order.
        region_sums: Per-region sums over scored photos.
        visits: F-VASI / T-VASI per patient visit (empty without a manifest).
        run: Run information shown at the top and in full at the end: ``model_id``,
            ``finished``, ``shard`` and any settings (JSON-serialisable).
        flag_descriptions: Quality flag name -> explanation.
        title: Page title.
    """
    run = dict(run or {})
    descriptions = dict(flag_descriptions or {})
    n_ok = sum(p.status == "ok" for p in photos)
    n_error = len(photos) - n_ok
    n_flagged = sum(p.status == "ok" and bool(p.quality_flags) for p in photos)
    legend = "".join(
        f"<span class='swatch' style='background:rgb{colour}'></span>{_e(label)}"
        for label, colour in LEGEND
    )
    cards = "".join(
        f"<div class='card'><b>{_e(value)}</b>{_e(label)}</div>"
        for label, value in (
            ("photos", len(photos)),
            ("scored", n_ok),
            ("flagged for quality", n_flagged),
            ("failed", n_error),
        )
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        # No script may run, whatever a file name or manifest contains.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<div class='muted'>model {_e(run.get('model_id', '?'))} · generated "
        f"{_e(run.get('finished', ''))}"
        + (f" · shard {_e(run['shard'])}" if run.get("shard") else "")
        + "</div>",
        f"<div class='disclaimer' role='note'><strong>Research use only.</strong> "
        f"{_e(DISCLAIMER.removeprefix('Research use only. '))}</div>",
        f"<div class='cards'>{cards}</div>",
        f"<p>Overlays: {legend}. Rows highlighted in yellow have quality flags; red rows "
        "could not be scored.</p>",
    ]
    if visits:
        parts += [
            "<h2>Per patient and visit</h2>",
            "<p class='muted'>F-VASI is the face region's VASI. T-VASI sums the VASI of the "
            "regions photographed at that visit; regions without a photo are listed and "
            "not counted.</p>",
            _visit_table(visits),
        ]
    if region_sums:
        parts += ["<h2>Per region</h2>", _region_table(region_sums)]
    parts += [
        "<h2>Photos</h2>",
        "<table><thead><tr><th>photo</th><th>overlay (click: full size)</th>"
        "<th>image, status, quality flags</th><th>patient</th><th>visit</th><th>region</th>"
        "<th>affected skin</th><th>patches</th><th>patches per level</th>"
        "<th>affected hand units</th><th>VASI</th><th>TTA uncertainty</th></tr></thead><tbody>",
        _photo_rows(photos, descriptions),
        "</tbody></table>",
    ]
    accuracy = measured_accuracy((run.get("model") or {}).get("evaluation"))
    if accuracy:
        parts += [
            "<h2>How accurate this model was measured to be</h2>",
            "<p class='muted'>From the model folder's own evaluations (vitiseg-eval). Photos "
            "unlike these, and flagged photos, may score worse.</p><ul>",
            *(f"<li>{_e(sentence)}</li>" for sentence in accuracy),
            "</ul>",
        ]
    if descriptions:
        parts.append("<h2>Quality flags</h2><ul>")
        parts += [f"<li><b>{_e(name)}</b>: {_e(text)}</li>" for name, text in descriptions.items()]
        parts.append("</ul>")
    parts += [
        "<h2>Run settings</h2><details><summary>model and configuration</summary>",
        f"<pre>{_e(json.dumps(run, indent=2, default=str))}</pre></details>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


def write_report(path: str | Path, photos: Sequence[ReportPhoto], **kwargs: Any) -> Path:
    """Render :func:`render_report` and write it atomically; returns the path."""
    path = Path(path)
    write_text_atomic(path, render_report(photos, **kwargs))
    return path
