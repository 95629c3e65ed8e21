"""Copy-paste of real lesions: which patches are cut, how they are pasted, the set script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from vitiseg.data.dataset_format import load_dataset
from vitiseg.io.atomic import write_png_atomic
from vitiseg.io.images import read_mask
from vitiseg.synth.color import rgb8_to_lab
from vitiseg.synth.copy_paste import cut_donor_patches, paste_patch, render_copy_paste_case

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_copy_paste_set.py"
TAN = (181, 130, 100)
BROWN = (110, 70, 50)


def _skin(colour: tuple[int, int, int], size=(200, 240), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 3, (*size, 3))
    return np.clip(np.array(colour, dtype=np.float32) + noise, 0, 255).astype(np.uint8)


def _donor(dark_spot: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Tan skin with a light disc (the lesion) and its polygon mask."""
    rgb = _skin(TAN)
    cv2.circle(rgb, (120, 100), 30, (235, 225, 215), -1)
    if dark_spot:
        cv2.circle(rgb, (120, 100), 12, (20, 15, 15), -1)  # an eye inside the outline
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.circle(mask, (120, 100), 32, 255, -1)
    return rgb, mask


def test_a_light_patch_is_cut_with_its_ring_and_tone() -> None:
    rgb, mask = _donor()
    patches = cut_donor_patches(rgb, mask, "donor-1")
    assert len(patches) == 1
    patch = patches[0]
    assert patch.source_id == "donor-1"
    assert patch.lesion.sum() == (mask > 0).sum()
    assert not (patch.ring & patch.lesion).any()
    lightness = rgb8_to_lab(patch.rgb)[..., 0]
    assert lightness[patch.ring].mean() < lightness[patch.lesion].mean() - 10
    assert 0 < patch.ita < 60  # tan skin, not the light disc


def test_patches_that_are_not_light_patches_on_skin_are_left_out() -> None:
    rgb, mask = _donor(dark_spot=True)
    assert cut_donor_patches(rgb, mask, "eye") == []
    plain = _skin(TAN)  # an outline around normal skin: nothing lighter inside
    assert cut_donor_patches(plain, mask, "plain") == []
    edge = np.zeros_like(mask)
    edge[:60, :60] = 255  # cut by the border
    rgb[:60, :60] = (235, 225, 215)
    assert cut_donor_patches(rgb, edge, "edge") == []
    speck = np.zeros_like(mask)
    speck[100:105, 50:55] = 255
    assert cut_donor_patches(rgb, speck, "speck") == []


def test_paste_stays_on_skin_matches_the_ring_and_leaves_the_input() -> None:
    patch = cut_donor_patches(*_donor(), "donor")[0]
    target = _skin(BROWN, size=(240, 320), seed=1)
    skin = np.zeros(target.shape[:2], bool)
    skin[20:220, 30:300] = True
    before = target.copy()
    result = paste_patch(target, skin, patch, 0.02, np.random.default_rng(0))
    assert result is not None
    photo, lesion = result
    assert np.array_equal(target, before)
    assert lesion.any() and not (lesion & ~skin).any()
    assert np.array_equal(photo[~skin], target[~skin])
    # Far from the patch nothing changes; the patch is lighter than the target's skin.
    far = ~cv2.dilate(lesion.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    assert np.array_equal(photo[far], target[far])
    lightness = rgb8_to_lab(photo)[..., 0]
    target_lightness = rgb8_to_lab(target)[..., 0]
    assert lightness[lesion].mean() > target_lightness[skin].mean() + 10
    # The patch covers about the share of skin asked for (quarter turns and scale).
    assert 0.014 < lesion.sum() / skin.sum() < 0.028


def test_a_patch_too_large_for_the_photo_is_not_pasted() -> None:
    patch = cut_donor_patches(*_donor(), "donor")[0]
    target = _skin(BROWN, size=(50, 50))
    skin = np.ones(target.shape[:2], bool)
    assert paste_patch(target, skin, patch, 0.9, np.random.default_rng(0)) is None


def test_a_case_is_the_same_for_the_same_stream() -> None:
    patches = cut_donor_patches(*_donor(), "donor")
    target = _skin(BROWN, size=(240, 320), seed=2)
    skin = np.ones(target.shape[:2], bool)
    first = render_copy_paste_case(target, skin, patches, np.random.default_rng(5))
    again = render_copy_paste_case(target, skin, patches, np.random.default_rng(5))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] and set(first[2]) == {"donor"}


def _write_case(root: Path, case_id: str, rgb: np.ndarray, kind: str, mask: np.ndarray) -> None:
    cv2.imwrite(str(root / "images" / f"{case_id}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    write_png_atomic(root / "masks" / kind / f"{case_id}.png", mask)


def test_the_script_uses_only_the_split_part_and_writes_a_dataset(tmp_path: Path) -> None:
    donors, targets = tmp_path / "donors", tmp_path / "targets"
    for root, kind in ((donors, "lesion"), (targets, "skin")):
        (root / "images").mkdir(parents=True)
        (root / "masks" / kind).mkdir(parents=True)
    rows = ["case_id,patient_id"]
    for i in range(2):
        rgb, mask = _donor()
        _write_case(donors, f"d{i}", rgb, "lesion", mask)
        rows.append(f"d{i},p{i}")
    (donors / "cases.csv").write_text("\n".join(rows) + "\n")
    rows = ["case_id,patient_id"]
    for i in range(2):
        _write_case(
            targets,
            f"t{i}",
            _skin(BROWN, (240, 320), i),
            "skin",
            np.full((240, 320), 255, np.uint8),
        )
        rows.append(f"t{i},q{i}")
    (targets / "cases.csv").write_text("\n".join(rows) + "\n")
    split = {
        "donors": {"train": ["d0"], "val": ["d1"], "test": []},
        "targets": {"train": ["t0"], "val": ["t1"], "test": []},
    }
    (tmp_path / "split.json").write_text(json.dumps(split))
    out = tmp_path / "cp"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--donors", str(donors), "--targets", str(targets),
         "--split-file", str(tmp_path / "split.json"), "--n", "4", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cases = load_dataset(out)
    assert len(cases) == 4
    for case in cases:
        assert case.patient_id == "src-q0"  # the val target t1 is never used
        assert case.depigmented_mask_path is None
        assert read_mask(case.lesion_mask_path).any()
    provenance = (out / "provenance.csv").read_text().splitlines()[1:]
    assert {line.split(",")[1] for line in provenance} == {"t0"}
    assert {d for line in provenance for d in line.split(",")[2].split("|")} == {"d0"}


def test_the_script_refuses_an_output_inside_the_checkout(tmp_path: Path) -> None:
    inside = SCRIPT.parents[1] / "copy-paste-output-must-not-exist"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--donors", str(tmp_path / "d"), "--targets",
         str(tmp_path / "t"), "--split-file", str(tmp_path / "s.json"), "--out", str(inside)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "inside the source checkout" in done.stderr
    assert not inside.exists()
