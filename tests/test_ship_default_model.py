"""scripts/ship_default_model.py on a model folder: new thresholds without retraining."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vitiseg.models.model_folder import load_model_folder

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ship_default_model.py"


def ship(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_a_model_folder_reships_with_its_weights_and_a_new_lesion_setting(
    tiny_model_dir, tmp_path
):
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    summary = {"mean": {"lesion": {"dice": 0.6}}, "cases": [{"case_id": "a"}]}
    (eval_dir / "summary.json").write_text(json.dumps(summary))
    target = tmp_path / "shipped"

    result = ship(
        str(tiny_model_dir),
        "--lesion-threshold",
        "0.4",
        "--skin-threshold",
        "0.8",
        "--lesion-postprocess",
        '{"fill_holes": true, "min_area_fraction": 0.002}',
        "--eval",
        f"real_val={eval_dir}",
        "--target",
        str(target),
    )

    assert result.returncode == 0, result.stderr
    before = json.loads((tiny_model_dir / "metadata.json").read_text())
    after = json.loads((target / "metadata.json").read_text())
    assert after["model_id"] == before["model_id"]
    assert after["training"] == before["training"]
    assert after["thresholds"]["lesion"] == 0.4
    assert after["thresholds"]["skin"] == 0.8
    assert after["lesion_postprocess"]["fill_holes"] is True
    assert after["evaluation"] == {"real_val": {"mean": {"lesion": {"dice": 0.6}}}}
    assert (target / "weights.safetensors").read_bytes() == (
        tiny_model_dir / "weights.safetensors"
    ).read_bytes()
    _, metadata = load_model_folder(target)
    assert metadata.thresholds["lesion"] == 0.4
    assert metadata.thresholds["skin"] == 0.8


def test_a_model_folder_reships_in_place(tiny_model_dir):
    weights = (tiny_model_dir / "weights.safetensors").read_bytes()

    result = ship(
        str(tiny_model_dir), "--lesion-threshold", "0.45", "--target", str(tiny_model_dir)
    )

    assert result.returncode == 0, result.stderr
    assert (tiny_model_dir / "weights.safetensors").read_bytes() == weights
    assert (
        json.loads((tiny_model_dir / "metadata.json").read_text())["thresholds"]["lesion"] == 0.45
    )


def test_a_model_folder_has_no_last_epoch_to_ship(tiny_model_dir, tmp_path):
    result = ship(str(tiny_model_dir), "--last-epoch", "--target", str(tmp_path / "out"))

    assert result.returncode != 0
    assert "a model folder has no epochs" in result.stderr


def test_the_folders_evaluations_stay_only_while_its_thresholds_do(tiny_model_dir, tmp_path):
    metadata_path = tiny_model_dir / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    studies = {"retake_noise": {"improvements": [0.1]}, "uncertain_skin_study": {"val": {}}}
    metadata["evaluation"] = {**studies, "real_val": {"mean": {}}}
    metadata_path.write_text(json.dumps(metadata))
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "summary.json").write_text(json.dumps({"mean": {"skin": {"dice": 0.9}}}))

    kept = ship(
        str(tiny_model_dir), "--eval", f"skin_val={eval_dir}", "--target", str(tmp_path / "a")
    )
    moved = ship(str(tiny_model_dir), "--lesion-threshold", "0.3", "--target", str(tmp_path / "b"))

    assert kept.returncode == 0 and moved.returncode == 0, kept.stderr + moved.stderr
    evaluation = json.loads((tmp_path / "a" / "metadata.json").read_text())["evaluation"]
    # Same weights and thresholds: what was measured on them stays; --eval adds or replaces.
    assert evaluation == {
        **studies,
        "real_val": {"mean": {}},
        "skin_val": {"mean": {"skin": {"dice": 0.9}}},
    }
    assert json.loads((tmp_path / "b" / "metadata.json").read_text())["evaluation"] == {}
    assert "dropped ['real_val', 'retake_noise', 'uncertain_skin_study']" in moved.stdout


def test_the_recipes_cross_validation_ships_beside_the_real_validation_figure(
    tiny_model_dir, tmp_path
):
    evals = {}
    for name in ("real_val", "synth"):
        evals[name] = tmp_path / name
        evals[name].mkdir()
        (evals[name] / "summary.json").write_text(json.dumps({"mean": {"n_cases": 3}}))
    pooled = {"folds": [{"summary": "/runs/f0/summary.json"}], "mean": {"n_cases": 64}}
    (tmp_path / "cv.json").write_text(json.dumps(pooled))

    result = ship(
        str(tiny_model_dir),
        "--eval",
        f"real_val={evals['real_val']}",
        "--eval",
        f"synth={evals['synth']}",
        "--recipe-cv",
        str(tmp_path / "cv.json"),
        "--target",
        str(tmp_path / "out"),
    )

    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / "out" / "metadata.json").read_text())["evaluation"]
    assert list(evaluation) == ["real_val", "recipe_cv", "synth"]
    # The training machine's paths are cut to their last two parts, as everywhere else.
    assert evaluation["recipe_cv"] == {**pooled, "folds": [{"summary": "f0/summary.json"}]}

    # Re-shipped in place with a newer pool: it replaces the old one where it was, and the
    # folder's other evaluations (same weights, same thresholds) stay.
    newer = {"folds": [], "mean": {"n_cases": 117}}
    (tmp_path / "cv-newer.json").write_text(json.dumps(newer))
    out = str(tmp_path / "out")
    again = ship(out, "--recipe-cv", str(tmp_path / "cv-newer.json"), "--target", out)

    assert again.returncode == 0, again.stderr
    evaluation = json.loads((tmp_path / "out" / "metadata.json").read_text())["evaluation"]
    assert list(evaluation) == ["real_val", "recipe_cv", "synth"]
    assert evaluation["recipe_cv"] == newer
    assert evaluation["synth"] == {"mean": {"n_cases": 3}}
