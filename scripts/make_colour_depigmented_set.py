#!/usr/bin/env python3
"""Real photos with colour-rule depigmented masks: weak truth for the depigmented output.

The real vitiligo photos have outlines only, so a depigmented output learns depigmentation
from painted photos, and on real patches it calls little (docs/model_history.md, sessions 17-18).
This writes a copy of an outlined set whose ``masks/depigmented`` are the pixels of each
outline lighter than the skin around it (vitiseg.inference.depigmentation, the skin taken
from a model), so training can see what real depigmented skin looks like:

    python scripts/make_colour_depigmented_set.py --dataset DATA/vitiligo-web \
        --out DATA/colour/vitiligo-web [--model MODEL]

Keep the folder name, so a run's split file still names its cases. Photos are copied
byte for byte; a photo whose outline covers all its skin gets no depigmented mask (its
depigmented output is then not trained on it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from vitiseg.data.dataset_format import load_dataset
from vitiseg.inference.depigmentation import depigmented_by_colour
from vitiseg.inference.predictor import Predictor
from vitiseg.io.atomic import write_png_atomic
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.paths import default_model_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--min-lift", type=float, default=6.0)
    args = parser.parse_args()
    if args.out.resolve() == args.dataset.resolve():
        print(
            "error: --out must differ from --dataset (inputs are never modified)", file=sys.stderr
        )
        return 2
    cases = [c for c in load_dataset(args.dataset) if c.lesion_mask_path]
    if not cases:
        print(f"error: {args.dataset} has no outlined cases", file=sys.stderr)
        return 2
    predictor = Predictor.from_folder(args.model or default_model_dir())
    written = 0
    for case in cases:
        rgb = read_rgb(case.image_path)
        outline = read_mask(case.lesion_mask_path) > 0
        skin, _ = predictor.masks(predictor.predict(rgb), rgb)
        depigmented = depigmented_by_colour(rgb, skin | outline, outline, min_lift=args.min_lift)
        image_out = args.out / "images" / case.image_path.name
        image_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(case.image_path, image_out)
        write_png_atomic(args.out / "masks" / "lesion" / f"{case.case_id}.png", outline)
        if depigmented is not None:
            write_png_atomic(
                args.out / "masks" / "depigmented" / f"{case.case_id}.png", depigmented
            )
            written += 1
    shutil.copyfile(args.dataset / "cases.csv", args.out / "cases.csv")
    print(
        f"{len(cases)} outlined cases, {written} with a colour-rule depigmented mask in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
