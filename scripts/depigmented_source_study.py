#!/usr/bin/env python3
"""The same photos evaluated with each depigmented source, the network run once per photo.

    python scripts/depigmented_source_study.py DATA/SET --out STUDY \
        [--sources model colour] [--model MODEL] [--split-file RUN/split.json
        --split val] [--threads 2]

Writes STUDY/<source>/summary.json as ``vitiseg-eval`` would with ``infer.depigmented_source``
set to each source (default inference otherwise), so ``scripts/paired_difference.py`` pairs
them; prints each source's affected-fraction MAE and bias, depigmented Dice and VASI MAE.
The sources only change what happens after the network, so its probabilities are kept per
photo and reused: one source costs the network time of one ``vitiseg-eval`` run.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from omegaconf import OmegaConf

from vitiseg.cli._quality import quality_for_model
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.evaluation.dataset_run import evaluate_dataset
from vitiseg.inference.factory import predictor_from_config
from vitiseg.io.atomic import write_json_atomic
from vitiseg.vasi import load_vasi_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def remember_predictions(predictor) -> None:
    """Make ``predictor.predict`` compute each distinct photo once."""
    cache = {}
    predict = predictor.predict

    def predict_once(rgb):
        key = hashlib.blake2b(rgb.tobytes(), digest_size=16).digest() + repr(rgb.shape).encode()
        if key not in cache:
            cache[key] = predict(rgb)
        return cache[key]

    predictor.predict = predict_once


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sources", nargs="+", default=["model", "colour"])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--split-file", type=Path, default=None)
    parser.add_argument("--split", default="val")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    dataset = args.dataset.expanduser().resolve()
    cases = load_dataset(dataset)
    if args.split_file:
        chosen = set(load_split(args.split_file).get(dataset.name, {}).get(args.split, []))
        cases = [case for case in cases if case.case_id in chosen]
    if not cases:
        print(f"{dataset}: no cases to evaluate")
        return 1
    infer = OmegaConf.load(CONFIGS / "infer/default.yaml")
    infer.threads = args.threads
    predictor, model_dir = predictor_from_config(args.model, infer)
    remember_predictions(predictor)
    quality = quality_for_model(
        OmegaConf.load(CONFIGS / "quality/default.yaml"), predictor.metadata
    )
    vasi_config = load_vasi_config(OmegaConf.load(CONFIGS / "vasi/default.yaml"))
    for source in args.sources:
        predictor.depigmented_source = source
        infer.depigmented_source = source
        summary = evaluate_dataset(predictor, dataset, cases, vasi_config, quality).summary
        summary["model"] = {"folder": str(model_dir), "model_id": predictor.metadata.model_id}
        summary["dataset"] = {
            "path": str(dataset),
            "split": args.split if args.split_file else "all",
        }
        summary["inference"] = OmegaConf.to_container(infer, resolve=True)
        write_json_atomic(args.out / source / "summary.json", summary)
        mean = summary["mean"]
        affected = mean.get("affected_fraction", {})
        vasi = summary.get("vasi_vs_truth", {}).get("model_vs_generator", {})
        print(
            f"{source:13s} n={mean['n_cases']} affected-fraction MAE "
            f"{100 * affected.get('mae', float('nan')):.2f} pp "
            f"(bias {100 * affected.get('bias', float('nan')):+.2f}), depigmented Dice "
            f"{mean.get('depigmented', {}).get('dice', float('nan')):.3f}, VASI MAE "
            f"{vasi.get('mae', float('nan')):.3f} (ICC {vasi.get('icc_2_1', float('nan')):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
