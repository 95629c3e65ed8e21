"""Cohort outputs: a results table laid out like a paper's, waterfall and box plots, HTML.

Figures use Matplotlib's object API (``Figure``), never pyplot's global state.
"""

from __future__ import annotations

import html
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vitiseg.cohort.summary import RESPONDER_LEVELS, CohortSummary, ScoreSummary
from vitiseg.io.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from vitiseg.io.tables import csv_text

logger = logging.getLogger(__name__)

SCORE_LABELS = {"f_vasi": "F-VASI", "t_vasi": "T-VASI"}
# Waterfall bars above this % worsening are cut so improvements stay readable.
_WATERFALL_TOP = 100.0


@dataclass(frozen=True)
class TableRow:
    """One line of the results table: a label and its formatted value."""

    label: str
    value: str
    section: bool = False


def score_label(score: str) -> str:
    """``"f_vasi"`` -> ``"F-VASI"``; other columns keep their name."""
    return SCORE_LABELS.get(score, score)


def format_p(p_value: float | None) -> str:
    """``<0.001`` below 0.001, else three decimals; ``n/a`` when not tested."""
    if p_value is None:
        return "n/a"
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def format_median_iqr(median: float | None, q1: float | None, q3: float | None) -> str:
    if median is None or q1 is None or q3 is None:
        return "n/a"
    return f"{median:.2f} ({q1:.2f}\u2013{q3:.2f})"


def results_rows(
    summary: CohortSummary, baseline_label: str, followup_label: str
) -> list[TableRow]:
    """The results table's rows for every score column."""
    rows: list[TableRow] = []
    for name, score in summary.scores.items():
        label = score_label(name)
        rows.append(TableRow(label, "", section=True))
        rows.append(
            TableRow(
                f"Patients with {label} at {baseline_label} and {followup_label}, n", str(score.n)
            )
        )
        rows.append(
            TableRow(
                f"Median (IQR) {label} at {baseline_label}",
                format_median_iqr(score.baseline.median, score.baseline.q1, score.baseline.q3),
            )
        )
        rows.append(
            TableRow(
                f"Median (IQR) {label} at {followup_label}",
                format_median_iqr(score.followup.median, score.followup.q1, score.followup.q3),
            )
        )
        rows.append(TableRow("P (Wilcoxon signed-rank)", format_p(score.test.p_value)))
        for level in RESPONDER_LEVELS:
            share = score.responders[str(level)]
            if share.share is None:
                value = "n/a (no patient with a baseline above 0)"
            else:
                value = (
                    f"{share.count}/{share.n} ({100 * share.share:.1f}) "
                    f"[{100 * share.ci_low:.1f}\u2013{100 * share.ci_high:.1f}]"
                )
            rows.append(TableRow(f"{label}{level} at {followup_label}, n/N (%) [95% CI]", value))
    return rows


def table_notes(summary: CohortSummary) -> list[str]:
    """Footnotes: definitions, test methods and patients left out."""
    notes = [
        "IQR: 25th to 75th percentile (linear interpolation between order statistics).",
        "P: Wilcoxon signed-rank test, two-sided, pairs with zero difference dropped.",
        "VASI50/75/90: improvement of at least 50/75/90 % from baseline, "
        "(baseline \u2212 follow-up) / baseline; N counts patients whose baseline score was "
        "above 0. 95% CI: Wilson score interval.",
    ]
    for name, score in summary.scores.items():
        label = score_label(name)
        if score.test.p_value is None:
            notes.append(f"{label}: no P value ({score.test.reason}).")
        else:
            notes.append(
                f"{label}: {score.test.method} ({score.test.n_nonzero} non-zero "
                f"of {score.test.n} pairs)."
            )
        if score.missing_visit:
            listed = ", ".join(
                f"{item.patient_id} (no {' or '.join(item.missing)})"
                for item in score.missing_visit
            )
            notes.append(
                f"{label}: {len(score.missing_visit)} patient(s) left out for a "
                f"missing visit: {listed}."
            )
    return notes


def results_table_markdown(
    summary: CohortSummary, baseline_label: str, followup_label: str
) -> str:
    """The results table as Markdown, with footnotes."""
    lines = [f"| Outcome | {_md(followup_label)} vs {_md(baseline_label)} |", "|---|---|"]
    for row in results_rows(summary, baseline_label, followup_label):
        label = f"**{_md(row.label)}**" if row.section else _md(row.label)
        lines.append(f"| {label} | {_md(row.value)} |")
    lines.append("")
    lines.extend(f"- {_md(note)}" for note in table_notes(summary))
    return "\n".join(lines) + "\n"


def results_table_html(summary: CohortSummary, baseline_label: str, followup_label: str) -> str:
    """The results table as an HTML fragment (every value escaped)."""
    esc = html.escape
    body = []
    for row in results_rows(summary, baseline_label, followup_label):
        if row.section:
            body.append(f'<tr class="section"><th colspan="2">{esc(row.label)}</th></tr>')
        else:
            body.append(f"<tr><td>{esc(row.label)}</td><td>{esc(row.value)}</td></tr>")
    notes = "".join(f"<li>{esc(note)}</li>" for note in table_notes(summary))
    return (
        '<table class="results"><thead><tr><th>Outcome</th>'
        f"<th>{esc(followup_label)} vs {esc(baseline_label)}</th></tr></thead>"
        f'<tbody>{"".join(body)}</tbody></table><ul class="notes">{notes}</ul>'
    )


def percent_changes(score: ScoreSummary) -> tuple[list[str], np.ndarray]:
    """Patients with a baseline above 0 and their % change, most worsened first.

    Returns:
        (patient ids, (N,) float64 ``100 * (follow-up - baseline) / baseline``).
    """
    pairs = [
        (p.patient_id, -100.0 * p.improvement) for p in score.patients if p.improvement is not None
    ]
    pairs.sort(key=lambda item: -item[1])
    return [pid for pid, _ in pairs], np.array([v for _, v in pairs], dtype=np.float64)


def waterfall_png(summary: CohortSummary, baseline_label: str, followup_label: str) -> bytes:
    """Per-patient % change, sorted, one panel per score; lines at -50, -75 and -90 %."""
    names = list(summary.scores)
    figure = Figure(figsize=(6.0 * len(names), 4.2), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for axis, name in zip(axes, names, strict=True):
        _, changes = percent_changes(summary.scores[name])
        shown = np.minimum(changes, _WATERFALL_TOP)
        colours = np.where(
            changes <= -90,
            "#005a32",
            np.where(
                changes <= -75,
                "#238b45",
                np.where(changes <= -50, "#74c476", np.where(changes <= 0, "#bdbdbd", "#d94801")),
            ),
        )
        axis.bar(np.arange(changes.size), shown, color=colours, width=0.85)
        for level in RESPONDER_LEVELS:
            axis.axhline(-level, color="black", linestyle="--", linewidth=0.8)
            # Labels just right of the frame, clear of the bars.
            axis.text(
                1.01,
                -level,
                f"\u2212{level}%",
                transform=axis.get_yaxis_transform(),
                va="center",
                ha="left",
                fontsize=8,
            )
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_ylim(-105, _WATERFALL_TOP + 5)
        axis.set_xticks([])
        label = score_label(name)
        axis.set_xlabel(
            f"patients with {label} above 0 at {baseline_label} (n = {changes.size}), sorted"
        )
        axis.set_ylabel(f"{label} change from {baseline_label} to {followup_label} (%)")
        cut = int(np.count_nonzero(changes > _WATERFALL_TOP))
        title = f"{label}: change per patient"
        axis.set_title(
            title + (f" ({cut} bar(s) above +{_WATERFALL_TOP:.0f}% cut)" if cut else ""),
            fontsize=10,
        )
    return _png(figure)


def boxplots_png(summary: CohortSummary, baseline_label: str, followup_label: str) -> bytes:
    """Box plots at both visits per score, each patient's pair joined by a faint line."""
    names = list(summary.scores)
    figure = Figure(figsize=(4.0 * len(names), 4.2), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for axis, name in zip(axes, names, strict=True):
        score = summary.scores[name]
        before = np.array([p.baseline for p in score.patients])
        after = np.array([p.followup for p in score.patients])
        for start, end in zip(before, after, strict=True):
            axis.plot([1, 2], [start, end], color="#9e9e9e", linewidth=0.5, alpha=0.6)
        if before.size:
            axis.boxplot(
                [before, after],
                widths=0.45,
                showfliers=False,
                medianprops={"color": "#d94801", "linewidth": 2},
            )
        axis.scatter(np.full(before.size, 1.0), before, s=8, color="#4d4d4d", zorder=3)
        axis.scatter(np.full(after.size, 2.0), after, s=8, color="#4d4d4d", zorder=3)
        axis.set_xticks([1, 2], [baseline_label, followup_label])
        axis.set_xlim(0.5, 2.5)
        label = score_label(name)
        axis.set_ylabel(label)
        axis.set_title(f"{label} (n = {score.n}; P {format_p(score.test.p_value)})", fontsize=10)
    return _png(figure)


PATIENT_COLUMNS = (
    "score",
    "patient_id",
    "baseline",
    "followup",
    "change",
    "improvement",
    "vasi50",
    "vasi75",
    "vasi90",
)


def patients_csv(summary: CohortSummary) -> str:
    """Per-patient pairs of every score, long format."""
    rows = [
        {"score": name, **{column: getattr(p, column) for column in PATIENT_COLUMNS[1:]}}
        for name, score in summary.scores.items()
        for p in score.patients
    ]
    return csv_text(rows, PATIENT_COLUMNS)


def write_cohort_report(
    out_dir: str | Path,
    summary: CohortSummary,
    *,
    baseline_label: str | None = None,
    followup_label: str | None = None,
    source: str = "",
) -> dict[str, str]:
    """Write ``summary.json``, ``results_table.md``/``.html``, ``waterfall.png``,
    ``boxplots.png``, ``patients.csv`` and ``report.html``; returns them by kind.

    Args:
        out_dir: Output folder (created).
        summary: From :func:`vitiseg.cohort.summary.summarise_cohort`.
        baseline_label: How the baseline visit is named in tables (default: its name).
        followup_label: How the follow-up visit is named (e.g. ``"week 12"``).
        source: Name of the input table, shown in the report.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    baseline_label = baseline_label or summary.baseline_visit
    followup_label = followup_label or summary.followup_visit
    write_json_atomic(out_dir / "summary.json", summary.to_dict())
    write_text_atomic(
        out_dir / "results_table.md",
        results_table_markdown(summary, baseline_label, followup_label),
    )
    table_html = results_table_html(summary, baseline_label, followup_label)
    write_text_atomic(out_dir / "results_table.html", _page("Results", table_html))
    write_bytes_atomic(
        out_dir / "waterfall.png", waterfall_png(summary, baseline_label, followup_label)
    )
    write_bytes_atomic(
        out_dir / "boxplots.png", boxplots_png(summary, baseline_label, followup_label)
    )
    write_text_atomic(out_dir / "patients.csv", patients_csv(summary))
    esc = html.escape
    body = (
        f"<h1>Cohort: {esc(followup_label)} vs {esc(baseline_label)}</h1>"
        + (f"<p>Input: {esc(source)}</p>" if source else "")
        + table_html
        + '<h2>Change per patient</h2><img src="waterfall.png" alt="waterfall plot">'
        + '<h2>Before and after</h2><img src="boxplots.png" alt="box plots">'
        + '<p>Per-patient values: <a href="patients.csv">patients.csv</a>; all figures: '
        '<a href="summary.json">summary.json</a>.</p>'
    )
    write_text_atomic(out_dir / "report.html", _page("vitiseg cohort report", body))
    logger.info("cohort report written to %s", out_dir)
    return {
        "json": "summary.json",
        "table_md": "results_table.md",
        "table_html": "results_table.html",
        "waterfall": "waterfall.png",
        "boxplots": "boxplots.png",
        "patients": "patients.csv",
        "report": "report.html",
    }


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px}"
        "td:last-child{text-align:right}tr.section th{background:#eee;text-align:left}"
        "img{max-width:100%}ul.notes{font-size:90%;color:#444}"
        f"</style></head><body>{body}</body></html>\n"
    )


def _md(text: str) -> str:
    return text.replace("|", "\\|")
