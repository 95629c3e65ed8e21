"""vitiseg-synth: synthetic vitiligo photos with exact masks and VASI truth.

::

    vitiseg-synth out=DIR n=N seed=S [mode=procedural|painted] [size=384]
                  [skin_photos=PATH] [subsets=[...]] [split_file=RUN/split.json split_part=val]
                  [contact_sheet=PNG]

Exit code 0 on success, 2 when the job cannot start (bad settings, no source photos).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vitiseg.cli._hydra import output_dir, run_hydra
from vitiseg.data.splits import load_split
from vitiseg.io.atomic import write_json_atomic
from vitiseg.paths import inside_checkout, shared_data_dir
from vitiseg.synth import generate_dataset, make_contact_sheet

log = logging.getLogger(__name__)


def _path(value: object) -> Path | None:
    return None if value in (None, "") else Path(str(value)).expanduser().resolve()


def _split_photo_ids(cfg: DictConfig, skin_photos: Path) -> set[str] | None:
    """The photo ids of one part of a training run's split, for the skin photo folder.

    Painted photos for evaluation should sit on skin the model never trained on: the
    run's split.json lists its skin-photo cases under the folder's name.
    """
    split_file = _path(cfg.get("split_file"))
    if split_file is None:
        return None
    part = str(cfg.get("split_part", "val"))
    split = load_split(split_file)
    if skin_photos.name not in split:
        raise ValueError(
            f"{split_file}: no split for skin photo folder {skin_photos.name!r} "
            f"(it has {', '.join(sorted(split)) or 'none'})"
        )
    if part not in split[skin_photos.name]:
        raise ValueError(f"{split_file}: {skin_photos.name!r} has no part {part!r}")
    photo_ids = set(split[skin_photos.name][part])
    if not photo_ids:
        raise ValueError(f"{split_file}: part {part!r} of {skin_photos.name!r} is empty")
    log.info("painted photos drawn from the %d %s photos of %s", len(photo_ids), part, split_file)
    return photo_ids


def task(cfg: DictConfig) -> int:
    out = _path(cfg.out)
    mode = str(cfg.mode)
    skin_photos = None
    subsets = None
    if mode == "painted":
        skin_photos = _path(cfg.skin_photos) or shared_data_dir() / "skin-photos"
        if not skin_photos.is_dir():
            log.error("painted mode: skin photo folder not found: %s", skin_photos)
            return 2
        # Images derived from real photos must never land in the repository.
        if inside_checkout(out):
            log.error(
                "painted mode: %s is inside the source checkout; real-derived images "
                "must stay out of the repository, choose a folder outside it",
                out,
            )
            return 2
        if cfg.get("subsets"):
            chosen = cfg.subsets
            names = OmegaConf.to_container(chosen) if OmegaConf.is_list(chosen) else [chosen]
            subsets = [str(name) for name in names]
    try:
        photo_ids = _split_photo_ids(cfg, skin_photos) if skin_photos is not None else None
        summary = generate_dataset(
            out,
            n=int(cfg.n),
            seed=int(cfg.seed),
            mode=mode,
            size=int(cfg.size),
            skin_photos=skin_photos,
            subsets=subsets,
            lesion_label=str(cfg.get("lesion_label", "exact")),
            photo_ids=photo_ids,
        )
    except (ValueError, FileNotFoundError) as error:
        log.error("%s", error)
        return 2
    sheet = _path(cfg.get("contact_sheet"))
    if sheet is not None:
        make_contact_sheet(out, sheet, count=int(cfg.contact_sheet_count))
    write_json_atomic(
        output_dir() / "synth_summary.json",
        {
            "out": str(out),
            "mode": mode,
            "n": summary.n_cases,
            "seed": int(cfg.seed),
            "size": int(cfg.size),
            "patches": summary.n_patches,
            "seconds": round(summary.seconds, 2),
            "contact_sheet": None if sheet is None else str(sheet),
        },
    )
    log.info("wrote %d cases to %s in %.1f s", summary.n_cases, out, summary.seconds)
    return 0


def main() -> None:
    run_hydra("synth", task)


if __name__ == "__main__":
    main()
