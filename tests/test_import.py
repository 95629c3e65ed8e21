"""vitiseg-import: YOLO polygons and manifest folders into the dataset format."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitiseg.cli import import_data
from vitiseg.data.dataset_format import load_dataset, read_cases_csv
from vitiseg.data.importers import (
    SKIN_PHOTOS,
    VITILIGO_WEB,
    ManifestPreset,
    import_manifest_folder,
    import_yolo_folder,
    parse_yolo_polygons,
    yolo_patient_id,
)
from vitiseg.data.verify import verify_dataset
from vitiseg.io.atomic import write_png_atomic
from vitiseg.io.images import read_mask_raw

HEIGHT, WIDTH = 10, 20
# Class 0: a rectangle; class 1: a triangle in the other corner (normalised x, y).
RECTANGLE = [(0.25, 0.2), (0.75, 0.2), (0.75, 0.8), (0.25, 0.8)]
TRIANGLE = [(0.0, 0.0), (0.2, 0.0), (0.0, 0.6)]


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _photo(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _label_line(class_id: int, points: list[tuple[float, float]]) -> str:
    return " ".join([str(class_id), *(f"{v:g}" for point in points for v in point)])


def _centres_inside_rectangle() -> np.ndarray:
    """Pixels whose centre lies inside RECTANGLE, computed from the definition."""
    rows = (np.arange(HEIGHT)[:, None] + 0.5) / HEIGHT
    cols = (np.arange(WIDTH)[None, :] + 0.5) / WIDTH
    (x0, y0), (x1, y1) = RECTANGLE[0], RECTANGLE[2]
    return (rows > y0) & (rows < y1) & (cols > x0) & (cols < x1)


def _centres_inside_triangle() -> np.ndarray:
    rows = (np.arange(HEIGHT)[:, None] + 0.5) / HEIGHT
    cols = (np.arange(WIDTH)[None, :] + 0.5) / WIDTH
    # below y = 0 edge, right of x = 0 edge, and under the hypotenuse x/0.2 + y/0.6 < 1
    return (cols / 0.2 + rows / 0.6) < 1


@pytest.fixture
def yolo_export(tmp_path: Path) -> Path:
    """A Roboflow-style export: two copies of one photo across train/valid, one unlabelled."""
    root = tmp_path / "export"
    root.mkdir()
    (root / "data.yaml").write_text("names: ['vitiligo', 'scar']\nnc: 2\n")
    _save(root / "train" / "images" / "abc_jpg.rf.0a1b.jpg", _photo(0))
    labels = root / "train" / "labels"
    labels.mkdir(parents=True)
    (labels / "abc_jpg.rf.0a1b.txt").write_text(
        _label_line(0, RECTANGLE) + "\n" + _label_line(1, TRIANGLE) + "\n"
    )
    _save(root / "valid" / "images" / "abc_jpg.rf.9f8e.jpg", _photo(1))
    (root / "valid" / "labels").mkdir(parents=True)
    (root / "valid" / "labels" / "abc_jpg.rf.9f8e.txt").write_text(_label_line(0, RECTANGLE))
    _save(root / "train" / "images" / "lonely.png", _photo(2))
    return root


def test_a_bool_mask_is_written_as_0_and_255(tmp_path: Path) -> None:
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    write_png_atomic(tmp_path / "m.png", mask)
    written = read_mask_raw(tmp_path / "m.png")
    assert written.dtype == np.uint8
    assert np.array_equal(written, np.where(mask, 255, 0))


def test_yolo_polygon_pixels_are_exact(yolo_export: Path, tmp_path: Path) -> None:
    destination = tmp_path / "dataset"
    summary = import_yolo_folder(yolo_export, destination, lesion_classes=["vitiligo"])
    assert summary.skipped == ()
    mask = read_mask_raw(destination / "masks" / "lesion" / "abc_jpg.rf.0a1b.png")
    assert mask.dtype == np.uint8 and mask.shape == (HEIGHT, WIDTH)
    assert set(np.unique(mask).tolist()) == {0, 255}
    expected = _centres_inside_rectangle()
    np.testing.assert_array_equal(mask > 0, expected)
    # pixel-centre filling keeps the polygon's true area: 0.5 x 0.6 of the image
    assert int(expected.sum()) == round(0.5 * 0.6 * HEIGHT * WIDTH)


def test_yolo_all_classes_by_default(yolo_export: Path, tmp_path: Path) -> None:
    destination = tmp_path / "dataset"
    import_yolo_folder(yolo_export, destination)
    mask = read_mask_raw(destination / "masks" / "lesion" / "abc_jpg.rf.0a1b.png") > 0
    np.testing.assert_array_equal(mask, _centres_inside_rectangle() | _centres_inside_triangle())


def test_yolo_patients_images_and_missing_labels(yolo_export: Path, tmp_path: Path) -> None:
    destination = tmp_path / "dataset"
    summary = import_yolo_folder(yolo_export, destination)
    cases = {case.case_id: case for case in load_dataset(destination)}
    assert set(cases) == {"abc_jpg.rf.0a1b", "abc_jpg.rf.9f8e", "lonely"}
    # both Roboflow copies of one photo share a patient, so a split keeps them together
    assert cases["abc_jpg.rf.0a1b"].patient_id == cases["abc_jpg.rf.9f8e"].patient_id == "abc_jpg"
    assert cases["lonely"].lesion_mask_path is None  # no label file: not annotated
    assert (summary.n_cases, summary.n_patients, summary.n_lesion_masks) == (3, 2, 2)
    source_image = yolo_export / "train" / "images" / "abc_jpg.rf.0a1b.jpg"
    assert cases["abc_jpg.rf.0a1b"].image_path.read_bytes() == source_image.read_bytes()
    assert verify_dataset(destination).ok

    empty = tmp_path / "with-empty"
    import_yolo_folder(yolo_export, empty, missing_labels_empty=True)
    lonely = read_mask_raw(empty / "masks" / "lesion" / "lonely.png")
    assert lonely.shape == (HEIGHT, WIDTH) and not lonely.any()


def test_yolo_import_is_idempotent(yolo_export: Path, tmp_path: Path) -> None:
    destination = tmp_path / "dataset"
    import_yolo_folder(yolo_export, destination)
    files = sorted(p for p in destination.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    import_yolo_folder(yolo_export, destination)
    after_files = sorted(p for p in destination.rglob("*") if p.is_file())
    assert after_files == files  # no temporary files left behind
    for path in files:
        assert path.read_bytes() == before[path][0]
        if path.suffix in (".png", ".jpg"):
            assert path.stat().st_mtime_ns == before[path][1], f"{path} was rewritten"


def test_yolo_patient_ids() -> None:
    assert yolo_patient_id("abc_jpg.rf.123abc") == "abc_jpg"
    assert yolo_patient_id("plain-name") == "plain-name"
    assert yolo_patient_id("P017_visit2_left", r"^(?P<patient>P\d+)_") == "P017"
    assert yolo_patient_id("P017_visit2_left", r"^(P\d+)") == "P017"


def test_yolo_bad_label_is_skipped_with_its_file(yolo_export: Path, tmp_path: Path) -> None:
    label = yolo_export / "valid" / "labels" / "abc_jpg.rf.9f8e.txt"
    label.write_text("0 0.1 0.2 0.3\n")
    with pytest.raises(ValueError, match="even number"):
        parse_yolo_polygons(label.read_text(), str(label))
    summary = import_yolo_folder(yolo_export, tmp_path / "dataset")
    assert len(summary.skipped) == 1 and str(label) in summary.skipped[0]
    assert summary.n_cases == 2


def _manifest_folder(root: Path, rows: list[dict[str, str]]) -> Path:
    with open(root / "manifest.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_manifest_lesion_import_groups_patients(tmp_path: Path) -> None:
    source = tmp_path / "source"
    lesion = np.zeros((HEIGHT, WIDTH), np.uint8)
    lesion[2:5, 3:9] = 255
    rows = []
    for index, source_name in enumerate(["photoA", "photoA", "photoB", "photoC"]):
        seed = 0 if index == 3 else index  # the last image is a byte copy of the first
        image = _save(source / "images" / f"img{index}.png", _photo(seed))
        _save(source / "masks" / f"img{index}.png", lesion)
        rows.append({"image": image.name, "mask": f"img{index}.png", "md5": _md5(image),
                     "source_name": source_name})  # fmt: skip
    _save(source / "images" / "bad.png", _photo(9))
    _save(source / "masks" / "bad.png", np.zeros((HEIGHT + 1, WIDTH), np.uint8))
    rows.append({"image": "bad.png", "mask": "bad.png", "md5": "x", "source_name": "photoD"})
    _manifest_folder(source, rows)

    destination = tmp_path / "dataset"
    summary = import_manifest_folder(source, destination, VITILIGO_WEB)
    assert len(summary.skipped) == 1 and "bad.png" in summary.skipped[0]
    patients = {r["case_id"]: r["patient_id"] for r in read_cases_csv(destination / "cases.csv")}
    assert patients["img0"] == patients["img1"]  # same source_name
    assert patients["img3"] == patients["img0"]  # same bytes under another source_name
    assert patients["img2"] == "photoB"
    assert summary.n_patients == 2 and summary.n_skin_masks == 0
    np.testing.assert_array_equal(
        read_mask_raw(destination / "masks" / "lesion" / "img2.png"), lesion
    )
    assert not (destination / "masks" / "skin").exists()
    assert verify_dataset(destination).ok


def test_manifest_skin_import_is_lesion_free_with_regions(tmp_path: Path) -> None:
    source = tmp_path / "source"
    skin = np.zeros((HEIGHT, WIDTH), np.uint8)
    skin[1:8, 2:15] = 1  # a 0/1 source mask comes out as 0/255
    rows = []
    for name, subset in [("abdomen_train_001", "abdomen_train"), ("ecu_0001", "ecu")]:
        image = _save(source / "images" / f"{name}.jpg", _photo(len(rows)))
        _save(source / "masks" / f"{name}.png", skin)
        rows.append({"image": image.name, "mask": f"{name}.png", "subset": subset,
                     "md5": _md5(image), "orig_path": f"orig/{name}.jpeg"})  # fmt: skip
    _manifest_folder(source, rows)

    destination = tmp_path / "dataset"
    summary = import_manifest_folder(source, destination, SKIN_PHOTOS)
    assert (summary.n_cases, summary.n_lesion_masks, summary.n_skin_masks) == (2, 2, 2)
    cases = {case.case_id: case for case in load_dataset(destination)}
    assert cases["abdomen_train_001"].region == "trunk"
    assert cases["ecu_0001"].region == ""
    assert not read_mask_raw(cases["ecu_0001"].lesion_mask_path).any()
    np.testing.assert_array_equal(read_mask_raw(cases["ecu_0001"].skin_mask_path), skin * 255)
    with open(destination / "sources.csv", newline="") as stream:
        subsets = {row["case_id"]: row["subset"] for row in csv.DictReader(stream)}
    assert subsets == {"abdomen_train_001": "abdomen_train", "ecu_0001": "ecu"}
    assert verify_dataset(destination).ok


def test_cli_imports_yolo_and_generic_manifest(
    yolo_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = tmp_path / "dataset"
    assert import_data.main(["yolo", str(yolo_export), str(destination)]) == 0
    assert (
        "3 cases, 2 patients, 2 lesion masks, 0 skin masks, 0 skipped" in capsys.readouterr().out
    )
    assert import_data.main(["manifest", str(tmp_path / "nowhere"), str(destination)]) == 2


def test_generic_manifest_preset_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mask_kind"):
        import_manifest_folder(tmp_path, tmp_path / "out", ManifestPreset(mask_kind="hair"))


@pytest.mark.shared
def test_shared_sets_import_and_verify_clean(shared_data: Path, tmp_path: Path) -> None:
    web = import_manifest_folder(shared_data / "vitiligo-web", tmp_path / "web", VITILIGO_WEB)
    assert web.skipped == ()
    assert (web.n_cases, web.n_patients, web.n_lesion_masks, web.n_skin_masks) == (117, 40, 117, 0)
    with open(shared_data / "vitiligo-web" / "manifest.csv", newline="") as stream:
        source_names = {Path(r["image"]).stem: r["source_name"] for r in csv.DictReader(stream)}
    for case in load_dataset(tmp_path / "web"):
        assert case.patient_id == source_names[case.case_id]
    report = verify_dataset(tmp_path / "web")
    assert report.problems == []

    skin = import_manifest_folder(
        shared_data / "skin-photos", tmp_path / "skin", SKIN_PHOTOS, link=True
    )
    assert skin.skipped == ()
    assert (skin.n_cases, skin.n_lesion_masks, skin.n_skin_masks) == (800, 800, 800)
    # the README's 4 exact duplicate pairs each collapse to one patient
    assert skin.n_patients == 800 - 4
    report = verify_dataset(tmp_path / "skin")
    assert report.problems == []
    assert report.counts.skin_masks == 800
