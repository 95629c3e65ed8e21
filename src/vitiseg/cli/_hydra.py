"""The one place that knows how a command finds its configs and output folder."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from vitiseg.paths import config_dir


def output_dir() -> Path:
    """The run's output folder: ``output=DIR`` when given, else Hydra's dated run folder."""
    return Path(HydraConfig.get().runtime.output_dir)


def run_hydra(config_name: str, task: Callable[[DictConfig], int | None]) -> None:
    """Run ``task`` under Hydra with the packaged configs; exit with its return code."""
    exit_code: list[int] = [0]

    def _task(cfg: DictConfig) -> None:
        logging.getLogger("vitiseg").setLevel(logging.INFO)
        exit_code[0] = int(task(cfg) or 0)

    # Name the job after the command, so default run folders read outputs/<command>/<date>.
    if not any(arg.startswith("hydra.job.name=") for arg in sys.argv[1:]):
        sys.argv.append(f"hydra.job.name={config_name}")
    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(_task)()
    sys.exit(exit_code[0])
