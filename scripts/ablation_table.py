#!/usr/bin/env python3
"""Markdown table of training runs compared on the same validation split.

    python scripts/ablation_table.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--metric COLUMN]

For each run (a vitiseg-train output folder, or a scripts/train_peer.py folder) it prints
the best validation lesion Dice and its epoch, and the mean over the last five
validations: on a small validation split the maximum over many epochs is biased upwards,
the late mean is not (it also shows whether a run is still improving).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

COLUMNS = ("select_metric", "val_lesion_dice")  # vitiseg-train, train_peer.py


def read_history(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def summarise(history: list[dict[str, str]], column: str | None, last: int = 5) -> dict:
    column = column or next(c for c in COLUMNS if c in history[0])
    values = [float(row[column]) for row in history]
    finite = [v for v in values if not math.isnan(v)]
    best_index = max(range(len(values)), key=lambda i: -1 if math.isnan(values[i]) else values[i])
    tail = finite[-last:]
    return {
        "epochs": len(values),
        "minutes": float(history[-1]["minutes"]),
        "best": values[best_index],
        "best_epoch": int(history[best_index]["epoch"]),
        "late_mean": sum(tail) / len(tail),
        "late_n": len(tail),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    parser.add_argument("--metric", default=None, help="metrics.csv column to compare")
    args = parser.parse_args()
    print("| arm | epochs | minutes | best val lesion Dice (epoch) | mean of last 5 |")
    print("|---|---|---|---|---|")
    for item in args.runs:
        name, _, folder = item.partition("=")
        s = summarise(read_history(Path(folder)), args.metric)
        print(
            f"| {name} | {s['epochs']} | {s['minutes']:.0f} | {s['best']:.3f} ({s['best_epoch']}) "
            f"| {s['late_mean']:.3f} |"
        )


if __name__ == "__main__":
    main()
