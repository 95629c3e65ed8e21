"""scripts/uncertain_skin_study.py --record: the share chosen on train goes into the model
folder, and the commands then use it."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from tests.conftest import make_split_skin_photos
from vitiseg.cli._quality import quality_for_model
from vitiseg.models.model_folder import load_model_folder

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "uncertain_skin_study.py"


def test_the_chosen_share_is_recorded_in_the_model_folder_and_then_used(tmp_path, tiny_model_dir):
    dataset, split_file, _ = make_split_skin_photos(tmp_path)
    weights = tiny_model_dir / "weights.safetensors"
    weights_digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    before = json.loads((tiny_model_dir / "metadata.json").read_text())

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--checkpoint", str(tiny_model_dir),
         "--dataset", str(dataset), "--split-file", str(split_file),
         "--no-tta", "--scales", "1.0", "--record"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    chosen = float(re.search(r"max_ambiguous_skin_share = ([0-9.]+)", done.stdout).group(1))
    after = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert after["quality"] == {"max_ambiguous_skin_share": chosen}
    study = after["evaluation"]["uncertain_skin_study"]
    assert study["max_ambiguous_skin_share"] == chosen
    assert (study["train"]["photos"], study["val"]["photos"]) == (4, 2)
    assert study["inference"] == {"tta": False, "scales": [1.0]}
    # Nothing else in the folder changes: the weights, and every other metadata entry.
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == weights_digest
    for key in set(before) - {"quality", "evaluation"}:
        assert after[key] == before[key], key
    _, metadata = load_model_folder(tiny_model_dir)
    quality = quality_for_model(OmegaConf.create({"max_ambiguous_skin_share": None}), metadata)
    assert quality.max_ambiguous_skin_share == chosen
