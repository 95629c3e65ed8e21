#!/usr/bin/env python3
"""Write the patient-grouped split.json a training run would make, before any training.

    python scripts/make_split.py DATA/vitiligo-web DATA/skin-photos [--seed 0] \
        [--val-fraction 0.2] --out runs/split.json

Stage 1 of the default recipe paints vitiligo on training-split skin photos only
(`vitiseg-synth ... split_file=runs/split.json split_part=train`), so the split must exist
before the first run; the later stages reuse it with `data.split_file=runs/split.json`.
The split is the one `vitiseg-train` draws for the same seed and validation share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import save_split, split_by_patient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path, help="vitiseg dataset folders")
    parser.add_argument("--seed", type=int, default=0, help="trainer.seed of the runs")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="data.val_fraction")
    parser.add_argument("--out", type=Path, required=True, help="split.json to write")
    args = parser.parse_args()
    splits = {}
    for dataset in args.datasets:
        cases = load_dataset(dataset)
        if not cases:
            parser.error(f"{dataset}: dataset has no usable cases")
        splits[dataset.name] = split_by_patient(cases, args.val_fraction, args.seed)
        print(f"{dataset.name}: {len(splits[dataset.name]['val'])} val cases")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_split(args.out, splits)


if __name__ == "__main__":
    main()
