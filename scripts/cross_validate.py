#!/usr/bin/env python3
"""Cross-validation by patient: fold split files, then a summary of the fold runs.

A single validation split of a few patients both picks the best epoch and reports it, and
its patients may be easier or harder than the rest. k folds put every patient in validation
once; the summary reports each fold's LAST epoch (not chosen on its validation data) and
the mean over all validation cases.

    python scripts/cross_validate.py folds --dataset DATA/vitiligo-web --k 4 \
        --base-split RUN/split.json --out FOLDS       # FOLDS/fold-0.json ...
    vitiseg-train ... data.split_file=FOLDS/fold-0.json output=RUNS/fold-0   # per fold
    python scripts/cross_validate.py summary RUNS/fold-0 RUNS/fold-1 ... [--dataset vitiligo-web]
    python scripts/cross_validate.py evaluate RUNS/fold-0 ... --dataset DATA/vitiligo-web \
        [--out CV.json]   # every fold's last-epoch model on its own val photos, pooled

``evaluate`` pools the per-photo scores of all folds and gives the mean lesion Dice over all
patients with a 95 % patient-bootstrap interval.

``--base-split`` keeps the other datasets' splits (for example skin-photos) as they were in
an earlier run, so only the named dataset's patients rotate.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split, patient_folds, save_split
from vitiseg.evaluation.evaluate import evaluate_cases, markdown_table, summarise
from vitiseg.inference.predictor import Predictor, TorchBackend
from vitiseg.io.atomic import write_json_atomic
from vitiseg.models.metadata import load_metadata
from vitiseg.models.unet import build_model
from vitiseg.training.trainer import checkpoint_weights


def write_folds(dataset: Path, k: int, seed: int, base_split: Path | None, out: Path) -> None:
    cases = [c for c in load_dataset(dataset) if c.mask_path("lesion")]
    base = load_split(base_split) if base_split else {}
    out.mkdir(parents=True, exist_ok=True)
    for index, fold in enumerate(patient_folds(cases, k, seed)):
        patients = {c.patient_id for c in cases if c.case_id in set(fold["val"])}
        save_split(out / f"fold-{index}.json", {**base, dataset.name: fold})
        print(f"fold-{index}: {len(fold['val'])} val cases of {len(patients)} patients")


def last_validation(run: Path, dataset: str) -> tuple[float, float, int]:
    """(last-epoch val lesion Dice, best val lesion Dice, val cases of ``dataset``)."""
    with open(run / "metrics.csv", newline="") as stream:
        values = [float(row["select_metric"]) for row in csv.DictReader(stream)]
    finite = [v for v in values if not math.isnan(v)]
    return finite[-1], max(finite), len(load_split(run / "split.json")[dataset]["val"])


def summary(runs: list[Path], dataset: str) -> None:
    rows = [(run.name, *last_validation(run, dataset)) for run in runs]
    total = sum(n for *_, n in rows)
    print("| fold | val cases | last epoch | best epoch |\n|---|---|---|---|")
    for name, last, best, n in rows:
        print(f"| {name} | {n} | {last:.3f} | {best:.3f} |")
    # Case-weighted, so the figure is the mean Dice over every validated case.
    last_mean = sum(last * n for _, last, _, n in rows) / total
    best_mean = sum(best * n for _, _, best, n in rows) / total
    label = f"all ({len(rows)} folds, case-weighted)"
    print(f"| {label} | {total} | {last_mean:.3f} | {best_mean:.3f} |")


def last_epoch_predictor(run: Path) -> Predictor:
    """The run's last-epoch network (not its best-on-validation export) as a Predictor."""
    metadata = load_metadata(run / "model")
    model = build_model(metadata.arch, **metadata.model_kwargs)
    model.load_state_dict(checkpoint_weights(run / "checkpoints" / "last.pt"))
    return Predictor(TorchBackend(model.eval()), metadata)


def evaluate(runs: list[Path], dataset: Path, out: Path | None) -> None:
    cases = {c.case_id: c for c in load_dataset(dataset)}
    results = []
    for run in runs:
        val_ids = load_split(run / "split.json")[dataset.name]["val"]
        results += evaluate_cases(last_epoch_predictor(run), [cases[i] for i in val_ids])
    pooled = summarise(results)
    print(markdown_table(pooled), end="")
    if out:
        write_json_atomic(out, {"runs": [str(r) for r in runs], **pooled})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    folds = commands.add_parser("folds")
    folds.add_argument("--dataset", type=Path, required=True)
    folds.add_argument("--k", type=int, default=4)
    folds.add_argument("--seed", type=int, default=0)
    folds.add_argument("--base-split", type=Path)
    folds.add_argument("--out", type=Path, required=True)
    runs = commands.add_parser("summary")
    runs.add_argument("runs", type=Path, nargs="+")
    runs.add_argument("--dataset", default="vitiligo-web", help="the lesion dataset's folder name")
    pooled = commands.add_parser("evaluate")
    pooled.add_argument("runs", type=Path, nargs="+")
    pooled.add_argument("--dataset", type=Path, required=True)
    pooled.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "folds":
        write_folds(args.dataset, args.k, args.seed, args.base_split, args.out)
    elif args.command == "summary":
        summary(args.runs, args.dataset)
    else:
        evaluate(args.runs, args.dataset, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
