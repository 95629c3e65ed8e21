#!/usr/bin/env python3
"""Markdown table of candidate models on the guard sets, with the mean over seeds.

    python scripts/guard_table.py [NAME=]EVAL_ROOT [[NAME=]EVAL_ROOT ...]

Each EVAL_ROOT holds one model's vitiseg-eval outputs in real/, painted/, synth/, skin/ and
backdrop/ (src/vitiseg/evaluation/guards.py); a set not evaluated shows as "–". With more than
one root the last column is the mean (lowest to highest) over them, as a ship rule over seeds
compares means: one lucky or unlucky seed should not decide.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vitiseg.evaluation.guards import (
    GUARD_FIGURES,
    guard_figures,
    mean_and_range,
    read_guard_summaries,
)


def format_figure(label: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if ("pp" in label or "VASI" in label) else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", metavar="[NAME=]EVAL_ROOT")
    args = parser.parse_args()
    named = [root.split("=", 1) if "=" in root else (Path(root).name, root) for root in args.roots]
    rows = {name: guard_figures(read_guard_summaries(Path(root))) for name, root in named}
    spread = mean_and_range(list(rows.values())) if len(rows) > 1 else None
    header = ["figure", *rows] + (["mean (range)"] if spread else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for label, *_ in GUARD_FIGURES:
        cells = [format_figure(label, row[label]) for row in rows.values()]
        if spread:
            stats = spread[label]
            cells.append(
                "–"
                if stats is None
                else f"{format_figure(label, stats[0])} "
                f"({format_figure(label, stats[1])} to {format_figure(label, stats[2])})"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
