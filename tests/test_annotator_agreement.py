"""Photos annotated more than once: annotators' Dice beside the model's on the same photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import make_tiny_dataset, run_eval_command
from vitiseg.data.dataset_format import Case, load_dataset
from vitiseg.evaluation.annotator_agreement import (
    agreement_of_kind,
    annotator_agreement,
    repeated_photos,
)
from vitiseg.io.atomic import write_png_atomic
from vitiseg.io.images import read_mask
from vitiseg.metrics.segmentation import MaskScores


def _square(top: int, left: int, side: int, shape=(20, 20)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[top : top + side, left : left + side] = 255
    return mask


def _case(root: Path, case_id: str, image: bytes, lesion: np.ndarray | None) -> Case:
    image_path = root / f"{case_id}.png"
    image_path.write_bytes(image)
    mask_path = None
    if lesion is not None:
        mask_path = root / f"{case_id}_lesion.png"
        write_png_atomic(mask_path, lesion)
    return Case(case_id, case_id, image_path, lesion_mask_path=mask_path)


def _scores(dice: float) -> MaskScores:
    return MaskScores(dice, dice, dice, dice, float("nan"), 1, 1)


def test_repeated_photos_groups_byte_identical_files_only(tmp_path):
    photo, other = b"photo-bytes-1", b"photo-bytes-2"  # same size, other content
    cases = [
        _case(tmp_path, "a", photo, None),
        _case(tmp_path, "c", other, None),
        _case(tmp_path, "b", photo, None),
        _case(tmp_path, "d", b"a longer photo", None),
    ]
    groups = repeated_photos(cases)
    assert [[case.case_id for case in group] for group in groups] == [["a", "b"]]
    assert repeated_photos(cases[1:]) == []


def test_agreement_compares_annotators_and_model_on_the_same_photos(tmp_path):
    # a: 10x10 square; b: the same square moved 5 rows, overlapping 50 of 100 pixels
    # (annotators' Dice 0.5). c/d: a photo whose two masks are empty, left out.
    photo, empty_photo = b"one-photo", b"two-photo"
    cases = [
        _case(tmp_path, "a", photo, _square(0, 0, 10)),
        _case(tmp_path, "b", photo, _square(5, 0, 10)),
        _case(tmp_path, "c", empty_photo, np.zeros((20, 20), np.uint8)),
        _case(tmp_path, "d", empty_photo, np.zeros((20, 20), np.uint8)),
        _case(tmp_path, "e", b"lone-photo", _square(0, 0, 4)),
    ]
    model = {"a": _scores(0.6), "b": _scores(0.8), "c": _scores(1.0), "d": _scores(1.0)}
    block = agreement_of_kind(repeated_photos(cases), model, "lesion")
    assert block["photos"] == 1 and block["cases"] == 2
    assert block["annotator_dice"] == pytest.approx(0.5)
    assert block["model_dice"] == pytest.approx(0.7)
    assert block["model_minus_annotator"] == pytest.approx(0.2)
    assert block["per_photo"][0]["case_ids"] == ["a", "b"]
    # No skin masks: no skin block; a set without repeated photos: nothing at all.
    assert agreement_of_kind(repeated_photos(cases), {}, "skin") is None
    results = [SimpleNamespace(case_id=c, lesion=s, skin=None) for c, s in model.items()]
    assert set(annotator_agreement(cases, results)) == {"lesion"}
    assert annotator_agreement(cases[4:], results) == {}


def test_each_repeated_photo_weighs_the_same(tmp_path):
    # Photo 1 annotated three times (pairs 1.0, 0.5, 0.5), photo 2 twice (Dice 0).
    first, second = b"first-photo", b"other-photo"
    cases = [
        _case(tmp_path, "p1", first, _square(0, 0, 10)),
        _case(tmp_path, "p2", first, _square(0, 0, 10)),
        _case(tmp_path, "p3", first, _square(5, 0, 10)),
        _case(tmp_path, "q1", second, _square(0, 0, 5)),
        _case(tmp_path, "q2", second, _square(10, 10, 5)),
    ]
    model = {case.case_id: _scores(0.9) for case in cases}
    block = agreement_of_kind(repeated_photos(cases), model, "lesion")
    assert [p["annotator_pairs"] for p in block["per_photo"]] == [3, 1]
    assert block["annotator_dice"] == pytest.approx(((1.0 + 0.5 + 0.5) / 3 + 0.0) / 2)


def test_eval_reports_agreement_on_a_photo_annotated_twice(tmp_path, tiny_model_dir):
    dataset = make_tiny_dataset(tmp_path / "d", n_cases=4)
    images = sorted((dataset / "images").glob("*.png"))
    # The second case becomes a second annotation of the first photo: the same skin mask,
    # and the first's lesion mask with its lower half removed.
    shutil.copyfile(images[0], images[1])
    skin_masks = dataset / "masks" / "skin"
    shutil.copyfile(skin_masks / f"{images[0].stem}.png", skin_masks / f"{images[1].stem}.png")
    masks = dataset / "masks" / "lesion"
    first = read_mask(masks / f"{images[0].stem}.png")
    rows = np.flatnonzero(first.any(axis=1))
    second = first.copy()
    second[(rows[0] + rows[-1]) // 2 + 1 :] = False
    write_png_atomic(masks / f"{images[1].stem}.png", second.astype(np.uint8) * 255)
    expected = 2 * second.sum() / (first.sum() + second.sum())

    out = tmp_path / "eval"
    run_eval_command(
        tiny_model_dir, dataset, out, "gallery=0", "infer.tta=false", "infer.scales=[1.0]"
    )
    summary = json.loads((out / "summary.json").read_text())
    block = summary["annotator_agreement"]["lesion"]
    assert block["per_photo"][0]["case_ids"] == [images[0].stem, images[1].stem]
    assert block["annotator_dice"] == pytest.approx(expected)
    model = {c["case_id"]: c["lesion"]["dice"] for c in summary["cases"]}
    pair = [model[images[0].stem], model[images[1].stem]]
    assert block["model_dice"] == pytest.approx(sum(pair) / 2)
    # Scored as evaluation scores skin (lesions included): the same outline both times.
    assert summary["annotator_agreement"]["skin"]["annotator_dice"] == pytest.approx(1.0)
    assert "annotated more than once (2 cases)" in (out / "summary.md").read_text()


@pytest.mark.shared
def test_the_shared_photos_annotated_twice_are_found(shared_data: Path, tmp_path: Path) -> None:
    from vitiseg.data.importers import VITILIGO_WEB, import_manifest_folder

    import_manifest_folder(shared_data / "vitiligo-web", tmp_path / "web", VITILIGO_WEB, link=True)
    cases = load_dataset(tmp_path / "web")
    groups = repeated_photos(cases)
    # The data README: 11 photos held as identical copies (23 cases), annotated by different
    # people, whose masks agree at IoU 0.49-0.90 (Dice 0.66-0.95).
    assert (len(groups), sum(map(len, groups))) == (11, 23)
    assert all(len({case.patient_id for case in group}) == 1 for group in groups)
    perfect = {case.case_id: _scores(1.0) for case in cases}
    block = agreement_of_kind(groups, perfect, "lesion")
    assert block["photos"] == 11
    assert all(0.6 < photo["annotator_dice"] < 0.96 for photo in block["per_photo"])
    assert block["model_minus_annotator"] == pytest.approx(1.0 - block["annotator_dice"])
