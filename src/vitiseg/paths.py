"""Where the shipped configs and the default model live, resolved in one place.

An installed wheel carries them inside the package; a source checkout (editable
install, tests) uses the repository folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_DIR.parents[1]


def config_dir() -> Path:
    """Absolute path of the Hydra config folder."""
    for candidate in (_PACKAGE_DIR / "configs", _REPO_ROOT / "configs"):
        if (candidate / "hydra" / "default.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"vitiseg configs not found next to {_PACKAGE_DIR}")


def default_model_dir() -> Path:
    """Absolute path of the shipped default model folder (it may not exist yet)."""
    for candidate in (_PACKAGE_DIR / "models_default", _REPO_ROOT / "models" / "default"):
        if (candidate / "metadata.json").is_file():
            return candidate
    return _REPO_ROOT / "models" / "default"


def shared_data_dir() -> Path:
    """``../shared/data`` beside a source checkout (absent in a user's clone)."""
    return _REPO_ROOT.parent / "shared" / "data"


def inside_checkout(path: Path) -> bool:
    """Whether ``path`` lies in the source checkout this package runs from.

    Images derived from the shared (real) photos must never land in the repository.
    """
    if not (_REPO_ROOT / "pyproject.toml").is_file():
        return False  # an installed wheel: no checkout to protect
    path = Path(path).expanduser().resolve()
    return path == _REPO_ROOT or _REPO_ROOT in path.parents
