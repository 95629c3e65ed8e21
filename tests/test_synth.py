"""vitiseg-synth: determinism, exact masks, VASI levels, skin types, painted mode, CLI."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2lab

from vitiseg.data.dataset_format import CASES_COLUMNS, load_dataset
from vitiseg.data.verify import verify_dataset
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.synth import (
    CUT_POINTS,
    LEVELS,
    REGIONS,
    generate_dataset,
    level_band,
    make_contact_sheet,
    snap_share,
)
from vitiseg.synth.color import ITA_RANGES, fitzpatrick_from_ita, lab_to_linear, linear_to_lab
from vitiseg.synth.painted import load_skin_photos, load_source

PROCEDURAL_N = 12


@pytest.fixture(scope="module")
def procedural(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Twelve procedural cases at the default size (two full cycles of skin types)."""
    root = tmp_path_factory.mktemp("procedural")
    generate_dataset(root, n=PROCEDURAL_N, seed=5)
    return root, json.loads((root / "truth.json").read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _disk_closing(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary closing with a Euclidean disk, padded so nothing bridges the frame edge."""
    pad = math.ceil(radius) + 1
    yy, xx = np.mgrid[-pad : pad + 1, -pad : pad + 1]
    structure = yy**2 + xx**2 <= radius**2
    closed = ndimage.binary_closing(np.pad(mask, pad), structure=structure)
    return closed[pad:-pad, pad:-pad] | mask


def _lightness(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb)[..., 0]


def _patch_lightness_gaps(root: Path, truth: dict, min_level: float) -> list[float]:
    """Mean L* of each solid patch's lesion minus that of the normal skin ring around it."""
    gaps = []
    for case_id, case in truth["cases"].items():
        image = read_rgb(root / "images" / f"{case_id}.jpg")
        skin = read_mask(root / "masks" / "skin" / f"{case_id}.png")
        lesion = read_mask(root / "masks" / "lesion" / f"{case_id}.png")
        lightness = _lightness(image)
        for patch in case["patches"]:
            if patch["level"] < min_level:
                continue
            y0, x0, y1, x1 = patch["bbox"]
            box = np.zeros_like(lesion)
            box[y0:y1, x0:x1] = True
            inside = ndimage.binary_erosion(lesion & box, iterations=1)
            near = ndimage.binary_dilation(lesion & box, iterations=7)
            ring = near & ~ndimage.binary_dilation(lesion, iterations=3) & skin
            if inside.sum() < 10 or ring.sum() < 10:
                continue
            gaps.append(float(lightness[inside].mean() - lightness[ring].mean()))
    return gaps


def test_level_bands_are_the_midpoint_cuts() -> None:
    assert level_band(1.0) == (0.95, pytest.approx(1.0))
    assert level_band(0.75) == (0.625, 0.825)
    assert level_band(0.1) == (0.05, 0.175)
    for level, cut in zip(LEVELS, CUT_POINTS, strict=True):
        assert snap_share(cut) == level
        assert snap_share(level) == level
    assert snap_share(0.049) is None


def test_colour_conversion_matches_scikit_image() -> None:
    rng = np.random.default_rng(0)
    linear = rng.random((500, 3)).astype(np.float32)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(linear_to_lab(linear), rgb2lab(srgb), atol=0.02)
    np.testing.assert_allclose(lab_to_linear(linear_to_lab(linear)), linear, atol=1e-4)


def test_ita_categories() -> None:
    assert fitzpatrick_from_ita(60.0) == 1
    assert fitzpatrick_from_ita(55.0) == 2
    assert fitzpatrick_from_ita(30.0) == 3
    assert fitzpatrick_from_ita(20.0) == 4
    assert fitzpatrick_from_ita(-30.0) == 5
    assert fitzpatrick_from_ita(-31.0) == 6


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "a", n=3, seed=11, size=192)
    generate_dataset(tmp_path / "b", n=3, seed=11, size=192)
    generate_dataset(tmp_path / "c", n=3, seed=12, size=192)
    generate_dataset(tmp_path / "prefix", n=2, seed=11, size=192)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(first) == 3 * 3 + 2
    assert first == second
    other = _files(tmp_path / "c")
    images = [name for name in first if name.startswith("images/")]
    assert all(first[name] != other[name.replace("synth11", "synth12")] for name in images)
    # A case depends on its own seed and index only: n=2 is a prefix of n=3.
    prefix = _files(tmp_path / "prefix")
    assert all(
        prefix[name] == first[name] for name in prefix if name.startswith(("images", "masks"))
    )


@pytest.fixture(scope="module")
def exact_and_outline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same three procedural photos labelled exactly and as outlines."""
    root = tmp_path_factory.mktemp("label_styles")
    generate_dataset(root / "exact", n=3, seed=11, size=192)
    generate_dataset(root / "outline", n=3, seed=11, size=192, lesion_label="outline")
    return root


def test_outline_labels_cover_each_patch_and_leave_truth_exact(
    exact_and_outline: Path, tmp_path: Path
) -> None:
    exact, outline = _files(exact_and_outline / "exact"), _files(exact_and_outline / "outline")
    assert exact["truth.json"] != outline["truth.json"]  # the header names the label style
    truth = {k: v for k, v in json.loads(exact["truth.json"]).items() if k != "lesion_label"}
    assert truth == {
        k: v for k, v in json.loads(outline["truth.json"]).items() if k != "lesion_label"
    }
    grew = 0
    for case in load_dataset(exact_and_outline / "outline"):
        drawn = read_mask(case.mask_path("lesion"))
        depigmented = read_mask(
            exact_and_outline / "exact" / "masks" / "lesion" / f"{case.case_id}.png"
        )
        skin = read_mask(case.mask_path("skin"))
        assert not (depigmented & ~drawn).any()  # every depigmented pixel is inside an outline
        assert not (drawn & ~skin).any()  # outlines stay on skin
        grew += int(drawn.sum() > depigmented.sum())
    assert grew >= 1  # pigment specks inside patches are now labelled too
    with pytest.raises(ValueError, match="lesion_label"):
        generate_dataset(tmp_path / "bad", n=1, seed=1, lesion_label="polygon")


def test_both_labels_write_outlines_and_exact_pixels_side_by_side(
    exact_and_outline: Path, tmp_path: Path
) -> None:
    both = tmp_path / "both"
    generate_dataset(both, n=3, seed=11, size=192, lesion_label="both")
    files = _files(both)
    for name, content in _files(exact_and_outline / "outline").items():
        if name.startswith(("images", "masks")):
            assert files[name] == content  # the same photos, outlines in masks/lesion
    for name, content in _files(exact_and_outline / "exact").items():
        if name.startswith("masks/lesion"):
            assert files[name.replace("lesion", "depigmented")] == content
    report = verify_dataset(both)
    assert report.ok and report.counts.depigmented_masks == 3


def _label_style_ceiling(truth: Path, other: Path):
    script = Path(__file__).parents[1] / "scripts" / "label_style_ceiling.py"
    return subprocess.run(
        [sys.executable, str(script), str(truth), str(other)], capture_output=True, text=True
    )


def test_label_style_ceiling_scores_outlines_against_exact_truth(
    exact_and_outline: Path, tmp_path: Path
) -> None:
    exact, outline = exact_and_outline / "exact", exact_and_outline / "outline"
    same = _label_style_ceiling(exact, exact)
    assert same.returncode == 0, same.stderr
    assert "lesion Dice: 1.000" in same.stdout
    assert "absolute error, percentage points: 0.000" in same.stdout
    done = _label_style_ceiling(exact, outline)
    assert done.returncode == 0, done.stderr
    dice = float(done.stdout.split("lesion Dice: ")[1].split()[0])
    error = float(done.stdout.split("error, percentage points: ")[1].split()[0])
    assert 0 < dice < 1  # outlines take in the pigment specks inside partial patches
    assert error > 0  # so they overstate the affected fraction
    generate_dataset(tmp_path / "other", n=2, seed=11, size=192)
    refused = _label_style_ceiling(exact, tmp_path / "other")
    assert refused.returncode == 2
    assert "different cases" in refused.stderr


def test_masks_are_exact_binary_and_consistent(procedural: tuple[Path, dict]) -> None:
    root, truth = procedural
    assert len(truth["cases"]) == PROCEDURAL_N
    for case_id, case in truth["cases"].items():
        image = read_rgb(root / "images" / f"{case_id}.jpg")
        raw = {
            kind: np.asarray(Image.open(root / "masks" / kind / f"{case_id}.png"))
            for kind in ("lesion", "skin")
        }
        for mask in raw.values():
            assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
            assert set(np.unique(mask)) <= {0, 255}
        skin, lesion = raw["skin"] > 0, raw["lesion"] > 0
        assert not (lesion & ~skin).any()
        assert int(skin.sum()) == case["skin_px"]
        assert int(lesion.sum()) == case["lesion_px"] > 0
        assert case["lesion_px"] == sum(p["depigmented_px"] for p in case["patches"])
        # A body part over a background: the skin is neither tiny nor the whole frame.
        assert 0.15 < skin.mean() < 0.97


def test_every_level_occurs_and_each_share_snaps_to_it(procedural: tuple[Path, dict]) -> None:
    _, truth = procedural
    patches = [p for case in truth["cases"].values() for p in case["patches"]]
    assert {p["level"] for p in patches} == set(LEVELS)
    for patch in patches:
        low, high = level_band(patch["level"])
        share = patch["depigmented_px"] / patch["extent_px"]
        assert low <= share < high
        # The extent is the group VASI sees (smaller than the drawn outline for sparse
        # specks), so the share lies in the level's band rather than exactly at it.


def test_patches_are_recovered_one_by_one(procedural: tuple[Path, dict]) -> None:
    """Group the lesion mask with vitiseg.vasi's default disk (2 % of the skin's diameter):
    there is one group per designed patch, each holding exactly one patch's
    depigmented pixels, no larger than its extent, with a share that snaps to its level."""
    root, truth = procedural
    for case_id, case in truth["cases"].items():
        skin = read_mask(root / "masks" / "skin" / f"{case_id}.png")
        lesion = read_mask(root / "masks" / "lesion" / f"{case_id}.png")
        radius = 0.02 * math.sqrt(4 * skin.sum() / math.pi)
        groups, count = ndimage.label(_disk_closing(lesion, radius) & skin, np.ones((3, 3)))
        assert count == len(case["patches"]), case_id
        area = np.bincount(groups.ravel(), minlength=count + 1)[1:]
        depigmented = np.bincount(groups[lesion], minlength=count + 1)[1:]
        unmatched = list(range(count))
        for patch in sorted(case["patches"], key=lambda p: -p["depigmented_px"]):
            group = next(g for g in unmatched if depigmented[g] == patch["depigmented_px"])
            unmatched.remove(group)
            y0, x0, y1, x1 = patch["bbox"]
            assert groups[y0:y1, x0:x1].max() > 0
            assert area[group] <= patch["extent_px"]
            assert snap_share(depigmented[group] / area[group]) == patch["level"]
        assert not unmatched


def test_skin_types_spread_and_rendered_ita_in_range(procedural: tuple[Path, dict]) -> None:
    root, truth = procedural
    types = [case["fitzpatrick"] for case in truth["cases"].values()]
    assert sorted(set(types)) == [1, 2, 3, 4, 5, 6]
    for case_id, case in truth["cases"].items():
        image = read_rgb(root / "images" / f"{case_id}.jpg")
        skin = read_mask(root / "masks" / "skin" / f"{case_id}.png")
        lesion = read_mask(root / "masks" / "lesion" / f"{case_id}.png")
        normal = ndimage.binary_erosion(skin, iterations=3)
        normal &= ~ndimage.binary_dilation(lesion, iterations=6)
        lab = rgb2lab(image)[normal]
        l_star, b_star = np.median(lab[:, 0]), np.median(lab[:, 2])
        ita = math.degrees(math.atan2(l_star - 50, b_star))
        low, high = ITA_RANGES[case["fitzpatrick"]]
        assert low <= ita <= high, (case_id, case["fitzpatrick"], ita)
        assert abs(ita - case["ita_deg"]) < 3.0


def test_depigmented_skin_is_lighter_than_its_surroundings(
    procedural: tuple[Path, dict],
) -> None:
    """Every solid patch (level >= 0.75) is lighter in L* than the skin ring around it;
    typically by far more (little on type I skin, a lot on type VI)."""
    root, truth = procedural
    gaps = _patch_lightness_gaps(root, truth, min_level=0.75)
    assert len(gaps) >= 10
    assert min(gaps) > 1.0
    assert np.median(gaps) > 8.0


def test_cases_csv_and_dataset_checker(procedural: tuple[Path, dict]) -> None:
    root, truth = procedural
    with open(root / "cases.csv", newline="") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ()) == CASES_COLUMNS
        rows = list(reader)
    assert [row["case_id"] for row in rows] == list(truth["cases"])
    cases = load_dataset(root)
    assert len(cases) == PROCEDURAL_N
    for case in cases:
        entry = truth["cases"][case.case_id]
        assert case.region == entry["region"] in REGIONS
        assert case.fitzpatrick == entry["fitzpatrick"]
        assert case.pixels_per_cm is not None and 3 < case.pixels_per_cm < 40
        assert case.patient_id.startswith("synth-5-")
        assert case.split == ""
        assert case.lesion_mask_path is not None and case.skin_mask_path is not None
    assert len({case.patient_id for case in cases}) == PROCEDURAL_N
    verify = pytest.importorskip("vitiseg.data.verify")
    report = verify.verify_dataset(root)
    assert report.ok, [str(problem) for problem in report.problems]


def _fake_skin_photos(root: Path, source: Path) -> Path:
    """A skin-photo folder (images/, masks/, manifest.csv) made from a procedural set."""
    folder = root / "skin-photos"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = []
    for image in sorted((source / "images").glob("*.jpg")):
        (folder / "images" / image.name).write_bytes(image.read_bytes())
        mask = source / "masks" / "skin" / f"{image.stem}.png"
        (folder / "masks" / mask.name).write_bytes(mask.read_bytes())
        rows.append({"image": image.name, "mask": mask.name, "subset": "fake"})
    with open(folder / "manifest.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["image", "mask", "subset"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def _check_painted(root: Path, skin_photos: Path, size: int, exact_patient: bool) -> None:
    """Lesions inside the source's skin mask, the skin mask copied, the rest untouched."""
    truth = json.loads((root / "truth.json").read_text())
    assert truth["mode"] == "painted"
    sources = {source.name: source for source in load_skin_photos(skin_photos, size)}
    for case_id, case in truth["cases"].items():
        source = sources[case["source"]]
        original, source_skin = load_source(source, size)
        image = read_rgb(root / "images" / f"{case_id}.jpg")
        skin = read_mask(root / "masks" / "skin" / f"{case_id}.png")
        lesion = read_mask(root / "masks" / "lesion" / f"{case_id}.png")
        assert image.shape == original.shape
        assert np.array_equal(skin, source_skin)
        assert not (lesion & ~source_skin).any()
        assert int(lesion.sum()) == case["lesion_px"] > 0
        # Away from the patches the photo is only re-encoded: equal to the source put
        # through the same JPEG, up to chroma upsampling across block borders.
        ok, encoded = cv2.imencode(
            ".jpg",
            cv2.cvtColor(original, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, case["jpeg_quality"]],
        )
        assert ok
        reencoded = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        away = ~cv2.dilate(lesion.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
        assert away.sum() > 0.2 * away.size
        difference = np.abs(image.astype(np.int16) - reencoded.astype(np.int16))[away]
        assert np.mean(difference == 0) > 0.99
        assert difference.max() <= 3
        # Near and inside the patches the photo did change.
        assert np.abs(image.astype(np.int16) - original.astype(np.int16))[lesion].mean() > 5
    cases = load_dataset(root)
    for case in cases:
        stem = Path(truth["cases"][case.case_id]["source"]).stem
        # Exact duplicates (same md5) of real photos share the first one's patient id.
        assert case.patient_id == f"src-{stem}" if exact_patient else case.patient_id[:4] == "src-"
    gaps = _patch_lightness_gaps(root, truth, min_level=0.75)
    assert gaps and min(gaps) > 0.0 and np.median(gaps) > 4.0


def test_painted_mode_on_generated_sources(tmp_path: Path) -> None:
    source = tmp_path / "procedural"
    generate_dataset(source, n=3, seed=21, size=256)
    skin_photos = _fake_skin_photos(tmp_path, source)
    generate_dataset(tmp_path / "painted", n=4, seed=2, mode="painted", skin_photos=skin_photos)
    _check_painted(tmp_path / "painted", skin_photos, 384, exact_patient=True)
    rows = load_dataset(tmp_path / "painted")
    # Four cases from three sources: the one repeated source gives one shared patient.
    assert len({case.patient_id for case in rows}) == 3


@pytest.mark.shared
def test_painted_mode_on_real_skin_photos(shared_data: Path, tmp_path: Path) -> None:
    skin_photos = shared_data / "skin-photos"
    generate_dataset(tmp_path / "painted", n=8, seed=4, mode="painted", skin_photos=skin_photos)
    _check_painted(tmp_path / "painted", skin_photos, 384, exact_patient=False)
    first = _files(tmp_path / "painted")
    generate_dataset(tmp_path / "again", n=8, seed=4, mode="painted", skin_photos=skin_photos)
    assert _files(tmp_path / "again") == first


def test_contact_sheet(procedural: tuple[Path, dict], tmp_path: Path) -> None:
    out = make_contact_sheet(procedural[0], tmp_path / "sheet.png", count=6, columns=3)
    sheet = read_rgb(out)
    assert sheet.shape[0] > 2 * 144 and sheet.shape[1] > 3 * 2 * 144


def test_cli_writes_dataset_and_refuses_painted_output_in_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vitiseg.cli import synth as synth_cli

    out = tmp_path / "data"
    argv = [
        "vitiseg-synth",
        f"out={out}",
        "n=2",
        "seed=3",
        "size=192",
        f"output={tmp_path / 'run'}",
        f"contact_sheet={tmp_path / 'sheet.png'}",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        synth_cli.main()
    assert exit_info.value.code == 0
    assert len(load_dataset(out)) == 2
    assert json.loads((out / "truth.json").read_text())["seed"] == 3
    summary = json.loads((tmp_path / "run" / "synth_summary.json").read_text())
    assert summary["n"] == 2 and summary["mode"] == "procedural"
    assert (tmp_path / "sheet.png").is_file()

    inside = Path(synth_cli.__file__).resolve().parents[3] / "painted-should-not-exist"
    argv = [
        "vitiseg-synth",
        f"out={inside}",
        "n=1",
        "mode=painted",
        f"skin_photos={tmp_path}",
        f"output={tmp_path / 'run2'}",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        synth_cli.main()
    assert exit_info.value.code == 2
    assert not inside.exists()


def test_cli_paints_only_the_photos_of_a_split_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vitiseg.cli import synth as synth_cli

    source = tmp_path / "procedural"
    generate_dataset(source, n=3, seed=21, size=256)
    skin_photos = _fake_skin_photos(tmp_path, source)
    stems = sorted(path.stem for path in (skin_photos / "images").glob("*.jpg"))
    split_file = tmp_path / "split.json"
    split = {skin_photos.name: {"train": stems[:2], "val": stems[2:], "test": []}}
    split_file.write_text(json.dumps(split))

    def run(out: Path, split_path: Path) -> int:
        argv = [
            "vitiseg-synth",
            f"out={out}",
            "n=4",
            "mode=painted",
            f"skin_photos={skin_photos}",
            f"split_file={split_path}",
            "split_part=val",
            f"output={tmp_path / 'run'}",
        ]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            synth_cli.main()
        return int(exit_info.value.code)

    assert run(tmp_path / "val-only", split_file) == 0
    truth = json.loads((tmp_path / "val-only" / "truth.json").read_text())
    # Four cases, one validation photo: every case is painted on it, none on a train photo.
    assert {case["source"] for case in truth["cases"].values()} == {f"{stems[2]}.jpg"}

    other = tmp_path / "other-split.json"
    other.write_text(json.dumps({"vitiligo-web": split[skin_photos.name]}))
    assert run(tmp_path / "refused", other) == 2
    assert not (tmp_path / "refused").exists()
