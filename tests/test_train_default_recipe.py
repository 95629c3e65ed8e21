"""scripts/train_default_recipe.py: the README's recipe as one resumable command."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_default_recipe.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def _readme_experiments() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("default model's recipe") : text.index("# Evaluate a model folder")]
    return re.findall(r"vitiseg-train experiment=(\w+)", block)


def test_dry_run_lists_the_readme_stages_each_starting_from_the_last(tmp_path):
    result = _run("--data", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"), "--dry-run")
    assert result.returncode == 0, result.stderr
    trains = [line for line in result.stdout.splitlines() if "vitiseg-train " in line]
    experiments = [re.search(r"experiment=(\w+)", line)[1] for line in trains]
    assert len(experiments) == 7 and experiments == _readme_experiments()
    runs = tmp_path / "runs"
    starts = [re.search(r"model\.init_weights=(\S+)", line) for line in trains]
    assert starts[0] is None  # random weights
    expected = ["stage1-model", "stage2-model", "stage3-model", "stage4-last", "stage5-last"]
    assert [Path(s[1]).name for s in starts[1:]] == [*expected, "stage6-last"]
    # each start is made by a step before the stage that trains from it
    lines = result.stdout.splitlines()
    for line, start in zip(trains[1:], starts[1:], strict=True):
        maker = next(i for i, text in enumerate(lines) if f"--target {start[1]}" in text)
        assert maker < lines.index(line)
    assert f"--target {runs / 'model'}" in result.stdout
    # stage 7's procedural photos (no split: nothing of the shared sets in them) come first
    procedural = tmp_path / "data" / "procedural-train"
    maker = next(i for i, text in enumerate(lines) if f"out={procedural}" in text)
    assert "mode=painted" not in lines[maker] and "seed=1" in lines[maker]
    assert maker < lines.index(trains[-1]) and f",{procedural}]" in trains[-1]
    assert "uncertain_skin_study.py" in lines[-1] and "--record" in lines[-1]


def test_overrides_reach_every_training_stage_and_until_stops_early(tmp_path):
    args = ["--data", str(tmp_path / "d"), "--runs", str(tmp_path / "r"), "--dry-run"]
    result = _run(*args, "--until", "3", "trainer.threads=2")
    trains = [line for line in result.stdout.splitlines() if "vitiseg-train " in line]
    assert len(trains) == 3 and all(line.endswith("trainer.threads=2") for line in trains)


def test_missing_datasets_are_named_and_a_half_made_step_is_refused(tmp_path):
    data, runs = tmp_path / "data", tmp_path / "runs"
    result = _run("--data", str(data), "--runs", str(runs))
    assert result.returncode == 2 and str(data / "vitiligo-web") in result.stderr
    for name in ("vitiligo-web", "skin-photos"):
        (data / name).mkdir(parents=True)
        (data / name / "cases.csv").write_text("case_id,patient_id\n")
    (data / "skin-scenes").mkdir()  # made, but its split entry (runs/split-scenes.json) not
    (data / "skin-scenes" / "cases.csv").write_text("case_id,patient_id\n")
    result = _run("--data", str(data), "--runs", str(runs))
    assert result.returncode == 1 and "only some exist" in result.stderr
    assert "split-scenes.json" in result.stderr and not runs.exists()  # nothing ran


def test_made_folders_are_kept(tmp_path):
    data, runs = tmp_path / "data", tmp_path / "runs"
    (data / "painted-train-split").mkdir(parents=True)
    (data / "both" / "painted-train-split").mkdir(parents=True)  # interrupted: no truth.json
    (data / "painted-train-split" / "truth.json").write_text("{}")
    result = _run("--data", str(data), "--runs", str(runs), "--dry-run")
    assert "# stage 1: painted photos (kept)" in result.stdout
    assert "# stage 5: painted, both labels\n" in result.stdout  # made again
    assert "# stage 0: patient split\n" in result.stdout


def test_from_a_later_stage_makes_the_earlier_data_and_needs_its_start(tmp_path):
    data, runs = tmp_path / "data", tmp_path / "runs"
    args = ["--data", str(data), "--runs", str(runs), "--from", "5"]
    result = _run(*args, "--dry-run")
    names = re.findall(r"# stage (\d): (.+)", result.stdout)
    assert [name for stage, name in names if int(stage) < 5] == [
        "patient split",
        "painted photos",
    ]
    assert ("5", "train stage 5") in names and ("4", "train stage 4") not in names
    for name in ("vitiligo-web", "skin-photos"):
        (data / name).mkdir(parents=True)
        (data / name / "cases.csv").write_text("case_id,patient_id\n")
    result = _run(*args)
    assert result.returncode == 2 and str(runs / "stage4-last") in result.stderr
