#!/usr/bin/env python3
"""A dataset folder holding a subset of another's cases, chosen by a cases.csv column.

    python scripts/subset_dataset.py DATA/both/painted-train-split \
        DATA/both/painted-light-train --column fitzpatrick --values 1 2
    python scripts/subset_dataset.py DATA/skin-photos DATA/skin-scenes \
        --column case_id --values ecu pratheepan --prefix \
        --split-file runs/split.json --split-out runs/split-scenes.json

The subset's cases.csv keeps the source's rows whose column holds one of the values; its
images/ and masks/ are links to the source's folders (nothing is copied, the source is not
modified). A second folder like this gives those cases a sampling weight of their own in
training (stage 6 draws the Fitzpatrick type I-II painted photos a fifth of the time).
With ``--prefix`` a case is kept when its column starts with one of the values. With
``--split-file`` a copy of that split is written to ``--split-out`` with an entry for the
subset that keeps each case in the source's part, so a validation photo of the source stays
out of training through the subset too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vitiseg.data.dataset_format import read_cases_csv, write_cases_csv
from vitiseg.data.splits import load_split, save_split


def write_subset(
    source: Path, target: Path, column: str, values: set[str], prefix: bool = False
) -> list[str]:
    """Write the subset folder; returns the case ids kept."""
    rows = read_cases_csv(source / "cases.csv")
    if rows and column not in rows[0]:
        raise ValueError(f"{source / 'cases.csv'}: no column {column!r} (has {list(rows[0])})")
    if prefix:
        kept = [row for row in rows if row[column].startswith(tuple(values))]
    else:
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
    return [row["case_id"] for row in kept]


def split_with_subset(
    split: dict[str, dict[str, list[str]]], source: str, subset: str, kept: list[str]
) -> dict[str, dict[str, list[str]]]:
    """A copy of ``split`` with an entry ``subset`` holding the kept cases in the parts the
    ``source`` entry gives them."""
    if source not in split:
        raise ValueError(f"the split has no entry {source!r} (has {sorted(split)})")
    chosen = set(kept)
    missing = chosen - {case for ids in split[source].values() for case in ids}
    if missing:
        raise ValueError(f"the split's {source!r} entry lacks cases {sorted(missing)[:5]}")
    entry = {part: [case for case in ids if case in chosen] for part, ids in split[source].items()}
    return {**split, subset: entry}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--column", required=True)
    parser.add_argument("--values", nargs="+", required=True)
    parser.add_argument("--prefix", action="store_true", help="keep values' prefixes too")
    parser.add_argument("--split-file", type=Path, help="a split.json naming the source")
    parser.add_argument("--split-out", type=Path, help="where the split with the subset goes")
    args = parser.parse_args()
    if bool(args.split_file) != bool(args.split_out):
        parser.error("--split-file and --split-out go together")
    try:
        split = load_split(args.split_file) if args.split_file else None
        kept = write_subset(args.source, args.target, args.column, set(args.values), args.prefix)
        if split is not None:
            split = split_with_subset(split, args.source.name, args.target.name, kept)
            save_split(args.split_out, split)
    except (ValueError, FileExistsError) as error:  # DatasetFormatError is a ValueError
        sys.exit(str(error))
    print(f"{args.target}: {len(kept)} cases of {args.source} with {args.column} in {args.values}")
    if split is not None:
        sizes = {part: len(ids) for part, ids in split[args.target.name].items()}
        print(f"{args.split_out}: {args.target.name} {sizes}")


if __name__ == "__main__":
    main()
