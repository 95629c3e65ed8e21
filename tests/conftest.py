"""Shared test fixtures: the real photo sets (skipped with a reason when absent), tmp data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vitiseg.paths import shared_data_dir

# Tests run on CPU with few threads so they stay fast and repeatable on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real photos with masks); skips where a user's clone has none."""
    root = shared_data_dir()
    if not (root / "vitiligo-web" / "manifest.csv").is_file():
        pytest.skip(f"real photo sets not found at {root} (only CI and developers have ../shared)")
    return root


@pytest.fixture(autouse=True)
def _clear_hydra():
    """Hydra keeps global state between compose calls; clear it after each test."""
    yield
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
