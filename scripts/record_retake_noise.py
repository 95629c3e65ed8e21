#!/usr/bin/env python3
"""Keep a model's re-take noise in its folder, from retest_probe.py's no-change runs.

Every aligned, non-identical no-change pair with a non-zero baseline of the chosen arm gives
one improvement (ideally 0); they go into ``MODEL/metadata.json`` as
``evaluation.retake_noise`` with the arm's ``vitiseg-compare`` settings
(``vitiseg.compare.retake``), and ``vitiseg-compare`` then tells each comparison what share
of them moved as much. The weights, and so the model id, are untouched.

    python scripts/retest_probe.py --dataset DATA/vitiligo-web --split-file RUN/split.json \
        --part val --tta --scales 0.75 1.0 1.25 --segment-aligned --hold-levels 0.05 \
        --json val.json      # and --part train --json train.json
    python scripts/record_retake_noise.py models/default val.json train.json \
        --arm in_frame_levels
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vitiseg.compare.retake import METADATA_KEY, RetakeNoise
from vitiseg.io.atomic import write_json_atomic
from vitiseg.models.metadata import METADATA_NAME

_PART_NAMES = {"val": "validation", "train": "training"}


def noise_from_probes(runs: list[dict], arm: str) -> RetakeNoise:
    """The arm's no-change improvements over the probe runs (one per split part).

    Raises:
        ValueError: a run is of healed pairs, lacks the arm, or the runs' settings differ.
    """
    settings = None
    values: list[float] = []
    sources: set[str] = set()
    parts = []
    for run in runs:
        if run.get("healed"):
            raise ValueError("a --healed run has a real change: only no-change runs measure noise")
        arms = run.get("settings", {})
        if arm not in arms:
            raise ValueError(f"arm {arm!r} not in the run; it has {sorted(arms)}")
        if settings is not None and run["settings"][arm] != settings:
            raise ValueError(f"the runs compared arm {arm!r} with different settings")
        settings = run["settings"][arm]
        pairs = [
            pair
            for pair in run["pairs"]
            if pair["aligned"] and not pair["identical"] and pair[f"{arm}_improvement"] is not None
        ]
        values += [pair[f"{arm}_improvement"] for pair in pairs]
        sources |= {pair["baseline"] for pair in pairs}
        part = _PART_NAMES.get(run["part"], run["part"] or "all")
        parts.append(f"{len(pairs)} {part}")
    description = (
        f"aligned copies of {len(sources)} {runs[0]['dataset']} photos, "
        f"{' and '.join(parts)} pairs; copies move less than real re-takes"
    )
    return RetakeNoise(tuple(values), settings or {}, description)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the model folder to record into")
    parser.add_argument("runs", nargs="+", help="retest_probe.py --json files (no --healed)")
    parser.add_argument("--arm", default="in_frame_levels", help="the probe arm to keep")
    args = parser.parse_args()
    runs = [json.loads(Path(path).read_text()) for path in args.runs]
    noise = noise_from_probes(runs, args.arm)
    path = Path(args.model) / METADATA_NAME
    metadata = json.loads(path.read_text())
    metadata.setdefault("evaluation", {})[METADATA_KEY] = noise.to_dict()
    write_json_atomic(path, metadata)
    print(f"{path}: {noise.description}; settings {noise.settings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
