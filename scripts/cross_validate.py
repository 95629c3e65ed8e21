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
        [--out CV.json] [--lesion-postprocess JSON]
        # every fold's last-epoch model on its own val photos, pooled; --lesion-postprocess
        # scores them with another lesion clean-up (inference.postprocess.LesionPostprocess)

``evaluate`` pools the per-photo scores of all folds and gives the mean lesion Dice over all
patients with a 95 % patient-bootstrap interval, and, on photos the set holds more than once,
the annotators' Dice beside the model's (``annotator_agreement``).

``pool`` joins ``vitiseg-eval`` summaries of several folds (each fold's model on its own
validation photos, with any inference), for recipes whose folds end in a model folder:

    python scripts/cross_validate.py pool EVAL_F0/summary.json EVAL_F1/summary.json ... [--out F]

F is shaped as an evaluation summary's means; `ship_default_model.py --recipe-cv F` puts it in
the model folder, and the scoring report then states what the recipe scored on patients it
never saw beside the shipped model's own figures. ``--earlier POOL_OR_MODEL_FOLDER`` joins
new folds to an earlier pool (a model folder's ``recipe_cv``), since the pool keeps each
case's lesion Dice: a fold run in a later session needs no rerun of the others.

``--base-split`` keeps the other datasets' splits (for example skin-photos) as they were in
an earlier run, so only the named dataset's patients rotate.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
from pathlib import Path

from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split, patient_folds, save_split
from vitiseg.evaluation.annotator_agreement import (
    agreement_over_photos,
    annotator_agreement,
)
from vitiseg.evaluation.evaluate import evaluate_cases, markdown_table, summarise
from vitiseg.inference.postprocess import LesionPostprocess
from vitiseg.inference.predictor import Predictor, TorchBackend
from vitiseg.io.atomic import write_json_atomic
from vitiseg.metrics.confidence import patient_bootstrap_ci
from vitiseg.models.metadata import load_metadata
from vitiseg.models.unet import build_model
from vitiseg.training.trainer import checkpoint_weights


def write_folds(dataset: Path, k: int, seed: int, base_split: Path | None, out: Path) -> None:
    cases = [c for c in load_dataset(dataset) if c.mask_path("lesion")]
    base = load_split(base_split) if base_split else {}
    out.mkdir(parents=True, exist_ok=True)
    for index, fold in enumerate(patient_folds(cases, k, seed)):
        validated = set(fold["val"])
        patients = {c.patient_id for c in cases if c.case_id in validated}
        save_split(out / f"fold-{index}.json", {**base, dataset.name: fold})
        print(f"fold-{index}: {len(fold['val'])} val cases of {len(patients)} patients")


def validation_curve(run: Path) -> list[float]:
    """Val lesion Dice per epoch (NaN where a run did not validate: an empty cell with
    trainer.validate_every > 1)."""
    with open(run / "metrics.csv", newline="") as stream:
        rows = csv.DictReader(stream)
        return [float(row["select_metric"]) if row["select_metric"] else math.nan for row in rows]


def epochs_chosen_on_other_folds(curves: list[list[float]]) -> list[int]:
    """Per fold, the epoch index where the OTHER folds' mean validation curve peaks.

    Early stopping chosen this way never looks at the fold it is scored on (nested
    selection); curves are cut to the shortest run.
    """
    length = min(len(curve) for curve in curves)
    chosen = []
    for index in range(len(curves)):
        others = [curve[:length] for j, curve in enumerate(curves) if j != index]
        mean = [math.fsum(values) / len(values) for values in zip(*others, strict=True)]
        scores = [-math.inf if math.isnan(value) else value for value in mean]
        chosen.append(max(range(length), key=scores.__getitem__))
    return chosen


def summary(runs: list[Path], dataset: str) -> None:
    curves = [validation_curve(run) for run in runs]
    chosen = epochs_chosen_on_other_folds(curves)
    rows = []
    for run, curve, epoch in zip(runs, curves, chosen, strict=True):
        finite = [v for v in curve if not math.isnan(v)]
        n_val = len(load_split(run / "split.json")[dataset]["val"])
        rows.append((run.name, n_val, finite[-1], curve[epoch], epoch + 1, max(finite)))
    print(
        "| fold | val cases | last epoch | epoch chosen on the other folds | "
        "best epoch (chosen on itself) |\n|---|---|---|---|---|"
    )
    for name, n, last, nested, epoch, best in rows:
        print(f"| {name} | {n} | {last:.3f} | {nested:.3f} (epoch {epoch}) | {best:.3f} |")
    # Case-weighted, so each figure is the mean Dice over every validated case.
    total = sum(row[1] for row in rows)

    def pooled(column: int) -> float:
        return sum(row[1] * row[column] for row in rows) / total

    label = f"all ({len(rows)} folds, case-weighted)"
    print(f"| {label} | {total} | {pooled(2):.3f} | {pooled(3):.3f} | {pooled(5):.3f} |")


def last_epoch_predictor(run: Path, lesion_postprocess: dict | None = None) -> Predictor:
    """The run's last-epoch network (not its best-on-validation export) as a Predictor,
    with the run's lesion clean-up or ``lesion_postprocess`` in its place."""
    metadata = load_metadata(run / "model")
    if lesion_postprocess is not None:
        setting = LesionPostprocess.from_dict(lesion_postprocess)  # refuses bad values
        metadata = dataclasses.replace(metadata, lesion_postprocess=setting.to_dict())
    model = build_model(metadata.arch, **metadata.model_kwargs)
    model.load_state_dict(checkpoint_weights(run / "checkpoints" / "last.pt"))
    return Predictor(TorchBackend(model.eval()), metadata)


def evaluate(
    runs: list[Path], dataset: Path, out: Path | None, lesion_postprocess: dict | None = None
) -> None:
    cases = {c.case_id: c for c in load_dataset(dataset)}
    results, validated = [], []
    for run in runs:
        val_ids = load_split(run / "split.json")[dataset.name]["val"]
        predictor = last_epoch_predictor(run, lesion_postprocess)
        fold_cases = [cases[i] for i in val_ids]
        validated += fold_cases
        results += evaluate_cases(predictor, fold_cases)
    pooled = summarise(results)
    # Every photo scored by a model that never saw it, so the comparison is fair on all of
    # the set's repeated photos (a patient's copies share a fold).
    if agreement := annotator_agreement(validated, results):
        pooled["annotator_agreement"] = agreement
    print(markdown_table(pooled), end="")
    if out:
        record = {"runs": [str(r) for r in runs], "lesion_postprocess": lesion_postprocess}
        write_json_atomic(out, {**record, **pooled})


def pool_summaries(summaries: dict[str, dict], earlier: dict | None = None) -> dict:
    """Lesion Dice over the cases of several folds' summaries (patient-bootstrap interval),
    and their photos annotated more than once joined, shaped as a ``vitiseg-eval`` summary's
    means so a model folder can carry it as an evaluation (``ship_default_model.py
    --recipe-cv``). A case in two summaries is refused: folds validate disjoint patients.

    ``earlier`` is an earlier pool (for example a model folder's ``recipe_cv``) that new folds
    join, so a fold run later need not rerun the others. The pool keeps each case's lesion
    figures (``cases``) to be pooled again; a pool made before it did (session 77 and
    earlier) joins by its means, exactly for the mean, but without the case-level values a
    patient-bootstrap interval needs, so the joined pool has none."""
    earlier = earlier or {}
    known = earlier.get("cases")
    if earlier and known is None:
        return _joined_by_means(pool_summaries(summaries), earlier)
    named = [("the earlier pool", case) for case in known or []]
    named += [(name, case) for name, summary in summaries.items() for case in summary["cases"]]
    seen: dict[str, str] = {}
    lesions, patients = [], []
    for name, case in named:
        if case["case_id"] in seen:
            raise ValueError(
                f"{name}: case {case['case_id']!r} is also in {seen[case['case_id']]}; "
                "folds must validate different patients"
            )
        seen[case["case_id"]] = name
        lesions.append(case.get("lesion") or {})
        patients.append(case["patient_id"])
    mean = {"n_cases": len(lesions), "n_patients": len(set(patients)), "ci95_by_patient": {}}
    # As vitiseg-eval: all annotated photos, and those whose truth holds a lesion.
    for key, keep in (("lesion", lambda _: True), ("lesion_nonempty", _has_lesion)):
        dice = [lesion.get("dice") if keep(lesion) else None for lesion in lesions]
        kept = [value for value in dice if value is not None]
        mean[key] = {"dice": math.fsum(kept) / len(kept) if kept else None, "dice_n": len(kept)}
        interval = patient_bootstrap_ci(dice, patients)
        mean["ci95_by_patient"][f"{key}_dice"] = list(interval) if interval else None
    folds = list(earlier.get("folds", [])) + [
        {
            "summary": name,
            "model_id": (summary.get("model") or {}).get("model_id"),
            "n_cases": len(summary["cases"]),
            "lesion_nonempty_dice": ((summary.get("mean") or {}).get("lesion_nonempty") or {}).get(
                "dice"
            ),
        }
        for name, summary in summaries.items()
    ]
    cases = [
        {
            "case_id": case["case_id"],
            "patient_id": case["patient_id"],
            "lesion": {k: v for k, v in (case.get("lesion") or {}).items() if k in CASE_KEYS},
        }
        for _, case in named
    ]
    pooled = {"folds": folds, "mean": mean, "cases": cases}
    photos = _repeated_photos(earlier) + [
        photo for summary in summaries.values() for photo in _repeated_photos(summary)
    ]
    if photos:
        pooled["annotator_agreement"] = {"lesion": agreement_over_photos(photos)}
    return pooled


# What a pooled case keeps: enough to pool it again (Dice, and whether its truth is empty).
CASE_KEYS = ("dice", "truth_px")


def _repeated_photos(summary: dict) -> list[dict]:
    return ((summary.get("annotator_agreement") or {}).get("lesion") or {}).get("per_photo", [])


def _joined_by_means(new: dict, earlier: dict) -> dict:
    """NEW (a pool of new folds) joined to an EARLIER pool that kept no cases: each mean
    weighted by its case count, which is exact; no interval, and no cases to pool again."""
    old_mean, new_mean = earlier["mean"], new["mean"]
    mean: dict = {key: old_mean[key] + new_mean[key] for key in ("n_cases", "n_patients")}
    # Folds validate disjoint patients, so the counts add; the intervals cannot be joined.
    mean["ci95_by_patient"] = {"lesion_dice": None, "lesion_nonempty_dice": None}
    for key in ("lesion", "lesion_nonempty"):
        parts = [(m[key]["dice"], m[key]["dice_n"]) for m in (old_mean, new_mean)]
        count = sum(n for _, n in parts)
        total = math.fsum(d * n for d, n in parts if n)
        mean[key] = {"dice": total / count if count else None, "dice_n": count}
    pooled = {"folds": earlier["folds"] + new["folds"], "mean": mean}
    photos = _repeated_photos(earlier) + _repeated_photos(new)
    if photos:
        pooled["annotator_agreement"] = {"lesion": agreement_over_photos(photos)}
    return pooled


def _has_lesion(lesion: dict) -> bool:
    return lesion.get("truth_px", 0) > 0


def read_earlier_pool(path: Path) -> dict:
    """A pooled JSON (``pool --out``), or a model folder's ``recipe_cv`` evaluation."""
    if path.is_dir():
        evaluation = json.loads((path / "metadata.json").read_text()).get("evaluation") or {}
        if "recipe_cv" not in evaluation:
            raise SystemExit(f"{path}: the model folder has no recipe_cv evaluation to join")
        return evaluation["recipe_cv"]
    return json.loads(path.read_text())


def pool(paths: list[Path], out: Path | None, earlier: Path | None = None) -> None:
    pooled = pool_summaries(
        {str(path): json.loads(path.read_text()) for path in paths},
        read_earlier_pool(earlier) if earlier else None,
    )
    mean = pooled["mean"]
    interval = mean["ci95_by_patient"]["lesion_nonempty_dice"]
    print(
        f"{mean['n_cases']} cases of {mean['n_patients']} patients, "
        f"{mean['lesion_nonempty']['dice_n']} with a lesion: lesion Dice "
        f"{mean['lesion_nonempty']['dice']:.3f}"
        + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")
    )
    if block := (pooled.get("annotator_agreement") or {}).get("lesion"):
        print(
            f"{block['photos']} photo(s) annotated more than once: annotators "
            f"{block['annotator_dice']:.3f}, model {block['model_dice']:.3f}"
        )
    if out:
        write_json_atomic(out, pooled)


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
    pooled.add_argument(
        "--lesion-postprocess",
        type=json.loads,
        default=None,
        help="JSON lesion clean-up in place of the runs' own, e.g. '{\"colour_iterations\": 3}'",
    )
    joined = commands.add_parser("pool")
    joined.add_argument("summaries", type=Path, nargs="+", help="vitiseg-eval summary.json files")
    joined.add_argument("--out", type=Path)
    joined.add_argument(
        "--earlier",
        type=Path,
        help="an earlier pool (JSON) or a model folder whose recipe_cv the new folds join",
    )
    args = parser.parse_args()
    if args.command == "pool":
        pool(args.summaries, args.out, args.earlier)
    elif args.command == "folds":
        write_folds(args.dataset, args.k, args.seed, args.base_split, args.out)
    elif args.command == "summary":
        summary(args.runs, args.dataset)
    else:
        evaluate(args.runs, args.dataset, args.out, args.lesion_postprocess)
    return 0


if __name__ == "__main__":
    sys.exit(main())
