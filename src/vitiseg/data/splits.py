"""Train/validation splits grouped by patient, so no patient is ever in two folds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitiseg.data.dataset_format import Case
from vitiseg.io.atomic import write_json_atomic


def _ranker(seed: int):
    """Sort key ordering patients by a seeded hash: adding a patient does not reshuffle
    the others."""
    return lambda patient: hashlib.sha256(f"{seed}:{patient}".encode()).hexdigest()


def split_by_patient(
    cases: Sequence[Case], val_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Assign whole patients to ``train`` or ``val``.

    A ``split`` column in cases.csv wins (``train``/``val``/``test``); the remaining
    patients are shuffled with ``seed`` and about ``val_fraction`` of them go to val.

    Returns:
        ``{"train": [case_id, ...], "val": [...], "test": [...]}``.
    """
    fixed: dict[str, str] = {}
    for case in cases:
        if case.split in ("train", "val", "test"):
            fixed[case.patient_id] = case.split
    free_patients = sorted({c.patient_id for c in cases} - set(fixed), key=_ranker(seed))
    n_val = int(round(len(free_patients) * val_fraction))
    if val_fraction > 0 and n_val == 0 and len(free_patients) > 1:
        n_val = 1
    assignment = {patient: "val" for patient in free_patients[:n_val]}
    assignment.update({patient: "train" for patient in free_patients[n_val:]})
    assignment.update(fixed)
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for case in cases:
        split[assignment[case.patient_id]].append(case.case_id)
    return split


def patient_folds(cases: Sequence[Case], k: int, seed: int) -> list[dict[str, list[str]]]:
    """k cross-validation splits: every patient is in exactly one ``val`` fold.

    Patients are dealt round-robin in seeded-hash order, so fold sizes differ by at most
    one patient. Returns k ``{"train": [...], "val": [...], "test": []}`` case-id splits.
    """
    patients = sorted({c.patient_id for c in cases}, key=_ranker(seed))
    if not 2 <= k <= len(patients):
        raise ValueError(f"k must lie in [2, {len(patients)}] (number of patients), got {k}")
    fold_of = {patient: index % k for index, patient in enumerate(patients)}
    return [
        {
            "train": [c.case_id for c in cases if fold_of[c.patient_id] != fold],
            "val": [c.case_id for c in cases if fold_of[c.patient_id] == fold],
            "test": [],
        }
        for fold in range(k)
    ]


def save_split(path: Path, split_by_dataset: dict[str, dict[str, list[str]]]) -> None:
    write_json_atomic(path, split_by_dataset)


def load_split(path: Path) -> dict[str, dict[str, list[str]]]:
    """A split.json; ValueError naming the file when it is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a split.json ({error})") from error


def patients_overlap(cases: Sequence[Case], split: dict[str, list[str]]) -> set[str]:
    """Patients that appear in more than one fold (should be empty)."""
    by_case = {c.case_id: c.patient_id for c in cases}
    folds = [set(by_case[i] for i in ids) for ids in split.values()]
    seen: set[str] = set()
    overlap: set[str] = set()
    for patients in folds:
        overlap |= seen & patients
        seen |= patients
    return overlap


def deterministic_rng(*keys: object) -> np.random.Generator:
    digest = hashlib.sha256(":".join(map(str, keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))
