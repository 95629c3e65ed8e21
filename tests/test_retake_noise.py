"""A comparison says how often the model's comparisons of unchanged photos moved as much."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from vitiseg.compare import compare_photos
from vitiseg.compare.retake import (
    COMPARED_SETTINGS,
    RetakeNoise,
    retake_noise_of,
    share_at_least,
)
from vitiseg.quality import QualityConfig
from vitiseg.vasi import VasiConfig

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "record_retake_noise", ROOT / "scripts" / "record_retake_noise.py"
)
record_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record_script)

SHAPE = (160, 200)
EXACT = VasiConfig(merge_radius_px=0.0, min_patch_area_px=0, min_patch_area_fraction=0.0)
COMMAND_DEFAULTS = OmegaConf.load(ROOT / "configs" / "compare.yaml")


def disc(radius: int) -> np.ndarray:
    rows, cols = np.ogrid[: SHAPE[0], : SHAPE[1]]
    return (rows - 80) ** 2 + (cols - 100) ** 2 <= radius**2


def test_the_share_counts_no_change_pairs_that_moved_at_least_as_much_either_way():
    moved = [0.0, 0.05, -0.2, 0.2, 0.6]  # a no-change pair read as 20 % worse counts too
    assert share_at_least(moved, 0.2) == pytest.approx(0.6)
    assert share_at_least(moved, -0.2) == pytest.approx(0.6)  # so does a loss as large
    assert share_at_least(moved, 0.2 + 1e-12) == pytest.approx(0.6)  # float sums round
    assert share_at_least(moved, 0.7) == 0.0 and share_at_least(moved, 0.0) == 1.0
    with pytest.raises(ValueError, match="no no-change pairs"):
        share_at_least([], 0.1)


def test_noise_records_refuse_bad_values_and_round_trip():
    with pytest.raises(ValueError, match="at least one"):
        RetakeNoise(())
    with pytest.raises(ValueError, match="finite"):
        RetakeNoise((0.1, float("nan")))
    responders = RetakeNoise((1.0, 0.5 - 1e-12, 0.49, -1.5))  # float sums round at 50 %
    assert responders.responder_share() == 0.5 and responders.responder_share(0.75) == 0.25
    noise = RetakeNoise((0.1, 0.3), {"tta": True, "scales": [0.75, 1, 1.25]}, "2 copies")
    assert retake_noise_of({"retake_noise": noise.to_dict()}) == noise
    assert retake_noise_of({}) is None
    # Lists and tuples, ints and floats alike; a missing setting is None.
    assert noise.settings_differing({"tta": True, "scales": (0.75, 1.0, 1.25)}) == []
    assert noise.settings_differing({"tta": False, "scales": [1.0]}) == ["tta", "scales"]
    assert "segment_aligned" in noise.settings_differing({**noise.settings, "segment_aligned": 1})


def pair_with_a_shrinking_patch():
    """Two registered photos; the patch's radius 40 -> 36 px: a 19 % improvement."""
    before, after = np.full((*SHAPE, 3), 120, np.uint8), np.full((*SHAPE, 3), 121, np.uint8)
    skin = np.ones(SHAPE, bool)
    masks = {id(before): (skin, disc(40)), id(after): (skin, disc(36))}
    return before, after, lambda rgb: masks[id(rgb)]


def test_an_aligned_comparison_carries_its_share_and_a_note_within_the_noise():
    before, after, segment = pair_with_a_shrinking_patch()

    def compare(noise, **options):
        return compare_photos(
            before,
            after,
            segment,
            "face",
            align_method="none",
            config=EXACT,
            retake_noise=noise,
            **options,
        ).comparison

    plain = compare(None)
    assert plain.retake_share is None and plain.to_dict()["retake_share"] is None
    improvement = plain.response.improvement
    assert improvement == pytest.approx(1 - 36**2 / 40**2, abs=0.01)
    # One no-change pair in ten moved as much: noted, at the default 10 %.
    noisy = compare(RetakeNoise((0.01,) * 9 + (0.25,), description="10 copies"))
    assert noisy.retake_share == pytest.approx(0.1)
    (note,) = [n for n in noisy.notes if "re-take noise" in n]
    assert "1 of 10 comparisons of photos with no change moved by 19% or more (10 copies)" in note
    quiet = compare(RetakeNoise((0.01,) * 10))
    assert quiet.retake_share == 0.0 and not any("re-take" in n for n in quiet.notes)
    strict = compare(
        RetakeNoise((0.01,) * 9 + (0.25,)), quality=QualityConfig(max_retake_noise_share=0.2)
    )
    assert strict.retake_share == pytest.approx(0.1) and not any(
        "re-take" in n for n in strict.notes
    )
    with pytest.raises(ValueError, match="max_retake_noise_share"):
        QualityConfig(max_retake_noise_share=1.5)


def test_an_unaligned_comparison_gets_no_share():
    before, after, segment = pair_with_a_shrinking_patch()
    result = compare_photos(  # flat photos: no features, so no reliable alignment
        before, after, segment, "face", config=EXACT, retake_noise=RetakeNoise((0.5,))
    ).comparison
    assert result.scored_within == "each_photo" and result.retake_share is None


def probe_run(part: str, settings: dict, healed: bool = False) -> dict:
    def pair(base, follow, improvement, aligned=True, identical=False):
        return {
            "baseline": base,
            "followup": follow,
            "aligned": aligned,
            "identical": identical,
            "in_frame_levels_improvement": improvement,
        }

    return {
        "dataset": "vitiligo-web",
        "part": part,
        "healed": healed,
        "settings": {"in_frame_levels": settings},
        "pairs": [
            pair("a1", "a2", -0.2),
            pair("a1", "a3", 0.05),
            pair("b1", "b2", 0.9, aligned=False),  # scored apart: not a re-take of the frame
            pair("b1", "b3", 0.0, identical=True),  # the same file: says nothing
            pair("c1", "c2", None),  # a zero baseline: no improvement
        ],
    }


def test_the_record_script_keeps_aligned_changed_pairs_of_no_change_runs_only():
    settings = {name: COMMAND_DEFAULTS.get(name) for name in COMPARED_SETTINGS}
    noise = record_script.noise_from_probes(
        [probe_run("val", settings), probe_run("train", settings)], "in_frame_levels"
    )
    assert noise.improvements == (-0.2, 0.05, -0.2, 0.05)
    assert noise.description.startswith(
        "aligned copies of 1 vitiligo-web photos, 2 validation and 2 training pairs"
    )
    with pytest.raises(ValueError, match="healed"):
        record_script.noise_from_probes(
            [probe_run("val", settings, healed=True)], "in_frame_levels"
        )
    with pytest.raises(ValueError, match="not in the run"):
        record_script.noise_from_probes([probe_run("val", settings)], "in_frame")
    other = {**settings, "tta": False}
    with pytest.raises(ValueError, match="different settings"):
        record_script.noise_from_probes(
            [probe_run("val", settings), probe_run("train", other)], "in_frame_levels"
        )


def test_the_command_uses_a_record_made_with_its_settings_only(
    tmp_path, tiny_model_dir, monkeypatch
):
    from vitiseg.cli import compare as command

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    settings = {name: COMMAND_DEFAULTS.get(name) for name in COMPARED_SETTINGS}
    run = tmp_path / "val.json"
    run.write_text(
        json.dumps(probe_run("val", OmegaConf.to_container(OmegaConf.create(settings))))
    )
    weights = (model / "weights.safetensors").read_bytes()
    monkeypatch.setattr("sys.argv", ["record", str(model), str(run)])
    assert record_script.main() == 0
    assert (model / "weights.safetensors").read_bytes() == weights
    segment, _ = command.load_segmenter(str(model), "cpu", False)
    noise = command.model_retake_noise(COMMAND_DEFAULTS, segment)
    assert noise is not None and noise.improvements == (-0.2, 0.05)
    moved = OmegaConf.merge(COMMAND_DEFAULTS, {"segment_aligned": False})
    assert command.model_retake_noise(moved, segment) is None
    unrecorded, _ = command.load_segmenter(str(tiny_model_dir), "cpu", False)
    assert command.model_retake_noise(COMMAND_DEFAULTS, unrecorded) is None


def test_the_shipped_models_record_was_measured_with_the_commands_defaults():
    metadata = json.loads((ROOT / "models" / "default" / "metadata.json").read_text())
    noise = retake_noise_of(metadata["evaluation"])
    assert noise is not None, "models/default has no evaluation.retake_noise"
    assert noise.settings_differing(COMMAND_DEFAULTS) == []
    assert len(noise.improvements) >= 30


def test_a_manifest_gives_each_pair_its_share_and_counts_the_noted_ones(tmp_path):
    from tests.test_compare import compare_v0_with_v1, make_manifest
    from vitiseg.compare.manifest import (
        manifest_report_html,
        retake_summary,
        write_manifest_outputs,
    )

    manifest, segment = make_manifest(tmp_path)
    plain = compare_v0_with_v1(manifest, segment, tmp_path / "plain")
    assert retake_summary(plain) is None  # no record: nothing claimed
    result = compare_v0_with_v1(
        manifest, segment, tmp_path / "out", retake_noise=RetakeNoise((1.0,) * 5, description="5")
    )
    (face,) = [r for r in result.patients[0].regions if r.region == "face"]
    assert face.comparison.retake_share == 1.0  # every no-change pair moved by 100 %
    summary = retake_summary(result)
    assert summary.startswith("Re-take noise: 1 of 1 aligned photo pairs")
    assert "the model read 100% of 5 pairs as VASI50 responders (5)" in summary
    assert "Re-take noise: 1 of 1" in manifest_report_html(result)
    write_manifest_outputs(tmp_path / "out", result)
    rows = (tmp_path / "out" / "comparison.csv").read_text().splitlines()
    assert "retake_share" in rows[0].split(",")
    # The patient's F-VASI is the face pair's VASI: it carries the pair's share.
    patient = result.patients[0]
    assert patient.f_vasi.improvement == pytest.approx(face.comparison.response.improvement)
    assert patient.f_vasi_retake_share == 1.0
    assert plain.patients[0].f_vasi_retake_share is None
    with open(tmp_path / "out" / "patients.csv", newline="") as stream:
        rows_by_patient = {row["patient_id"]: row for row in csv.DictReader(stream)}
    assert float(rows_by_patient[patient.patient_id]["f_vasi_retake_share"]) == 1.0
