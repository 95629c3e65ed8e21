"""The scoring report states how accurate the model was measured to be, from its metadata."""

from __future__ import annotations

import json

from vitiseg.paths import default_model_dir
from vitiseg.report import render_report
from vitiseg.report.accuracy import measured_accuracy

REAL = {
    "mean": {
        "n_cases": 27,
        "n_patients": 8,
        "lesion": {"dice": 0.669},
        "lesion_nonempty": {"dice": 0.669},
        "ci95_by_patient": {"lesion_nonempty_dice": [0.531, 0.758]},
    },
    "annotator_agreement": {"lesion": {"photos": 3, "annotator_dice": 0.837, "model_dice": 0.787}},
}
HEALTHY = {  # photos without vitiligo: no lesion to score, a false affected share
    "mean": {
        "n_cases": 160,
        "n_patients": 160,
        "lesion": {"dice": 0.175},
        "lesion_nonempty": {"dice": None},
        "skin": {"dice": 0.833},
        "affected_fraction": {"mae": 0.0202, "bias": 0.0202},
    }
}
SYNTHETIC = {
    "mean": {
        "n_cases": 120,
        "lesion_nonempty": {"dice": 0.712},
        "depigmented": {"dice": 0.597},
        "affected_fraction": {"mae": 0.0333, "bias": -0.0149},
    },
    "vasi_vs_truth": {"model_vs_generator": {"mae": 0.3997}},
}


def test_each_evaluation_with_means_becomes_one_sentence():
    evaluation = {
        "real_val": REAL,
        "retake_noise": {"improvements": [0.1], "description": "no means here"},
        "skin_val": HEALTHY,
        "my_clinic": SYNTHETIC,  # a name the report does not know is shown as it is
    }
    assert measured_accuracy(evaluation) == [
        "real vitiligo photos, validation patients (hand-drawn outlines), 27 photos of 8 "
        "patients: lesion Dice 0.67 (95 % CI 0.53–0.76); on 3 photo(s) annotated twice the "
        "annotators agree at lesion Dice 0.84, the model 0.79",
        "real skin photos without vitiligo, validation split, 160 photos: skin Dice 0.83; "
        "mean error of the affected skin share 2.0 percentage points (bias +2.0)",
        "my_clinic, 120 photos: lesion Dice 0.71; depigmented Dice 0.60; mean error of the "
        "affected skin share 3.3 percentage points (bias -1.5); mean VASI error 0.40 against "
        "the exact VASI",
    ]
    assert measured_accuracy(None) == [] and measured_accuracy({"x": {"mean": {}}}) == []


def test_the_recipes_cross_validation_is_not_read_as_this_models_own_figure():
    folds = [{"model_id": "a", "n_cases": 31}, {"model_id": "b", "n_cases": 33}]
    cross_validation = {**REAL, "folds": folds, "mean": {**REAL["mean"], "n_cases": 64}}

    (sentence,) = measured_accuracy({"recipe_cv": cross_validation})

    assert sentence.startswith(
        "real vitiligo photos of patients outside training, scored by the same recipe trained "
        "again without them (2 cross-validation fold(s), other weights than this model's), "
        "64 photos of 8 patients: lesion Dice 0.67"
    )


def test_the_report_shows_the_sentences_escaped():
    run = {"model_id": "m", "model": {"evaluation": {"<b>set</b>": SYNTHETIC}}}
    page = render_report([], run=run)
    assert "How accurate this model was measured to be" in page
    assert "&lt;b&gt;set&lt;/b&gt;, 120 photos: lesion Dice 0.71" in page
    assert "<b>set" not in page
    assert "How accurate" not in render_report([], run={"model_id": "m"})


def test_the_shipped_model_states_its_real_validation_dice():
    metadata = json.loads((default_model_dir() / "metadata.json").read_text())
    real = metadata["evaluation"]["real_val"]["mean"]
    sentences = measured_accuracy(metadata["evaluation"])
    first = sentences[0]
    assert first.startswith(
        f"real vitiligo photos, validation patients (hand-drawn outlines), "
        f"{real['n_cases']} photos of {real['n_patients']} patients"
    )
    assert f"lesion Dice {real['lesion_nonempty']['dice']:.2f}" in first
    # Right after it, what its recipe scored on patients it never saw, named as such.
    recipe = metadata["evaluation"]["recipe_cv"]["mean"]
    assert sentences[1].startswith("real vitiligo photos of patients outside training")
    assert f"{recipe['n_cases']} photos of {recipe['n_patients']} patients" in sentences[1]
    assert f"lesion Dice {recipe['lesion_nonempty']['dice']:.2f}" in sentences[1]
