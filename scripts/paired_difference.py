#!/usr/bin/env python3
"""Is model B better than model A on the same photos? A paired, patient-level answer.

    python scripts/paired_difference.py A/summary.json B/summary.json [--metric lesion.dice]
        [--other-metric depigmented.dice] [--stratum fitzpatrick_1]

Both files are vitiseg-eval summaries of the same cases. The per-case differences B - A are
averaged, and their 95 % interval comes from resampling whole patients (a patient's photos
are not independent). An interval that contains 0 means the validation set cannot tell
the two models apart. ``--other-metric`` reads B's value from another output, e.g. a
three-output model's depigmented Dice against a two-output model's lesion Dice on the same
exact truth. ``--stratum`` keeps the cases A's summary puts in that stratum (Fitzpatrick
strata come from the dataset; ITA strata from A's own skin mask).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vitiseg.metrics.confidence import patient_bootstrap_ci


def case_values(summary: dict, metric: str) -> dict[str, tuple[str, float | None]]:
    kind, name = metric.split(".")
    return {
        case["case_id"]: (case["patient_id"], (case.get(kind) or {}).get(name))
        for case in summary["cases"]
    }


def cases_in_stratum(summary: dict, stratum: str) -> set[str]:
    return {case["case_id"] for case in summary["cases"] if case.get("stratum") == stratum}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--metric", default="lesion.dice", help="KIND.NAME in each case")
    parser.add_argument("--other-metric", default=None, help="B's KIND.NAME (default: --metric)")
    parser.add_argument("--stratum", default=None, help="only A's cases in this stratum")
    args = parser.parse_args()
    other_metric = args.other_metric or args.metric
    baseline = json.loads(args.baseline.read_text())
    first = case_values(baseline, args.metric)
    second = case_values(json.loads(args.other.read_text()), other_metric)
    if set(first) != set(second):
        print(f"error: {args.baseline} and {args.other} hold different cases", file=sys.stderr)
        return 2
    ids = sorted(i for i in first if first[i][1] is not None and second[i][1] is not None)
    if args.stratum:
        ids = sorted(set(ids) & cases_in_stratum(baseline, args.stratum))
    if not ids:
        where = f" in stratum {args.stratum!r}" if args.stratum else ""
        print(f"error: no case{where} has {args.metric} / {other_metric} in both", file=sys.stderr)
        return 2
    differences = [second[i][1] - first[i][1] for i in ids]
    patients = [first[i][0] for i in ids]
    interval = patient_bootstrap_ci(differences, patients)
    mean = sum(differences) / len(differences)
    shown = f"[{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else "(under 2 patients)"
    better = sum(d > 0 for d in differences)
    print(
        f"{args.metric}{'' if other_metric == args.metric else ' vs ' + other_metric}"
        f"{' (' + args.stratum + ')' if args.stratum else ''}: "
        f"B - A = {mean:+.3f}, 95 % patient-bootstrap interval {shown}; "
        f"B better on {better} of {len(ids)} cases ({len(set(patients))} patients)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
