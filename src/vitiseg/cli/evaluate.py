"""vitiseg-eval: score a model folder against an annotated dataset.

Writes summary.json (means, strata, every case), summary.md (a readable table), cases.csv
(a row per case, for a spreadsheet or R) and worst_cases/ (overlays of the failures).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vitiseg.cli._hydra import output_dir, run_hydra
from vitiseg.cli._quality import quality_for_model
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.evaluation.dataset_run import evaluate_dataset
from vitiseg.evaluation.evaluate import CASE_COLUMNS, case_rows, markdown_table
from vitiseg.evaluation.gallery import draw_worst_cases
from vitiseg.evaluation.vasi_truth import write_bland_altman
from vitiseg.inference.factory import predictor_from_config
from vitiseg.io.atomic import write_json_atomic, write_text_atomic
from vitiseg.io.tables import csv_text
from vitiseg.vasi import load_vasi_config

log = logging.getLogger(__name__)


def task(cfg: DictConfig) -> int:
    out = output_dir()
    dataset = Path(cfg.dataset).expanduser().resolve()
    cases = load_dataset(dataset)
    if cfg.split != "all":
        if not cfg.split_file:
            raise ValueError("split=train/val/test needs split_file=RUN/split.json")
        split = load_split(Path(cfg.split_file))
        chosen = set(split.get(dataset.name, {}).get(cfg.split, []))
        cases = [c for c in cases if c.case_id in chosen]
    if not cases:
        raise ValueError(f"{dataset}: no cases to evaluate (split={cfg.split})")
    predictor, model_dir = predictor_from_config(cfg.checkpoint, cfg.infer)
    quality = quality_for_model(cfg.quality, predictor.metadata)
    run = evaluate_dataset(predictor, dataset, cases, load_vasi_config(cfg.vasi), quality)
    results, evaluated, skipped, summary = run.results, run.evaluated, run.skipped, run.summary
    summary["model"] = {"folder": str(model_dir), "model_id": predictor.metadata.model_id}
    summary["dataset"] = {
        "path": str(dataset),
        "split": cfg.split,
        "n_cases": len(cases),
        "n_evaluated": len(results),
    }
    # Flip averaging and working size change every figure: a summary says which it used.
    summary["inference"] = OmegaConf.to_container(cfg.infer, resolve=True)
    summary["quality"] = quality.to_dict()  # the flags' thresholds, model-chosen ones resolved
    if run.vasi is not None:
        write_bland_altman(run.vasi, out / "vasi_bland_altman.png")
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "cases.csv", csv_text(case_rows(results), CASE_COLUMNS))
    table = markdown_table(summary)
    write_text_atomic(out / "summary.md", table)
    gallery = draw_worst_cases(
        predictor, evaluated, results, int(cfg.gallery), out / "worst_cases", quality
    )
    print(table)
    for case, problem in skipped:
        print(f"SKIPPED {case.case_id}: {problem}")
    print(f"summary: {out / 'summary.json'}\nworst cases: {gallery}")
    return 1 if skipped else 0  # as vitiseg-score: the figures are written, but not complete


def main() -> None:
    run_hydra("eval", task)


if __name__ == "__main__":
    main()
