#!/usr/bin/env python3
"""Markdown table of training runs compared on the same validation split.

    python scripts/ablation_table.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--metric COLUMN] [--last N]
    python scripts/ablation_table.py --paired TREATED_DIR=CONTROL_DIR [...] [--metric C] [--last N]

For each run (a vitiseg-train output folder, or a scripts/train_peer.py folder) it prints
the best validation lesion Dice and its epoch, and the mean over the last N (5)
validations: on a small validation split the maximum over many epochs is biased upwards,
the late mean is not (it also shows whether a run is still improving).

With --paired each argument is a treated run and its control trained with the same seed
side by side; it prints each pair's late means and difference, then the mean difference over
the pairs with a 95 % t interval (seeds as the unit: the spread between seeds, not between
photos, is what decides whether a training change helps).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from scipy import stats

COLUMNS = ("select_metric", "val_lesion_dice")  # vitiseg-train, train_peer.py


def read_history(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def summarise(history: list[dict[str, str]], column: str | None, last: int = 5) -> dict:
    column = column or next(c for c in COLUMNS if c in history[0])
    # An epoch not validated (trainer.validate_every) has an empty cell: NaN, like no figure.
    values = [float(row[column]) if row[column] else math.nan for row in history]
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


def paired_seed_differences(differences: list[float]) -> dict:
    """Mean of treated − control over seed pairs, its 95 % t interval and the pairs won."""
    mean = sum(differences) / len(differences)
    if len(differences) > 1:
        interval = stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
        low, high = float(interval.low), float(interval.high)
    else:
        low = high = math.nan
    return {
        "pairs": len(differences),
        "mean": mean,
        "low": low,
        "high": high,
        "treated_ahead": sum(d > 0 for d in differences),
    }


def print_runs(items: list[str], metric: str | None, last: int) -> None:
    # Name the column compared: a skin-Dice table must not read as lesion Dice.
    compared = metric or "val lesion Dice"
    print(f"| arm | epochs | minutes | best {compared} (epoch) | mean of last {last} |")
    print("|---|---|---|---|---|")
    for item in items:
        name, _, folder = item.partition("=")
        s = summarise(read_history(Path(folder)), metric, last)
        print(
            f"| {name} | {s['epochs']} | {s['minutes']:.0f} | {s['best']:.3f} ({s['best_epoch']}) "
            f"| {s['late_mean']:.3f} |"
        )


def print_pairs(items: list[str], metric: str | None, last: int) -> None:
    print(f"| treated | control | treated, mean of last {last} | control | difference |")
    print("|---|---|---|---|---|")
    differences = []
    for item in items:
        treated, sep, control = item.partition("=")
        if not sep:
            raise SystemExit(f"--paired needs TREATED_DIR=CONTROL_DIR, got {item!r}")
        a = summarise(read_history(Path(treated)), metric, last)
        b = summarise(read_history(Path(control)), metric, last)
        differences.append(a["late_mean"] - b["late_mean"])
        print(
            f"| {treated} | {control} | {a['late_mean']:.3f} | {b['late_mean']:.3f} "
            f"| {differences[-1]:+.3f} |"
        )
    print("\n" + describe_pairs(paired_seed_differences(differences)))


def describe_pairs(p: dict) -> str:
    interval = (
        "no interval from one pair"
        if math.isnan(p["low"])
        else f"95 % t interval {p['low']:+.3f} to {p['high']:+.3f}"
    )
    return (
        f"mean difference over {p['pairs']} pairs: {p['mean']:+.3f} ({interval}); "
        f"treated ahead in {p['treated_ahead']} of {p['pairs']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR or TREATED_DIR=CONTROL_DIR")
    parser.add_argument("--metric", default=None, help="metrics.csv column to compare")
    parser.add_argument("--last", type=int, default=5, help="validations averaged at the end")
    parser.add_argument("--paired", action="store_true", help="arguments are seed pairs")
    args = parser.parse_args()
    if args.paired:
        print_pairs(args.runs, args.metric, args.last)
    else:
        print_runs(args.runs, args.metric, args.last)


if __name__ == "__main__":
    main()
