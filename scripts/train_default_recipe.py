#!/usr/bin/env python3
"""Run the default model's seven-stage recipe end to end; run it again to resume.

    python scripts/train_default_recipe.py --data DATA --runs RUNS [--dry-run] \
        [--from STAGE] [--until STAGE] [trainer.threads=2 ...]

DATA holds the imported `vitiligo-web` and `skin-photos` sets (`vitiseg-import`); the painted
photos and the subsets the recipe needs are made there. Each stage trains into RUNS/stageN
from the one before, as README's "Train" commands do (docs/model.md has the figures). Run the
same command again after an interruption: a made folder is kept, `vitiseg-train` resumes a
stage from its last checkpoint and stops at once on a finished one. Overrides after the
options go to every `vitiseg-train` call (`trainer.budget_scale=4` stretches stages 1–3's time
budgets on a CPU four times slower than the one they were set on: docs/model.md). The last
stage's last epoch becomes the model folder RUNS/model, carrying every stage's minutes and
data (`training.pretraining`) and the `uncertain_skin` share chosen for it.
RUNS/recipe_times.csv lists the minutes of each step.
The lesion threshold and clean-up are chosen after it, as for the shipped model
(`scripts/postprocess_study.py`, then `scripts/ship_default_model.py RUNS/model
--lesion-postprocess ...`); until then RUNS/model thresholds every output at 0.5.
"""

from __future__ import annotations

import argparse
import csv
import io
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vitiseg.io.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Step:
    stage: int
    name: str
    command: list[str]
    # Files the step writes last (vitiseg-synth: truth.json); kept if all exist, so a step
    # interrupted half-way runs again.
    makes: tuple[Path, ...] = ()
    start: Path | None = None  # the model folder a training step starts from


def recipe_steps(data: Path, runs: Path, overrides: list[str]) -> list[Step]:
    """The recipe as commands, in order (README "Train" lists the same)."""
    script = ROOT / "scripts"
    painted = data / "painted-train-split"
    both = data / "both" / "painted-train-split"
    light = data / "both" / "painted-light-train"
    scenes = data / "skin-scenes"
    procedural = data / "procedural-train"
    web, skin = data / "vitiligo-web", data / "skin-photos"
    split, split_scenes = runs / "split.json", runs / "split-scenes.json"

    def train(stage: int, experiment: str, datasets: list[Path], start: Path | None, *extra):
        command = [
            str(BIN / "vitiseg-train"),
            f"experiment={experiment}",
            "dataset=[" + ",".join(str(d) for d in datasets) + "]",
            f"output={runs / f'stage{stage}'}",
            *extra,
            *overrides,
        ]
        if start is not None:  # stage 1 starts from random weights, on painted photos only
            command[3:3] = [
                f"data.split_file={split_scenes if stage == 7 else split}",
                f"model.init_weights={start}",
            ]
        return Step(stage, f"train stage {stage}", command, start=start)

    def ship(stage: int, target: Path, pretrain: Path | None, last: bool, *extra: str) -> Step:
        # Stages 1-3 hand on their best epoch, 4-7 their last; --pretrain carries the earlier
        # stages' record into the folder.
        command = [PYTHON, str(script / "ship_default_model.py"), str(runs / f"stage{stage}")]
        command += ["--last-epoch"] if last else []
        command += ["--pretrain", str(pretrain)] if pretrain else []
        name = f"stage {stage} {'last epoch' if last else 'model'}"
        return Step(stage, name, [*command, "--target", str(target), *extra])

    synth = [str(BIN / "vitiseg-synth"), "n=400", "seed=1", "mode=painted"]
    synth += [f"split_file={split}", "split_part=train"]
    return [
        Step(
            0,
            "patient split",
            [PYTHON, str(script / "make_split.py"), str(web), str(skin), "--out", str(split)],
            makes=(split,),
        ),
        Step(1, "painted photos", [*synth, f"out={painted}"], makes=(painted / "truth.json",)),
        train(1, "default_model_pretrain", [painted], None),
        ship(1, runs / "stage1-model", None, False),
        train(2, "default_model", [web, skin], runs / "stage1-model"),
        ship(2, runs / "stage2-model", runs / "stage1-model", False),
        train(3, "default_model_refine", [web, skin, painted], runs / "stage2-model"),
        ship(3, runs / "stage3-model", runs / "stage2-model", False),
        train(4, "default_model_painted", [web, skin, painted], runs / "stage3-model"),
        ship(4, runs / "stage4-last", runs / "stage3-model", True),
        Step(
            5,
            "painted, both labels",
            [*synth, "lesion_label=both", f"out={both}"],
            (both / "truth.json",),
        ),
        train(
            5,
            "default_model_depigmented_lesion_dice_per_image",
            [web, skin, both],
            runs / "stage4-last",
        ),
        ship(5, runs / "stage5-last", runs / "stage4-last", True),
        Step(
            6,
            "light-skin painted photos",
            [PYTHON, str(script / "subset_dataset.py"), str(both), str(light)]
            + ["--column", "fitzpatrick", "--values", "1", "2"],
            makes=(light / "cases.csv",),
        ),
        train(6, "default_model_relit_lesion", [web, skin, both, light], runs / "stage5-last"),
        ship(6, runs / "stage6-last", runs / "stage5-last", True),
        Step(
            7,
            "photos of people in rooms",
            [PYTHON, str(script / "subset_dataset.py"), str(skin), str(scenes)]
            + ["--column", "case_id", "--values", "ecu", "pratheepan", "--prefix"]
            + ["--split-file", str(split), "--split-out", str(split_scenes)],
            makes=(scenes / "cases.csv", split_scenes),
        ),
        Step(
            7,
            "procedural photos",
            [str(BIN / "vitiseg-synth"), "n=400", "seed=1", "lesion_label=both"]
            + [f"out={procedural}"],
            makes=(procedural / "truth.json",),
        ),
        train(
            7,
            "default_model_skin_branch",
            [web, skin, scenes, both, procedural],
            runs / "stage6-last",
            "trainer.seed=2",
        ),
        ship(
            7,
            runs / "model",
            runs / "stage6-last",
            True,
            "--provenance-from",
            str(ROOT / "configs" / "experiment" / "default_model_skin_branch.yaml"),
        ),
        Step(
            7,
            "uncertain_skin share",
            [PYTHON, str(script / "uncertain_skin_study.py"), "--checkpoint", str(runs / "model")]
            + ["--dataset", str(skin), "--split-file", str(runs / "stage7" / "split.json")]
            + ["--record"],
        ),
    ]


def _read_times(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        return []
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _times_csv(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["stage", "step", "minutes", "skipped"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="imported datasets")
    parser.add_argument("--runs", type=Path, required=True, help="where the stages train")
    parser.add_argument(
        "--from",
        dest="first",
        type=int,
        default=1,
        help="first stage to train (its start, RUNS/stageN-model or -last, must exist; "
        "the data of earlier stages is still made)",
    )
    parser.add_argument("--until", type=int, default=7, help="last stage to run (1-7)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("overrides", nargs="*", help="vitiseg-train overrides for every stage")
    args = parser.parse_args()
    data, runs = args.data.resolve(), args.runs.resolve()
    missing = [str(data / name) for name in ("vitiligo-web", "skin-photos")]
    missing = [path for path in missing if not (Path(path) / "cases.csv").is_file()]
    if missing and not args.dry_run:
        parser.error(f"no imported dataset at {missing} (vitiseg-import first)")
    steps = [
        step
        for step in recipe_steps(data, runs, args.overrides)
        if step.stage <= args.until and (step.stage >= args.first or step.makes)
    ]
    start = next((step.start for step in steps if step.stage == args.first and step.start), None)
    if start is not None and not start.exists() and not args.dry_run:
        parser.error(f"stage {args.first} starts from {start}, which does not exist")
    half_made = [step for step in steps if len({path.exists() for path in step.makes}) > 1]
    if half_made:  # checked before anything runs: an interrupted copy would be trained on
        step = half_made[0]
        print(
            f"stage {step.stage} ({step.name}): {[str(p) for p in step.makes]} are made "
            "together, but only some exist; delete them and run again",
            file=sys.stderr,
        )
        return 1
    times = runs / "recipe_times.csv"
    rows = _read_times(times)  # a resumed recipe adds to the times of the earlier calls
    for step in steps:
        kept = bool(step.makes) and all(path.exists() for path in step.makes)
        print(f"# stage {step.stage}: {step.name}{' (kept)' if kept else ''}", flush=True)
        print(shlex.join(step.command), flush=True)
        if args.dry_run:
            continue
        started = time.monotonic()
        if not kept:
            runs.mkdir(parents=True, exist_ok=True)
            result = subprocess.run(step.command, check=False)
            if result.returncode:
                print(
                    f"stage {step.stage} ({step.name}) failed with exit code "
                    f"{result.returncode}; run again to resume",
                    file=sys.stderr,
                )
                return result.returncode
        minutes = round((time.monotonic() - started) / 60, 2)
        rows.append({"stage": step.stage, "step": step.name, "minutes": minutes, "skipped": kept})
        write_text_atomic(times, _times_csv(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
