#!/usr/bin/env python3
"""A dataset folder holding a subset of another's cases, chosen by a cases.csv column.

    python scripts/subset_dataset.py DATA/both/painted-train-split \
        DATA/both/painted-light-train --column fitzpatrick --values 1 2

The subset's cases.csv keeps the source's rows whose column holds one of the values; its
images/ and masks/ are links to the source's folders (nothing is copied, the source is not
modified). A second folder like this gives those cases a sampling weight of their own in
training (stage 6 draws the Fitzpatrick type I-II painted photos a fifth of the time).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vitiseg.data.dataset_format import read_cases_csv, write_cases_csv


def write_subset(source: Path, target: Path, column: str, values: set[str]) -> int:
    """Write the subset folder; returns the number of cases kept."""
    rows = read_cases_csv(source / "cases.csv")
    if rows and column not in rows[0]:
        raise ValueError(f"{source / 'cases.csv'}: no column {column!r} (has {list(rows[0])})")
    kept = [row for row in rows if row[column] in values]
    if not kept:
        raise ValueError(f"{source / 'cases.csv'}: no case has {column} in {sorted(values)}")
    if target.exists():
        raise FileExistsError(f"{target} exists; choose a new folder")
    target.mkdir(parents=True)
    for folder in ("images", "masks"):
        if (source / folder).is_dir():
            relative = os.path.relpath((source / folder).resolve(), target.resolve())
            (target / folder).symlink_to(relative, target_is_directory=True)
    write_cases_csv(target / "cases.csv", kept)
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--column", required=True)
    parser.add_argument("--values", nargs="+", required=True)
    args = parser.parse_args()
    try:
        kept = write_subset(args.source, args.target, args.column, set(args.values))
    except (ValueError, FileExistsError) as error:  # DatasetFormatError is a ValueError
        sys.exit(str(error))
    print(f"{args.target}: {kept} cases of {args.source} with {args.column} in {args.values}")


if __name__ == "__main__":
    main()
