#!/usr/bin/env python3
"""Copy a training run's best model into models/default with its evidence.

    python scripts/ship_default_model.py RUN_DIR --eval NAME=EVAL_DIR [--eval ...] \
        [--pretrain PRETRAIN_RUN_DIR] [--provenance-from configs/experiment/default_model.yaml] \
        [--last-epoch] [--recipe-cv POOLED.json]

The weights are copied unchanged (the model id stays the hash of the weights); the
metadata gains the provenance text, the run's training time and the evaluation summaries
(means and strata, not per-case rows) measured by vitiseg-eval. ``--last-epoch`` ships the
run's last epoch (``checkpoints/last.pt``) instead of its best-on-validation export, with
that epoch's validation figures: cross-validation measures last epochs, and an epoch picked
on a few validation patients flatters them. ``--recipe-cv`` adds, as the evaluation
``recipe_cv``, what the same recipe scored when trained again on cross-validation folds, on
each fold's own validation patients (``scripts/cross_validate.py pool ... --out``): other
weights, but the figure nearest to what a new clinic's patients will see.

RUN_DIR may also be a model folder (a shipped model): its weights and training record are
kept, and only the thresholds, lesion clean-up, provenance and evaluations are rewritten, so
a threshold chosen after shipping ships without retraining. The folder's evaluations (its
``vitiseg-eval`` summaries, the recipe's cross-validation and its studies of its own outputs)
are kept while its thresholds and lesion clean-up stay as they were, since they measured
these very weights and settings; ``--eval NAME=...`` and ``--recipe-cv`` replace one by name.
They are dropped, with a note, when a threshold or the clean-up changes.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import yaml

from vitiseg.inference.postprocess import LesionPostprocess
from vitiseg.io.atomic import write_json_atomic
from vitiseg.models.metadata import load_metadata
from vitiseg.models.model_folder import save_model_folder
from vitiseg.models.unet import build_model
from vitiseg.report.accuracy import RECIPE_CV_KEY
from vitiseg.training.trainer import checkpoint_weights

ROOT = Path(__file__).resolve().parents[1]


def without_machine_paths(value):
    """Absolute paths of the training machine shortened to their last two parts."""
    if isinstance(value, dict):
        return {key: without_machine_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_machine_paths(item) for item in value]
    if isinstance(value, str) and value.startswith("/"):
        return "/".join(Path(value).parts[-2:])
    return value


def pretraining_stage(source: Path) -> dict:
    """What RUN started from: a training run folder (metrics.csv + model/), or a shipped
    model folder, whose own stages and minutes are carried over."""
    if is_training_run(source):
        history = read_history(source)
        stage_metadata = json.loads((source / "model" / "metadata.json").read_text())
        return {
            "datasets": stage_metadata["training"]["datasets"],
            "minutes": float(history[-1]["minutes"]),
            "epochs": int(history[-1]["epoch"]),
            "model_id": stage_metadata.get("model_id"),
        }
    shipped = json.loads((source / "metadata.json").read_text())
    training = shipped["training"]
    return {
        "datasets": training["datasets"],
        "minutes": float(training["run_minutes_total"]),
        "epochs": int(training["epochs_total"])
        + int(training.get("pretraining", {}).get("epochs", 0)),
        "model_id": shipped.get("model_id"),
        "config": training.get("config"),
        "pretraining": training.get("pretraining"),
    }


def is_training_run(folder: Path) -> bool:
    """A training run folder (metrics.csv + model/) rather than a model folder."""
    return (folder / "metrics.csv").is_file()


def read_history(run: Path) -> list[dict[str, str]]:
    """A training run's metrics.csv rows, one per epoch."""
    with open(run / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def validation_from_metrics_row(row: dict[str, str]) -> dict:
    """``val/<dataset>/<output>/<metric>`` columns of metrics.csv as the nested validation
    record of a model folder."""
    validation: dict = {}
    for column, value in row.items():
        parts = column.split("/")
        if len(parts) == 4 and parts[0] == "val" and value != "":
            _, dataset, output, metric = parts
            validation.setdefault(dataset, {}).setdefault(output, {})[metric] = float(value)
    return validation


def export_last_epoch(run: Path, last_row: dict[str, str], folder: Path) -> None:
    """Write RUN's last-epoch weights as a model folder, its metadata saying which epoch."""
    metadata = load_metadata(run / "model")
    model = build_model(metadata.arch, **metadata.model_kwargs)
    model.load_state_dict(checkpoint_weights(run / "checkpoints" / "last.pt"))
    training = {
        **metadata.training,
        "epoch": int(last_row["epoch"]),
        "step": int(last_row["step"]),
        "minutes": float(last_row["minutes"]),
        "exported": "last epoch",
    }
    validation = validation_from_metrics_row(last_row)
    save_model_folder(
        folder, model, dataclasses.replace(metadata, training=training, validation=validation)
    )


def kept_evaluations(before: dict, after: dict) -> dict:
    """The folder's evaluations, while thresholds and clean-up are unchanged: the weights
    are the same, so what was measured on them still holds."""
    evaluations = dict(before.get("evaluation", {}))
    unchanged = all(
        before.get(key) == after.get(key) for key in ("thresholds", "lesion_postprocess")
    )
    if evaluations and not unchanged:
        print(
            f"dropped {sorted(evaluations)}: measured with the old thresholds; measure them again"
        )
        return {}
    return evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--eval", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument(
        "--provenance-from",
        type=Path,
        default=ROOT / "configs" / "experiment" / "default_model.yaml",
    )
    parser.add_argument(
        "--pretrain",
        type=Path,
        default=None,
        help="the run or shipped model folder RUN started from (its time is added)",
    )
    parser.add_argument(
        "--lesion-postprocess",
        default="",
        help="JSON of the lesion clean-up chosen by scripts/postprocess_study.py",
    )
    parser.add_argument("--lesion-threshold", type=float, default=None)
    parser.add_argument(
        "--skin-threshold",
        type=float,
        default=None,
        help="chosen by scripts/skin_threshold_study.py",
    )
    parser.add_argument(
        "--depigmented-threshold",
        type=float,
        default=None,
        help="chosen by scripts/depigmented_threshold_study.py",
    )
    parser.add_argument(
        "--depigmented-seed",
        type=float,
        default=None,
        help="hysteresis seed chosen by scripts/depigmented_threshold_study.py --seeds",
    )
    parser.add_argument(
        "--recipe-cv",
        type=Path,
        default=None,
        help="the recipe's cross-validation folds pooled (scripts/cross_validate.py pool --out)",
    )
    parser.add_argument("--target", type=Path, default=ROOT / "models" / "default")
    parser.add_argument(
        "--last-epoch",
        action="store_true",
        help="ship checkpoints/last.pt rather than the best-on-validation model/",
    )
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory()
    is_model_folder = not is_training_run(args.run)
    if is_model_folder and (args.last_epoch or args.pretrain is not None):
        parser.error(f"{args.run}: a model folder has no epochs or pretraining to choose")
    source = args.run if is_model_folder else args.run / "model"
    history = [] if is_model_folder else read_history(args.run)
    if args.last_epoch:
        source = Path(scratch.name) / "model"
        export_last_epoch(args.run, history[-1], source)
    source_text = (source / "metadata.json").read_text()
    metadata = json.loads(source_text)
    metadata["provenance"] = yaml.safe_load(args.provenance_from.read_text())["provenance"]
    if history:
        metadata["training"]["run_minutes_total"] = float(history[-1]["minutes"])
        metadata["training"]["epochs_total"] = int(history[-1]["epoch"])
    if args.pretrain is not None:
        stage = pretraining_stage(args.pretrain)
        metadata["training"]["pretraining"] = stage
        metadata["training"]["run_minutes_total"] += stage["minutes"]
    if args.lesion_postprocess:
        setting = LesionPostprocess.from_dict(json.loads(args.lesion_postprocess))
        metadata["lesion_postprocess"] = setting.to_dict()
    if args.lesion_threshold is not None:
        metadata["thresholds"]["lesion"] = args.lesion_threshold
    if args.skin_threshold is not None:
        metadata["thresholds"]["skin"] = args.skin_threshold
    depigmented_thresholds = {
        key: value
        for key, value in (
            ("depigmented", args.depigmented_threshold),
            ("depigmented_seed", args.depigmented_seed),
        )
        if value is not None
    }
    if depigmented_thresholds and "depigmented" not in metadata["output_names"]:
        parser.error(f"{source}: the model has no depigmented output to threshold")
    metadata["thresholds"].update(depigmented_thresholds)
    evaluations = {}
    if is_model_folder:
        evaluations = kept_evaluations(json.loads(source_text), metadata)
    for item in args.eval:
        name, folder = item.split("=", 1)
        summary = json.loads((Path(folder) / "summary.json").read_text())
        evaluations[name] = {k: v for k, v in summary.items() if k != "cases"}
    if args.recipe_cv is not None:
        # Placed after real_val, so reports read the two real-photo figures together.
        evaluations.pop(RECIPE_CV_KEY, None)
        names = list(evaluations)
        at = names.index("real_val") + 1 if "real_val" in names else len(names)
        pooled = (RECIPE_CV_KEY, json.loads(args.recipe_cv.read_text()))
        items = list(evaluations.items())
        evaluations = dict(items[:at] + [pooled] + items[at:])
    metadata["evaluation"] = evaluations
    args.target.mkdir(parents=True, exist_ok=True)
    weights = args.target / "weights.safetensors"
    if not (weights.exists() and weights.samefile(source / "weights.safetensors")):
        shutil.copyfile(source / "weights.safetensors", weights)
    write_json_atomic(args.target / "metadata.json", without_machine_paths(metadata))
    scratch.cleanup()
    size_mb = weights.stat().st_size / 1e6
    print(f"shipped {metadata['model_id']} to {args.target} ({size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
