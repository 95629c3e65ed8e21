"""Baseline vs follow-up from masks: change maps, improvement, outputs, the compare command."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.test_align import MOVES, camera_move, visit_pair
from vitiseg.compare import (
    ChangeClass,
    align_images,
    change_areas,
    change_labels,
    compare_masks,
    compare_photos,
    identity_alignment,
    write_pair_outputs,
)
from vitiseg.compare.lighting import (
    is_lighting_note,
    lighting_change,
    lighting_note,
    matched_lighting_change,
    normal_skin_colour,
    rebalanced,
    unrestorable_share,
    worth_rebalancing,
)
from vitiseg.compare.manifest import (
    ManifestError,
    compare_manifest,
    lighting_summary,
    read_manifest,
    write_manifest_outputs,
)
from vitiseg.compare.pairs import comparison_row
from vitiseg.io.atomic import write_png_atomic
from vitiseg.quality import QualityConfig
from vitiseg.vasi import VasiConfig

# Patches are exactly the lesion pixels (no speckle merging), so a solid lesion's region
# VASI is hand units * lesion px / skin px, which the tests compute on their own.
EXACT = VasiConfig(merge_radius_px=0.0, min_patch_area_px=0, min_patch_area_fraction=0.0)
FACE_HAND_UNITS = EXACT.hand_units("face")


def discs(shape: tuple[int, int], centres: list[tuple[int, int]], radii: list[int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for centre, radius in zip(centres, radii, strict=True):
        cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


def face_visits(shape=(200, 240)):
    """A skin ellipse with three lesions; at follow-up they shrink and one new spot appears."""
    skin = np.zeros(shape, np.uint8)
    cv2.ellipse(skin, (120, 100), (110, 90), 0, 0, 360, 1, -1)
    centres = [(70, 70), (160, 80), (120, 145)]
    baseline = discs(shape, centres, [25, 20, 18])
    followup = discs(shape, centres, [12, 15, 0]) | discs(shape, [(60, 140)], [6])
    return skin.astype(bool), baseline, followup


def expected_vasi(skin: np.ndarray, lesion: np.ndarray) -> float:
    return FACE_HAND_UNITS * np.count_nonzero(lesion & skin) / np.count_nonzero(skin)


def test_shrinking_lesions_give_the_expected_improvement_and_change_map():
    skin, before, after = face_visits()
    result = compare_masks(
        skin,
        before,
        skin,
        after,
        identity_alignment(skin.shape, skin.shape),
        "face",
        pixels_per_cm=10.0,
        config=EXACT,
    )
    assert result.scored_within == "common_area"
    baseline_vasi, followup_vasi = expected_vasi(skin, before), expected_vasi(skin, after)
    assert result.baseline.vasi == pytest.approx(baseline_vasi)
    assert result.followup.vasi == pytest.approx(followup_vasi)
    expected_improvement = (baseline_vasi - followup_vasi) / baseline_vasi
    assert result.response.improvement == pytest.approx(expected_improvement)
    # Every patch fully depigmented at both visits: the extent alone changes as the VASI.
    assert result.area_improvement == pytest.approx(expected_improvement)
    assert result.response.vasi50 == (expected_improvement >= 0.5)
    assert result.response.vasi75 == (expected_improvement >= 0.75)

    labels = result.labels
    np.testing.assert_array_equal(labels == ChangeClass.REPIGMENTED, before & ~after)
    np.testing.assert_array_equal(labels == ChangeClass.NEW, after & ~before)
    np.testing.assert_array_equal(labels == ChangeClass.STABLE, before & after)
    np.testing.assert_array_equal(labels == ChangeClass.NOT_COMPARED, ~skin)
    areas = result.areas
    assert areas.repigmented_px == np.count_nonzero(before & ~after)
    assert areas.new_px == np.count_nonzero(after & ~before)
    assert areas.repigmented_cm2 == pytest.approx(areas.repigmented_px / 100.0)
    assert areas.new_cm2 == pytest.approx(areas.new_px / 100.0)
    assert areas.repigmented_share == pytest.approx(
        np.count_nonzero(before & ~after) / np.count_nonzero(before)
    )


def test_repigmentation_inside_an_outlined_patch_lowers_its_level_not_its_extent():
    """A three-output model: same outline at both visits, pigment returning inside it."""
    shape = (120, 120)
    skin = np.ones(shape, bool)
    outline = discs(shape, [(60, 60)], [30])
    before = outline.copy()
    after = outline & ~discs(shape, [(60, 60)], [21])  # about half the patch repigments
    config = VasiConfig()
    result = compare_masks(
        skin,
        outline,
        skin,
        outline,
        identity_alignment(shape, shape),
        "trunk",
        config=config,
        baseline_depigmented=before,
        followup_depigmented=after,
    )
    (baseline_patch,), (followup_patch,) = result.baseline.patches, result.followup.patches
    assert baseline_patch.area_px == followup_patch.area_px  # hand units unchanged
    assert baseline_patch.level == 1.0 and followup_patch.level == 0.5
    assert result.response.improvement == pytest.approx(0.5)
    assert result.area_improvement == 0.0  # the extent did not move: only the level did
    assert comparison_row(result)["area_improvement"] == 0.0
    np.testing.assert_array_equal(result.labels == ChangeClass.REPIGMENTED, before & ~after)
    # Through compare_photos with a three-mask segmenter, the same answer.
    rgb = np.zeros((*shape, 3), np.uint8)
    masks = iter([(skin, outline, before), (skin, outline, after)])
    pair = compare_photos(
        rgb, rgb, lambda _: next(masks), "trunk", align_method="none", config=config
    )
    assert pair.comparison.response.improvement == pytest.approx(0.5)


def test_photos_moved_between_visits_are_aligned_before_comparing():
    pair = visit_pair(move=MOVES["rotate-scale-shift-tilt"])
    truth = {
        id(pair["baseline"]): pair["baseline_lesion"],
        id(pair["followup"]): pair["followup_lesion"],
    }

    def segment(rgb):  # masks injected: the test is about alignment and change, not a model
        lesion = truth[id(rgb)]
        return np.ones(lesion.shape, bool), lesion

    result = compare_photos(pair["baseline"], pair["followup"], segment, "face", config=EXACT)
    comparison = result.comparison
    assert comparison.alignment.reliable, comparison.alignment.reason
    # The same comparison with the true homography and exactly warped masks, independently:
    h, w = pair["baseline_lesion"].shape
    common = (
        cv2.warpPerspective(
            np.ones((h, w), np.uint8), pair["true_homography"], (w, h), flags=cv2.INTER_NEAREST
        )
        > 0
    )
    after = (
        cv2.warpPerspective(
            pair["followup_lesion"].astype(np.uint8),
            pair["true_homography"],
            (w, h),
            flags=cv2.INTER_NEAREST,
        )
        > 0
    )
    before = pair["baseline_lesion"] & common
    after &= common
    expected = 1 - np.count_nonzero(after) / np.count_nonzero(before)
    assert comparison.response.improvement == pytest.approx(expected, abs=0.01)
    repigmented = before & ~after
    found = comparison.labels == ChangeClass.REPIGMENTED
    overlap = np.count_nonzero(found & repigmented) / np.count_nonzero(found | repigmented)
    assert overlap > 0.97
    assert result.aligned_followup.shape == pair["baseline"].shape


def test_a_follow_up_segmented_in_the_baseline_frame_measures_the_same_change():
    pair = visit_pair(move=MOVES["rotate-scale-shift-tilt"])
    seen = []

    def segment(rgb):  # pale patches by their green level; the warp's black border is no skin
        seen.append(rgb.shape)
        return rgb.max(axis=-1) > 30, rgb[..., 1] > 186

    as_taken = compare_photos(pair["baseline"], pair["followup"], segment, "face", config=EXACT)
    in_frame = compare_photos(
        pair["baseline"], pair["followup"], segment, "face", config=EXACT, segment_aligned=True
    )
    assert in_frame.comparison.alignment.reliable
    np.testing.assert_allclose(
        in_frame.comparison.alignment.homography, as_taken.comparison.alignment.homography
    )
    # The follow-up was warped into the baseline frame before the model saw it: the real
    # repigmentation (lesions shrunk to 0.6) reads the same either way.
    assert in_frame.comparison.response.improvement > 0.5
    assert in_frame.comparison.response.improvement == pytest.approx(
        as_taken.comparison.response.improvement, abs=0.02
    )
    labels, reference = in_frame.comparison.labels, as_taken.comparison.labels
    repigmented = labels == ChangeClass.REPIGMENTED
    expected = reference == ChangeClass.REPIGMENTED
    assert (
        np.count_nonzero(repigmented & expected) / np.count_nonzero(repigmented | expected) > 0.9
    )
    assert seen[-1] == pair["baseline"].shape  # the last photo segmented: the warped follow-up
    with pytest.raises(ValueError, match="reliable alignment"):
        skin, before, after = face_visits()
        blank = np.zeros((*skin.shape, 3), np.uint8)
        unrelated = align_images(blank, blank)
        compare_masks(
            skin, before, skin, after, unrelated, "face", followup_in_baseline_frame=True
        )


def test_unreliable_alignment_scores_each_photo_and_makes_no_change_map():
    skin, before, after = face_visits()
    unrelated = align_images(np.zeros((200, 240, 3), np.uint8), np.zeros((200, 240, 3), np.uint8))
    assert not unrelated.reliable
    result = compare_masks(skin, before, skin, after, unrelated, "face", config=EXACT)
    assert result.labels is None and result.areas is None
    assert result.scored_within == "each_photo"
    assert "alignment unreliable" in result.notes[0]
    assert result.followup.vasi == pytest.approx(expected_vasi(skin, after))


def test_skin_at_one_visit_only_is_not_called_change():
    skin, before, _ = face_visits()
    covered = skin.copy()
    covered[:, :100] = False  # e.g. hair or a hand over the left part at follow-up
    labels = change_labels(skin, before, covered, np.zeros_like(before))
    assert not np.any(labels[:, :100] == ChangeClass.REPIGMENTED)
    np.testing.assert_array_equal(labels[:, 100:] == ChangeClass.REPIGMENTED, before[:, 100:])


def test_tolerance_absorbs_a_one_pixel_border_shift():
    shape = (60, 60)
    skin = np.ones(shape, bool)
    before = discs(shape, [(30, 30)], [12])
    after = np.roll(before, 1, axis=1)
    exact = change_areas(change_labels(skin, before, skin, after))
    assert exact.repigmented_px == np.count_nonzero(before & ~after) > 0
    tolerant = change_areas(change_labels(skin, before, skin, after, tolerance_px=1))
    assert tolerant.repigmented_px == 0 and tolerant.new_px == 0
    assert tolerant.stable_px == np.count_nonzero(before | after)


def test_pair_outputs_are_written_and_consistent(tmp_path):
    skin, before, after = face_visits()
    photo = np.full((*skin.shape, 3), (190, 140, 110), np.uint8)
    photo[before] = (235, 220, 205)
    result = compare_photos(
        photo,
        photo.copy(),
        lambda rgb: (skin, before if rgb is photo else after),
        "face",
        align_method="none",
        pixels_per_cm=10.0,
        config=EXACT,
    )
    files = write_pair_outputs(
        tmp_path,
        result,
        photo,
        photo,
        identifiers={"baseline_image": "a.jpg", "followup_image": "b.jpg"},
    )
    for name in files.values():
        assert (tmp_path / name).is_file(), name
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["improvement"] == pytest.approx(result.comparison.response.improvement)
    assert data["areas"]["repigmented_cm2"] == pytest.approx(
        np.count_nonzero(before & ~after) / 100.0
    )
    assert data["alignment"]["reliable"] is True
    with open(tmp_path / "comparison.csv", newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["baseline_image"] == "a.jpg"
    assert float(row["followup_vasi"]) == pytest.approx(expected_vasi(skin, after))
    labels = cv2.imread(str(tmp_path / "change_labels.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(labels, result.comparison.labels)
    with Image.open(tmp_path / "blink.gif") as gif:
        assert gif.n_frames == 2


def test_unaligned_pair_writes_a_warning_panel_and_no_change_map(tmp_path):
    skin, before, after = face_visits()
    photo = np.zeros((*skin.shape, 3), np.uint8)
    result = compare_photos(
        photo,
        photo[:, :200].copy(),
        lambda rgb: (skin[:, : rgb.shape[1]], before[:, : rgb.shape[1]]),
        "face",
        align_method="none",
        config=EXACT,
    )
    files = write_pair_outputs(tmp_path, result, photo, photo[:, :200])
    assert set(files) == {"side_by_side", "csv", "json"}
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["areas"] is None and data["scored_within"] == "each_photo"
    assert "sizes differ" in data["alignment"]["reason"]


def make_manifest(tmp_path):
    """Two patients: p1 face at both visits (pair) plus hands at baseline only; p2 face only
    at baseline. Photos are flat colours; masks come from a lookup by file name."""
    skin, before, after = face_visits()
    masks = {}
    rows = ["patient_id,visit,region,image,pixels_per_cm"]
    for name, patient, visit, region, lesion in [
        ("p1_v0_face", "p1", "V0", "face", before),
        ("p1_v1_face", "p1", "V1", "face", after),
        ("p1_v0_hands", "p1", "V0", "hands", before),
        ("p2_v0_face", "p2", "V0", "face", after),
    ]:
        image = np.full((*skin.shape, 3), len(masks) * 40 + 20, np.uint8)
        write_png_atomic(tmp_path / "photos" / f"{name}.png", image)
        masks[int(image[0, 0, 0])] = (skin, lesion)
        rows.append(f"{patient},{visit},{region},photos/{name}.png,10")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "manifest.csv", lambda rgb: masks[int(rgb[0, 0, 0])]


def compare_v0_with_v1(manifest, segment, out_dir, **options):
    """A manifest's visits V0 and V1 compared with the photos taken as registered."""
    return compare_manifest(
        read_manifest(manifest),
        segment,
        baseline_visit="V0",
        followup_visit="V1",
        out_dir=out_dir,
        align_method="none",
        config=EXACT,
        **options,
    )


def test_a_manifest_passes_its_holding_options_to_each_pair(tmp_path):
    manifest, segment = make_manifest(tmp_path)
    calls = []

    def segment_followup(baseline_rgb, followup_rgb):  # records that the pair used it
        calls.append(followup_rgb.shape)
        return segment(followup_rgb)

    def face_followup(**options):
        result = compare_v0_with_v1(manifest, segment, tmp_path / "out", **options)
        (face,) = [r for r in result.patients[0].regions if r.region == "face"]
        return face.comparison.followup

    assert not any(patch.level_held for patch in face_followup().patches)
    held = face_followup(
        segment_aligned=True, segment_followup=segment_followup, hold_levels_within=0.05
    )
    # The three lesions shrank in place (shares unchanged): each keeps its level; the new
    # spot at (row 140, column 60) lies in no baseline patch and snaps its own.
    new_spot = [patch.level_held for patch in held.patches if patch.bbox[:2] == (134, 54)]
    assert new_spot == [False]
    assert sum(patch.level_held for patch in held.patches) == 3
    assert len(calls) == 1
    # Cut along the baseline's patches, each follow-up patch takes the label of the
    # baseline patch it continues; the new spot is numbered after them.
    cut = face_followup(follow_baseline_patches=True)
    assert sorted(patch.label for patch in cut.patches) == [1, 2, 3, 4]
    assert [patch.label for patch in cut.patches if patch.bbox[:2] == (134, 54)] == [4]


def test_manifest_comparison_gives_per_patient_f_and_t_vasi(tmp_path):
    manifest, segment = make_manifest(tmp_path)
    result = compare_v0_with_v1(manifest, segment, tmp_path / "out")
    write_manifest_outputs(tmp_path / "out", result)
    skin, before, after = face_visits()
    p1, p2 = result.patients
    assert p1.f_vasi.baseline == pytest.approx(expected_vasi(skin, before))
    assert p1.f_vasi.followup == pytest.approx(expected_vasi(skin, after))
    # Hands have no follow-up photo, so T-VASI compares the face alone at both visits.
    assert p1.t_vasi.baseline == pytest.approx(p1.f_vasi.baseline)
    assert p2.f_vasi is None and p2.single_visit[0] == "V0"
    with open(tmp_path / "out" / "visit_scores.csv", newline="") as stream:
        visits = list(csv.DictReader(stream))
    assert [(r["patient_id"], r["visit"]) for r in visits] == [
        ("p1", "V0"),
        ("p1", "V1"),
        ("p2", "V0"),
    ]
    with open(tmp_path / "out" / "comparison.csv", newline="") as stream:
        regions = list(csv.DictReader(stream))
    assert [(r["patient_id"], r["region"]) for r in regions] == [
        ("p1", "face"),
        ("p1", "hands"),
        ("p2", "face"),
    ]
    assert "no follow-up photo" in regions[1]["notes"]
    # p1's face photos are flat grey 20 at V0 and 60 at V1: three times as bright.
    assert float(regions[0]["lighting_exposure"]) == pytest.approx(3.0)
    assert "200% brighter" in regions[0]["notes"] and regions[1]["lighting_exposure"] == ""
    assert (tmp_path / "out" / "pairs" / "p1" / "face" / "change_map.png").is_file()
    report = (tmp_path / "out" / "report.html").read_text()
    assert "p1 / face" in report and "<script" not in report
    # The pair's lighting note is shown with the pair, and counted at the top.
    assert "200% brighter" in report
    assert lighting_summary(result).startswith("Lighting: 1 of 1 compared photo pairs")
    assert "0 follow-up photo(s) were re-balanced" in report
    # Re-balanced to the baseline's grey 20, the follow-up is segmented as the baseline was.
    matched = compare_v0_with_v1(manifest, segment, tmp_path / "matched", match_lighting=True)
    (face, _) = matched.patients[0].regions
    assert face.lighting.rebalanced and face.response.improvement == pytest.approx(0.0)
    assert "1 follow-up photo(s) were re-balanced" in lighting_summary(matched)


def test_comparison_outputs_carry_the_disclaimer_model_and_settings(tmp_path):
    from omegaconf import OmegaConf

    from vitiseg.cli.compare import comparison_provenance
    from vitiseg.report import DISCLAIMER

    class Predictor:
        metadata = type(
            "Metadata",
            (),
            {
                "model_id": "net-<1>",
                "evaluation": {"<i>mine</i>": {"mean": {"n_cases": 3, "skin": {"dice": 0.9}}}},
            },
        )()

        def segment(self, rgb):
            return _lightness_segmenter(rgb)

    cfg = OmegaConf.create({"checkpoint": "models/mine", "tta": True, "segment_aligned": True})
    provenance = comparison_provenance(cfg, Predictor().segment)
    assert provenance["disclaimer"] == DISCLAIMER and provenance["model_id"] == "net-<1>"
    assert provenance["model_folder"] == "models/mine"
    assert provenance["config"] == {
        "checkpoint": "models/mine",
        "tta": True,
        "segment_aligned": True,
    }

    manifest, segment = make_manifest(tmp_path)
    result = compare_v0_with_v1(manifest, segment, tmp_path / "out", provenance=provenance)
    write_manifest_outputs(tmp_path / "out", result, provenance)
    summary = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert summary["provenance"]["model_id"] == "net-<1>"
    pair = json.loads((tmp_path / "out" / "pairs" / "p1" / "face" / "comparison.json").read_text())
    assert pair["provenance"]["config"]["segment_aligned"] is True
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Research use only" in report and "net-&lt;1&gt;" in report and "net-<1>" not in report
    # How accurate the model was measured to be, from its folder's evaluations, escaped.
    assert summary["provenance"]["measured_accuracy"] == ["<i>mine</i>, 3 photos: skin Dice 0.90"]
    assert "&lt;i&gt;mine&lt;/i&gt;, 3 photos: skin Dice 0.90" in report and "<i>" not in report


def test_manifest_problems_are_named(tmp_path):
    (tmp_path / "m.csv").write_text("patient_id,visit,image\np1,V0,a.png\n")
    with pytest.raises(ManifestError, match="region"):
        read_manifest(tmp_path / "m.csv")
    manifest, segment = make_manifest(tmp_path)
    with pytest.raises(ManifestError, match="'W12' not in the manifest"):
        compare_manifest(
            read_manifest(manifest),
            segment,
            baseline_visit="V0",
            followup_visit="W12",
            out_dir=tmp_path / "out",
        )


def test_a_model_folder_plugs_into_the_comparison(tmp_path, tiny_model_dir, monkeypatch):
    from vitiseg.cli import compare as command

    segment, no_holding = command.load_segmenter(str(tiny_model_dir), "cpu", tta=False)
    assert no_holding is None
    pair = visit_pair(size=(120, 160), move=camera_move((120, 160), 3.0, 1.0, (4, -3), (0, 0)))
    skin, lesion, depigmented = segment(pair["baseline"])
    assert skin.shape == lesion.shape == (120, 160) and skin.dtype == lesion.dtype == bool
    assert depigmented is None  # a two-output model
    result = compare_photos(pair["baseline"], pair["followup"], segment, "face")
    assert result.comparison.baseline.skin_px <= 120 * 160
    monkeypatch.setattr(command, "default_model_dir", lambda: tmp_path / "models" / "default")
    with pytest.raises(FileNotFoundError, match="no model has shipped yet"):
        command.load_segmenter(None, "cpu", tta=False)


def test_the_comparison_segments_at_the_sizes_it_is_given(tiny_model_dir):
    from vitiseg.cli import compare as command
    from vitiseg.inference.predictor import Predictor

    photo = visit_pair(size=(120, 160), move=camera_move((120, 160), 0.0, 1.0, (0, 0), (0, 0)))
    sizes = (0.75, 1.0, 1.25)
    segment, _ = command.load_segmenter(str(tiny_model_dir), "cpu", tta=True, scales=sizes)
    predictor = Predictor.from_folder(tiny_model_dir, tta=True, scales=sizes)
    expected = predictor.segment(photo["baseline"])
    for got, want in zip(segment(photo["baseline"])[:2], expected[:2], strict=True):
        np.testing.assert_array_equal(got, want)
    one_size = Predictor.from_folder(tiny_model_dir, tta=True).predict(photo["baseline"])
    assert not np.allclose(one_size.lesion, predictor.predict(photo["baseline"]).lesion)
    by_colour, _ = command.load_segmenter(str(tiny_model_dir), "cpu", False, (1.0,), "colour")
    assert by_colour.__self__.depigmented_source == "colour"
    with pytest.raises(ValueError, match="depigmented_source"):
        command.load_segmenter(str(tiny_model_dir), "cpu", False, depigmented_source="paint")


def test_the_command_can_hold_unchanged_pixels(tiny_model_dir):
    from omegaconf import OmegaConf

    from vitiseg.cli import compare as command
    from vitiseg.inference.predictor import Predictor

    photo = visit_pair(size=(120, 160), move=camera_move((120, 160), 0.0, 1.0, (0, 0), (0, 0)))
    segment, holding = command.load_segmenter(
        str(tiny_model_dir), "cpu", False, hold_unchanged_within=0.2
    )
    assert holding.within == 0.2 and segment == holding.segment
    expected = Predictor.from_folder(tiny_model_dir).segment(photo["baseline"])
    for got, want in zip(segment(photo["baseline"])[:2], expected[:2], strict=True):
        np.testing.assert_array_equal(got, want)  # a photo on its own: as without holding
    # A follow-up identical to its baseline gets the baseline's masks exactly.
    held = holding(photo["baseline"], photo["baseline"].copy())
    for got, want in zip(held[:2], expected[:2], strict=True):
        np.testing.assert_array_equal(got, want)
    cfg = OmegaConf.create({"checkpoint": str(tiny_model_dir), "hold_unchanged_within": 0.2})
    provenance = command.comparison_provenance(cfg, segment)
    assert provenance["model_id"] == holding.metadata.model_id
    assert provenance["config"]["hold_unchanged_within"] == 0.2
    with pytest.raises(ValueError, match="between 0 and 1"):
        command.load_segmenter(str(tiny_model_dir), "cpu", False, hold_unchanged_within=2.0)


@pytest.mark.slow
def test_compare_command_on_two_photos_with_a_tiny_model(tmp_path, tiny_model_dir):
    pair = visit_pair(size=(240, 320), move=camera_move((240, 320), 5.0, 1.05, (8, -6), (1e-4, 0)))
    write_png_atomic(tmp_path / "before.png", pair["baseline"])
    write_png_atomic(tmp_path / "after.png", pair["followup"])
    metadata_path = tiny_model_dir / "metadata.json"  # a share chosen for this model
    metadata_path.write_text(
        json.dumps(
            {**json.loads(metadata_path.read_text()), "quality": {"max_ambiguous_skin_share": 0.5}}
        )
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "vitiseg.cli.compare",
        f"baseline={tmp_path / 'before.png'}",
        f"followup={tmp_path / 'after.png'}",
        f"output={out}",
        "region=face",
        f"checkpoint={tiny_model_dir}",
        "match_lighting=true",
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    data = json.loads((out / "comparison.json").read_text())
    assert data["region"] == "face"
    assert data["provenance"]["quality"]["max_ambiguous_skin_share"] == 0.5
    assert data["alignment"]["reliable"] is True and data["lighting"]["pixel_matched"] is True
    assert (out / "side_by_side.jpg").is_file() and (out / "blink.gif").is_file()


def run_compare_on_missing_photos(tmp_path, *overrides: str) -> tuple[int, str]:
    """Exit code and output of ``vitiseg-compare`` asked to compare two absent photos."""
    command = [
        sys.executable,
        "-m",
        "vitiseg.cli.compare",
        "baseline=a.png",
        "followup=b.png",
        f"output={tmp_path / 'out'}",
        *overrides,
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    return done.returncode, done.stderr + done.stdout


def test_compare_command_without_a_model_says_so(tmp_path):
    code, output = run_compare_on_missing_photos(tmp_path, f"checkpoint={tmp_path / 'missing'}")
    assert code == 2
    assert "no vitiseg model folder" in output


def test_compare_command_refuses_a_level_margin_outside_0_to_1(tmp_path, tiny_model_dir):
    code, output = run_compare_on_missing_photos(
        tmp_path, f"checkpoint={tiny_model_dir}", "hold_levels_within=2"
    )
    assert code == 2
    assert "hold_levels_within must be between 0 and 1" in output


def test_a_comparison_of_light_skin_carries_the_light_skin_note():
    skin, before, after = face_visits()
    notes = {}
    for tone in ("brown", "light"):
        photo = np.full((*skin.shape, 3), (190, 140, 110) if tone == "brown" else (235, 215, 200))
        photo = photo.astype(np.uint8)
        photo[before] = (245, 240, 236)
        result = compare_photos(
            photo,
            photo.copy(),
            lambda rgb, photo=photo: (skin, before if rgb is photo else after),
            "face",
            align_method="none",
            config=EXACT,
        )
        notes[tone] = result.comparison.notes
    assert not any("light skin" in note for note in notes["brown"])
    assert [n.split(":")[0] for n in notes["light"] if "light skin" in n] == [
        "baseline photo",
        "follow-up photo",
    ]


def test_a_manifest_comparison_notes_light_skin_by_the_quality_thresholds_given(tmp_path):
    skin, before, after = face_visits()
    rows = ["patient_id,visit,region,image"]
    for visit, lesion in (("V0", before), ("V1", after)):
        photo = np.full((*skin.shape, 3), (235, 215, 200), np.uint8)  # light skin
        photo[lesion] = (245, 240, 236)
        write_png_atomic(tmp_path / f"{visit}.png", photo)
        rows.append(f"p1,{visit},face,{visit}.png")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    by_visit = {"V0": before, "V1": after}

    def segment(rgb):  # the lesion is the patch painted into the photo
        lesion = next(m for m in by_visit.values() if (rgb[m] == (245, 240, 236)).all())
        return skin, lesion

    notes = {}
    for name, quality in (("default", None), ("off", QualityConfig(light_skin_min_ita=180))):
        result = compare_v0_with_v1(
            tmp_path / "m.csv", segment, tmp_path / name, panels=False, quality=quality
        )
        write_manifest_outputs(tmp_path / name, result)
        with open(tmp_path / name / "comparison.csv", newline="") as stream:
            (row,) = list(csv.DictReader(stream))
        notes[name] = row["notes"]
    assert "baseline photo: light skin" in notes["default"]
    assert "follow-up photo: light skin" in notes["default"]
    assert "light skin" not in notes["off"]


def test_a_manifest_region_with_several_photos_a_visit_notes_each_light_photo(tmp_path):
    skin, before, after = face_visits()
    rows = ["patient_id,visit,region,image"]
    tones = {"V0a": (235, 215, 200), "V0b": (190, 140, 110), "V1a": (190, 140, 110)}
    tones["V1b"] = (235, 215, 200)
    lesions = {}
    for name, tone in tones.items():
        photo = np.full((*skin.shape, 3), tone, np.uint8)  # light or brown skin
        lesions[name] = before if name.startswith("V0") else after
        photo[lesions[name]] = (245, 240, 236)
        write_png_atomic(tmp_path / f"{name}.png", photo)
        rows.append(f"p1,{name[:2]},face,{name}.png")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")

    def segment(rgb):  # the lesion is the patch painted into the photo
        painted = (rgb == (245, 240, 236)).all(axis=-1)
        return skin, painted

    result = compare_v0_with_v1(tmp_path / "m.csv", segment, tmp_path / "out", panels=False)
    (outcome,) = result.patients[0].regions
    assert outcome.compared and outcome.comparison is None  # scored photo by photo
    light = [n.split(":")[0] for n in outcome.note.split(" | ") if "light skin" in n]
    assert light == ["baseline photo V0a.png", "follow-up photo V1b.png"]


def test_normal_skin_colour_ignores_lesions_clipped_pixels_and_small_areas():
    skin, lesion, _ = face_visits()
    photo = np.full((*skin.shape, 3), (190, 140, 110), np.uint8)
    photo[lesion] = (240, 235, 230)  # the patches are lighter: never part of the reference
    photo[:20, :] = (255, 255, 255)  # a clipped strip on the skin's top edge
    np.testing.assert_allclose(normal_skin_colour(photo, skin, lesion), (190, 140, 110))
    tiny = np.zeros_like(skin)
    tiny[100:110, 100:110] = True  # 100 px: too few for a median worth trusting
    assert normal_skin_colour(photo, tiny, np.zeros_like(skin)) is None


def test_lighting_change_reads_exposure_and_white_balance_from_the_normal_skin():
    colour = np.array([190.0, 140.0, 110.0])
    darker = lighting_change(colour, colour * 0.85)
    assert darker.exposure == pytest.approx(0.85) and darker.red_blue == pytest.approx(1.0)
    bluer = lighting_change(colour, colour * (0.9, 1.0, 1.1))
    assert bluer.exposure == pytest.approx(1.0) and bluer.red_blue == pytest.approx(0.9 / 1.1)
    assert "15% darker" in lighting_note(darker, 0.1)
    assert "18% bluer" in lighting_note(bluer, 0.1)
    assert lighting_note(lighting_change(colour, colour * 1.05), 0.1) is None  # within 10 %
    assert "5% brighter" in lighting_note(lighting_change(colour, colour * 1.05), 0.04)


def test_a_comparison_notes_a_follow_up_taken_darker_and_writes_the_change(tmp_path):
    skin, before, after = face_visits()
    photo = np.full((*skin.shape, 3), (190, 140, 110), np.uint8)
    photo[before] = (235, 220, 205)
    segment = lambda rgb: (skin, before if rgb is photo else after)  # noqa: E731
    same = compare_photos(photo, photo.copy(), segment, "face", align_method="none")
    assert same.lighting.exposure == pytest.approx(1.0)
    assert not any("lighting" in note for note in same.comparison.notes)
    darker = np.rint(photo * 0.85).astype(np.uint8)
    result = compare_photos(photo, darker, segment, "face", align_method="none")
    assert result.lighting.exposure == pytest.approx(0.85, abs=0.01)
    assert any(note.startswith("lighting changed") for note in result.comparison.notes)
    lenient = QualityConfig(max_lighting_change=0.2)
    quiet = compare_photos(photo, darker, segment, "face", align_method="none", quality=lenient)
    assert not any("lighting" in note for note in quiet.comparison.notes)
    write_pair_outputs(tmp_path, result, photo, darker, panels=False)
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["lighting"]["exposure"] == pytest.approx(0.85, abs=0.01)
    with open(tmp_path / "comparison.csv", newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert float(row["lighting_exposure"]) == pytest.approx(0.85, abs=0.01)
    assert "lighting changed" in row["notes"]


def test_aligned_photos_read_the_lighting_pixel_by_pixel_whatever_the_masks_say():
    skin, before, after = face_visits()
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal((170, 125, 100), 20, (*skin.shape, 3)), 0, 255).astype(np.uint8)
    photo[before] = (240, 232, 225)
    darker = np.rint(photo * 0.85).astype(np.uint8)
    # The follow-up's lesion mask is smaller, so its "normal skin" takes in light lesion
    # pixels: each photo's own median would say less than 15 % darker.
    lighter_reference = (
        normal_skin_colour(darker, skin, after)[1] / normal_skin_colour(photo, skin, before)[1]
    )
    assert lighter_reference > 0.86
    segment = lambda rgb: (skin, before if rgb is photo else after)  # noqa: E731
    result = compare_photos(photo, darker, segment, "face", align_method="none")
    assert result.lighting.exposure == pytest.approx(0.85, abs=0.005)
    assert result.lighting.red_blue == pytest.approx(1.0, abs=0.01)
    few = np.zeros_like(skin)
    few[:5, :5] = True
    assert matched_lighting_change(photo, darker, few) is None


def test_rebalancing_divides_each_channel_by_its_ratio_and_keeps_clipped_channels_white():
    photo = np.array([[[170, 125, 100], [255, 240, 255]]], np.uint8)
    change = lighting_change(np.array([100.0, 100.0, 100.0]), np.array([85.0, 100.0, 125.0]))
    assert change.channels == pytest.approx((0.85, 1.0, 1.25))
    assert rebalanced(photo, change).tolist() == [[[200, 125, 80], [255, 240, 255]]]
    assert worth_rebalancing(change)
    assert not worth_rebalancing(lighting_change(np.full(3, 100.0), np.full(3, 101.0)))


def _lightness_segmenter(rgb):
    """A model that, like the real one, outlines less lesion on a darker photo: skin = any
    pixel that is not black, lesion = skin whose green level is above 200."""
    skin = rgb.max(axis=-1) > 30
    return skin, skin & (rgb[..., 1] > 200)


def _photo_with_graded_lesions(skin, lesion):
    """Skin-coloured noise on black, and lesions whose lightness falls from 240 at the
    centre to 205 at the edge: on a 15 % darker photo only the centres stay above 200."""
    rng = np.random.default_rng(1)
    photo = np.clip(rng.normal((170, 125, 100), 10, (*skin.shape, 3)), 40, 255).astype(np.uint8)
    distance = cv2.distanceTransform(lesion.astype(np.uint8), cv2.DIST_L2, 5)
    level = np.clip(205 + 3 * distance, 205, 240).astype(np.uint8)
    photo[lesion] = np.stack([level, level, level], axis=-1)[lesion]
    photo[~skin] = 0
    return photo


def test_matching_the_lighting_removes_the_response_a_darker_photo_alone_makes(tmp_path):
    skin, before, _ = face_visits()
    photo = _photo_with_graded_lesions(skin, before)
    darker = np.rint(photo * 0.85).astype(np.uint8)
    segment = _lightness_segmenter

    as_given = compare_photos(photo, darker, segment, "face", align_method="none")
    assert as_given.comparison.response.improvement > 0.5  # a "response" from the light alone
    assert not as_given.lighting.rebalanced

    matched = compare_photos(
        photo, darker, segment, "face", align_method="none", match_lighting=True
    )
    assert matched.lighting.rebalanced and matched.lighting.exposure == pytest.approx(0.85, 0.01)
    assert abs(matched.comparison.response.improvement) < 0.05
    assert any("re-balanced" in note for note in matched.comparison.notes)
    # Dividing by 0.85 brightens: nothing clipped needs lowering, so no such note.
    assert matched.lighting.clipped_share == 0
    assert not any("cannot restore" in note for note in matched.comparison.notes)
    write_pair_outputs(tmp_path, matched, photo, darker, panels=False)
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["lighting"]["followup_rebalanced"] is True
    assert data["lighting"]["pixel_matched"] is True

    # The same lighting: nothing to re-balance, the same answer as without the option.
    same = compare_photos(
        photo, photo.copy(), segment, "face", align_method="none", match_lighting=True
    )
    assert not same.lighting.rebalanced and same.comparison.response.improvement == 0


def test_skin_clipped_in_a_channel_that_rebalancing_lowers_cannot_be_restored():
    photo = np.array(
        [[[255, 120, 255], [255, 120, 90], [200, 255, 90], [255, 255, 255]]], np.uint8
    )
    skin = np.array([[True, True, True, False]])
    warmer = lighting_change(np.full(3, 100.0), np.array([120.0, 100.0, 80.0]))
    # Only red is lowered (x 1/1.2): the two skin pixels with red at 255 count, green at
    # 255 (unchanged channel) and the clipped pixel outside the skin do not.
    assert unrestorable_share(photo, skin, warmer) == pytest.approx(2 / 3)
    darker = lighting_change(np.full(3, 100.0), np.full(3, 85.0))
    assert unrestorable_share(photo, skin, darker) == 0


def test_the_lighting_note_says_when_clipping_leaves_a_rebalanced_follow_up_off():
    change = dataclasses.replace(
        lighting_change(np.full(3, 100.0), np.array([120.0, 100.0, 80.0])),
        rebalanced=True,
        clipped_share=0.3,
    )
    note = lighting_note(change, 0.1, max_clipped_share=0.05)
    assert "re-balanced" in note and "30% of the follow-up's skin is clipped" in note
    assert is_lighting_note(note) and not is_lighting_note("light skin in the baseline photo")
    assert "cannot restore" not in lighting_note(change, 0.1, max_clipped_share=0.5)
    # Below the lighting tolerance the clipping is still worth a note; without it, none.
    small = dataclasses.replace(change, channels=(1.05, 1.0, 1.0), red_blue=1.05)
    assert "cannot restore" in lighting_note(small, 0.1, max_clipped_share=0.05)
    assert is_lighting_note(lighting_note(small, 0.1, max_clipped_share=0.05))
    assert lighting_note(dataclasses.replace(small, clipped_share=0.0), 0.1, 0.05) is None


def test_a_brighter_follow_up_with_clipped_patches_is_noted_after_rebalancing(tmp_path):
    skin, before, _ = face_visits()
    photo = _photo_with_graded_lesions(skin, before)
    brighter = np.clip(np.rint(photo * 1.15), 0, 255).astype(np.uint8)  # patches clip
    result = compare_photos(
        photo, brighter, _lightness_segmenter, "face", align_method="none", match_lighting=True
    )
    assert result.lighting.rebalanced
    # The patches' centres (218 and lighter, x 1.15 >= 250) clip, their edges do not.
    clipped_in_skin = np.mean((brighter[skin] >= 250).any(axis=1))
    assert result.lighting.clipped_share == pytest.approx(clipped_in_skin)
    assert 0.05 < result.lighting.clipped_share < before.sum() / skin.sum()
    assert any("cannot restore" in note for note in result.comparison.notes)
    write_pair_outputs(tmp_path, result, photo, brighter, panels=False)
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["lighting"]["followup_clipped_share"] == pytest.approx(
        result.lighting.clipped_share, abs=1e-4
    )
    with open(tmp_path / "comparison.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["lighting_clipped_share"]) == pytest.approx(result.lighting.clipped_share)


def test_photos_that_cannot_be_aligned_are_not_rebalanced():
    skin, before, _ = face_visits()
    photo = _photo_with_graded_lesions(skin, before)
    darker = np.rint(photo[:-10] * 0.85).astype(np.uint8)  # another size: not registered
    result = compare_photos(
        photo, darker, _lightness_segmenter, "face", align_method="none", match_lighting=True
    )
    assert result.lighting is not None and not result.lighting.pixel_matched
    assert not result.lighting.rebalanced
    notes = result.comparison.notes
    assert any("part of the change may come from the photos" in note for note in notes)
