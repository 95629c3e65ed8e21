"""The worst-case gallery: which cases it picks for each kind of failure, and what it draws."""

import numpy as np

from tests.conftest import make_tiny_dataset
from vitiseg.data.dataset_format import load_dataset
from vitiseg.evaluation.evaluate import CaseResult, evaluate_case
from vitiseg.evaluation.gallery import worst_cases, write_gallery
from vitiseg.inference.predictor import Predictor
from vitiseg.io.atomic import write_png_atomic
from vitiseg.io.images import read_mask
from vitiseg.metrics.segmentation import score_masks


def _case(case_id, *, lesion=None, skin=None, false_share=0.0, depigmented=None):
    """A CaseResult from (prediction, truth) pairs of small masks."""
    scores = {
        name: score_masks(*pair, with_hd95=False) if pair else None
        for name, pair in (("lesion", lesion), ("skin", skin), ("depigmented", depigmented))
    }
    return CaseResult(
        case_id=case_id,
        patient_id=case_id,
        lesion=scores["lesion"],
        skin=scores["skin"],
        affected_fraction_true=0.0,
        affected_fraction_predicted=false_share,
        stratum="ita_light",
        ita_deg=40.0,
        depigmented=scores["depigmented"],
    )


def _masks(predicted_px: int, truth_px: int, size: int = 10):
    predicted, truth = np.zeros((size, size), bool), np.zeros((size, size), bool)
    predicted.flat[:predicted_px] = True
    truth.flat[:truth_px] = True
    return predicted, truth


def test_photos_without_lesions_are_ranked_by_false_area_not_by_their_zero_dice():
    results = [
        _case("small_false", lesion=_masks(3, 0), skin=_masks(50, 50), false_share=0.03),
        _case("clean", lesion=_masks(0, 0), skin=_masks(50, 60)),
        _case("large_false", lesion=_masks(30, 0), skin=_masks(50, 90), false_share=0.30),
        _case("lesion_half", lesion=_masks(10, 20), skin=_masks(50, 50)),
        _case("lesion_good", lesion=_masks(20, 20), skin=_masks(50, 50)),
    ]
    sections = worst_cases(results, count=2)

    def ids(section):
        return [pick.result.case_id for pick in sections[section]]

    assert ids("lesion") == ["lesion_half", "lesion_good"]  # only photos with lesions
    assert ids("false_lesion") == ["large_false", "small_false"]  # "clean" has nothing false
    assert ids("skin") == ["large_false", "clean"]  # Dice 0.71 and 0.91; the rest are 1.0
    assert "depigmented" not in sections  # no case has exact depigmented masks
    assert sections["false_lesion"][0].caption == "false affected area 30.0 % of skin"
    assert [p.output for p in sections["skin"]] == ["skin", "skin"]


def test_a_skin_only_set_gets_a_skin_section_and_a_zero_count_no_gallery():
    results = [_case(f"s{i}", skin=_masks(50, 40 + 5 * i)) for i in range(3)]
    assert [p.result.case_id for p in worst_cases(results, 8)["skin"]] == ["s0", "s1", "s2"]
    assert worst_cases(results, 0) == {}


def test_the_skin_truth_kept_for_the_overlay_is_the_one_scored_lesions_inside(
    tmp_path, tiny_model_dir
):
    dataset = make_tiny_dataset(tmp_path / "d", n_cases=2)
    case = load_dataset(dataset)[0]
    skin, lesion = read_mask(case.skin_mask_path), read_mask(case.lesion_mask_path)
    # Annotated as some sets are: the skin mask leaves the patches out.
    write_png_atomic(case.skin_mask_path, (skin & ~lesion).astype(np.uint8) * 255)
    result = evaluate_case(Predictor.from_folder(tiny_model_dir), case, keep_masks=True)
    masks = result.masks
    assert np.array_equal(masks["skin_true"], skin | lesion)
    assert np.array_equal(masks["lesion_true"], lesion)
    assert score_masks(masks["skin_pred"], masks["skin_true"]).dice == result.skin.dice


def test_write_gallery_writes_each_section_and_escapes_the_names(tmp_path):
    rgb = np.full((20, 20, 3), 128, np.uint8)
    lesion_pred, lesion_true = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    lesion_pred[5:10, 5:10] = True
    results = [
        _case("<b>odd</b>", lesion=(lesion_pred, lesion_true), false_share=0.1),
        _case("with_lesion", lesion=(lesion_pred, lesion_pred), skin=(lesion_pred, lesion_true)),
    ]
    sections = worst_cases(results, 8)
    masks = {
        r.case_id: {
            "rgb": rgb,
            "lesion_pred": lesion_pred,
            "lesion_true": lesion_true,
            "skin_pred": lesion_pred,
            "skin_true": lesion_true,
        }
        for r in results
    }
    index = write_gallery(sections, masks, tmp_path / "worst")
    page = index.read_text()
    assert sorted(p.name for p in (tmp_path / "worst").glob("*.jpg")) == [
        "false_lesion-01.jpg",
        "lesion-01.jpg",
        "skin-01.jpg",
    ]
    assert "&lt;b&gt;odd&lt;/b&gt;" in page and "<b>odd" not in page
    assert page.index("largest false affected area") < page.index("lowest skin Dice")
