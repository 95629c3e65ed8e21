"""Write a synthetic dataset: images, masks, ``cases.csv`` and ``truth.json``.

Each case draws from its own generator seeded by ``(seed, index, mode)``, so the same
seed gives byte-identical files, a case does not depend on how many come before it, and
``n=10`` is a prefix of ``n=20``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitiseg.data.dataset_format import write_cases_csv
from vitiseg.io.atomic import write_bytes_atomic, write_json_atomic, write_png_atomic
from vitiseg.synth.painted import SkinPhotoSource, load_skin_photos, render_painted_case
from vitiseg.synth.procedural import render_procedural_case
from vitiseg.synth.records import SynthCase

log = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("procedural", "painted")
GENERATOR_NAME = "vitiseg-synth"


@dataclass(frozen=True)
class SynthSummary:
    """What a run wrote.

    Attributes:
        root: Dataset folder.
        n_cases: Cases written.
        n_patches: Patches over all cases.
        seconds: Wall time of the run.
    """

    root: Path
    n_cases: int
    n_patches: int
    seconds: float


def case_rng(seed: int, index: int, mode: str) -> np.random.Generator:
    """The generator of case ``index``: depends on nothing but (seed, index, mode)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([seed, index, MODES.index(mode)]))


def iter_cases(
    n: int,
    seed: int,
    mode: str = "procedural",
    size: int = 384,
    skin_photos: Path | None = None,
    subsets: Sequence[str] | None = None,
    photo_ids: Collection[str] | None = None,
) -> Iterator[SynthCase]:
    """Generate cases one by one in memory (nothing is written).

    Args:
        n: Number of cases.
        seed: Dataset seed, >= 0.
        mode: "procedural" (drawn from scratch) or "painted" (on real skin photos).
        size: Procedural: image side in pixels. Painted: longest side is reduced to it.
        skin_photos: Painted mode: folder with images/, masks/ and manifest.csv.
        subsets: Painted mode: use only photos of these manifest subsets (None: all).
        photo_ids: Painted mode: use only photos with these file stems (None: all).

    Yields:
        :class:`SynthCase` in index order.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    sources: list[SkinPhotoSource] = []
    if mode == "painted":
        if skin_photos is None:
            raise ValueError("painted mode needs skin_photos (a folder of photos with skin masks)")
        sources = load_skin_photos(skin_photos, size, subsets, photo_ids)
        order = np.random.default_rng(np.random.SeedSequence([seed, 1_000_003])).permutation(
            len(sources)
        )
    for index in range(n):
        rng = case_rng(seed, index, mode)
        if mode == "procedural":
            case_id = f"synth{seed}_{index:05d}"
            yield render_procedural_case(rng, case_id, f"synth-{seed}-{index}", size, index)
        else:
            # Walk a seeded permutation, so every source is used once before any repeats.
            source = sources[int(order[index % len(sources)])]
            case_id = f"painted{seed}_{index:05d}"
            yield render_painted_case(rng, case_id, source, size, index)


# What masks/lesion holds (see generate_dataset).
LESION_LABELS = ("exact", "outline", "both")


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    mode: str = "procedural",
    size: int = 384,
    skin_photos: str | Path | None = None,
    subsets: Sequence[str] | None = None,
    lesion_label: str = "exact",
    photo_ids: Collection[str] | None = None,
) -> SynthSummary:
    """Generate ``n`` cases into ``out_dir`` in the vitiseg dataset format, plus truth.json.

    Files already in ``out_dir`` with other names are left alone; ``cases.csv`` and
    ``truth.json`` are replaced and list only this run's cases. Every write is atomic.

    Args:
        out_dir: Dataset folder (created).
        n: Number of cases, >= 1.
        seed: Dataset seed, >= 0; the same seed gives byte-identical files.
        mode: "procedural" or "painted".
        size: See :func:`iter_cases`.
        skin_photos: Painted mode: source folder (images/, masks/, manifest.csv).
        subsets: Painted mode: use only photos of these manifest subsets (None: all).
        lesion_label: What ``masks/lesion`` holds: ``"exact"`` (the depigmented pixels)
            or ``"outline"`` (each patch's whole outline, pigment specks included, as
            annotators draw polygons on real photos); ``"both"`` writes the outline to
            ``masks/lesion`` and the exact pixels to ``masks/depigmented``, for models
            with a depigmented output. truth.json is exact either way.
        photo_ids: Painted mode: use only photos with these file stems (None: all).

    Returns:
        A summary of what was written.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if lesion_label not in LESION_LABELS:
        raise ValueError(f"lesion_label must be one of {LESION_LABELS}, got {lesion_label!r}")
    root = Path(out_dir)
    started = time.perf_counter()
    rows: list[dict[str, object]] = []
    truth: dict[str, object] = {}
    n_patches = 0
    sources = Path(skin_photos) if mode == "painted" and skin_photos is not None else None
    for case in iter_cases(n, seed, mode, size, sources, subsets, photo_ids):
        case_id = case.truth.case_id
        write_bytes_atomic(root / "images" / f"{case_id}.jpg", case.jpeg)
        lesion = case.lesion if lesion_label == "exact" else case.extent
        write_png_atomic(root / "masks" / "lesion" / f"{case_id}.png", lesion)
        if lesion_label == "both":
            write_png_atomic(root / "masks" / "depigmented" / f"{case_id}.png", case.lesion)
        write_png_atomic(root / "masks" / "skin" / f"{case_id}.png", case.skin)
        rows.append(case.truth.csv_row())
        truth[case_id] = case.truth.to_json()
        n_patches += len(case.truth.patches)
        if len(rows) % 50 == 0:
            log.info("%d/%d cases", len(rows), n)
    write_cases_csv(root / "cases.csv", rows)
    header: dict[str, object] = {"generator": GENERATOR_NAME, "mode": mode, "seed": seed}
    header["size"] = size
    header["lesion_label"] = lesion_label
    if sources is not None:
        # The folder's name only: absolute paths would tie the file to one machine.
        header["skin_photos"] = sources.name
        header["subsets"] = None if subsets is None else list(subsets)
        header["photos"] = "all" if photo_ids is None else f"{len(photo_ids)} listed"
    write_json_atomic(root / "truth.json", {**header, "cases": truth})
    seconds = time.perf_counter() - started
    log.info("%s: %d %s cases, %d patches in %.1f s", root, n, mode, n_patches, seconds)
    return SynthSummary(root=root, n_cases=n, n_patches=n_patches, seconds=seconds)
