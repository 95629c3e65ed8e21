"""vitiseg-eval on a set with broken cases: they are reported and the rest are evaluated."""

from __future__ import annotations

import csv
import json

import numpy as np

from tests.conftest import make_tiny_dataset, run_eval_command
from vitiseg.io.atomic import write_png_atomic
from vitiseg.quality import QualityConfig


def test_unusable_cases_are_reported_and_the_rest_evaluated(tmp_path, tiny_model_dir):
    dataset = make_tiny_dataset(tmp_path / "d", n_cases=6)
    images = sorted((dataset / "images").glob("*.png"))
    broken_photo, resized_mask = images[1].stem, images[3].stem
    images[1].write_bytes(b"not a png")
    write_png_atomic(
        dataset / "masks" / "lesion" / f"{resized_mask}.png", np.zeros((5, 5), np.uint8)
    )
    before = {p: p.read_bytes() for p in dataset.rglob("*.png")}
    out = tmp_path / "eval"
    run = run_eval_command(
        tiny_model_dir,
        dataset,
        out,
        "gallery=1",
        "infer.tta=false",
        "infer.scales=[1.0]",
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stderr  # written, but not complete
    summary = json.loads((out / "summary.json").read_text())
    skipped = {c["case_id"]: c["problem"] for c in summary["skipped_cases"]}
    assert set(skipped) == {broken_photo, resized_mask}
    assert (
        str(images[1]) in skipped[broken_photo] and "not a readable image" in skipped[broken_photo]
    )
    assert "mask size (5, 5) differs" in skipped[resized_mask]
    assert summary["dataset"]["n_cases"] == 6 and summary["dataset"]["n_evaluated"] == 4
    assert len(summary["cases"]) == 4
    with open(out / "cases.csv", newline="") as stream:
        assert len(list(csv.DictReader(stream))) == 4
    table = (out / "summary.md").read_text()
    assert "Skipped (not in any figure above): 2 case(s)" in table
    assert f"SKIPPED {broken_photo}" in run.stdout
    assert {p: p.read_bytes() for p in dataset.rglob("*.png")} == before  # inputs untouched
    # The tiny model chooses no uncertain_skin share: the default, said so, and recorded.
    assert (
        summary["quality"]["max_ambiguous_skin_share"] == QualityConfig().max_ambiguous_skin_share
    )
    assert "the model folder chooses no max_ambiguous_skin_share" in run.stdout + run.stderr
