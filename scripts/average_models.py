#!/usr/bin/env python3
"""Average the weights of model folders fine-tuned from one start ("model soup").

    python scripts/average_models.py OUT_FOLDER MODEL_A MODEL_B [MODEL_C ...]

The folders must share architecture, preprocessing, outputs and thresholds (runs of one
config with different seeds). The result is a normal model folder; evaluate it with
vitiseg-eval before using it (docs/model_history.md, session 15).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vitiseg.models.averaging import average_model_folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="model folder to write")
    parser.add_argument("models", type=Path, nargs="+", help="model folders to average")
    args = parser.parse_args()
    try:
        metadata = average_model_folders(args.models, args.out)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"average_models: {error}") from error
    print(f"wrote {metadata.model_id} to {args.out}: the mean of {len(args.models)} models")


if __name__ == "__main__":
    main()
