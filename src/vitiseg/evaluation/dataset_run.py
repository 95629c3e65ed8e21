"""One evaluation of a predictor over a dataset's cases: scores, summary and VASI agreement.

The evaluation command writes what this returns; studies that compare inference settings on
the same photos call it once per setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitiseg.data.dataset_format import Case
from vitiseg.evaluation.annotator_agreement import annotator_agreement
from vitiseg.evaluation.evaluate import CaseResult, evaluate_cases, summarise
from vitiseg.evaluation.vasi_truth import VasiAgreement, load_truth, masks_vasi, vasi_agreement
from vitiseg.inference.predictor import Predictor
from vitiseg.quality import QualityConfig
from vitiseg.vasi import VasiConfig


@dataclass(frozen=True)
class DatasetEvaluation:
    results: list[CaseResult]
    evaluated: list[Case]  # the cases that could be scored, in the dataset's order
    skipped: list[tuple[Case, str]]  # cases whose files could not be used, with the problem
    summary: dict[str, Any]
    vasi: VasiAgreement | None  # None unless the set records its designed VASI


def evaluate_dataset(
    predictor: Predictor,
    dataset: Path,
    cases: list[Case],
    vasi_config: VasiConfig,
    quality: QualityConfig,
) -> DatasetEvaluation:
    """Evaluate ``cases`` of ``dataset``; a case whose files cannot be used is skipped and
    reported, the rest are scored (ValueError when none can be)."""
    truth = load_truth(dataset)  # a synthetic set's designed VASI, if it has one
    model_vasi: dict[str, float] = {}

    def record_model_vasi(case, skin, lesion, depigmented):
        if case.case_id in truth:
            model_vasi[case.case_id] = masks_vasi(
                truth[case.case_id], vasi_config, skin, lesion, depigmented
            )

    skipped: list[tuple[Case, str]] = []
    results = evaluate_cases(
        predictor,
        cases,
        quality,
        on_masks=record_model_vasi if truth is not None else None,
        skipped=skipped,
    )
    if not results:
        raise ValueError(f"{dataset}: no case could be evaluated; first problem: {skipped[0][1]}")
    evaluated_ids = {result.case_id for result in results}
    evaluated = [case for case in cases if case.case_id in evaluated_ids]
    summary = summarise(results)
    summary["skipped_cases"] = [{"case_id": c.case_id, "problem": why} for c, why in skipped]
    if agreement_by_kind := annotator_agreement(evaluated, results):
        summary["annotator_agreement"] = agreement_by_kind
    agreement = None
    if truth is not None:
        agreement = vasi_agreement(evaluated, truth, vasi_config, model_vasi)
        summary["vasi_vs_truth"] = agreement.to_dict()
    return DatasetEvaluation(results, evaluated, skipped, summary, agreement)
