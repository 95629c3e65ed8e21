#!/usr/bin/env python3
"""End-to-end CPU benchmark: vitiseg against the peer a user would otherwise write.

The same synthetic JPEG photos (written to disk, so decoding counts) are scored end to
end by every configuration: decode, network, probabilities at the photo's size, masks,
``vasi.score_region``, and writing the lesion and skin mask PNGs plus an overlay JPEG.

Configurations:

- ``vitiseg-<backend>``: vitiseg's :class:`~vitiseg.inference.predictor.Predictor` at the
  model's working resolution (photos are shrunk to ``preprocessing.long_side``, as in
  training; probabilities are resized back to the photo).
- ``vitiseg-<backend>-fullres``: the same at the photo's full resolution (``long_side=0``),
  so the comparison with the peer is fair both ways.
- ``peer``: a segmentation_models_pytorch ``Unet("resnet34", encoder_weights=None,
  classes=2)`` in eager PyTorch (fp32, NCHW, ``torch.inference_mode``) on 512-px tiles over
  the full-resolution photo, overlapping by a quarter and simply averaged. It is installed
  for the benchmark only: ``pip install segmentation-models-pytorch`` (nothing is
  downloaded: no pretrained weights).

Every configuration and photo size runs in a fresh subprocess, so peak resident memory
(``VmHWM``) belongs to that configuration alone. The same run measures this machine's
fp32 matrix-multiply peak (best ``torch.matmul`` of 2048² and 4096² matrices with the same
thread count), the models' GFLOPs per megapixel of network input
(``torch.utils.flop_counter``: a multiply-add is 2 FLOPs) and the GFLOP/s reached inside
the network (FLOPs run / time spent in the network).

With ``--val-dataset`` every configuration is also scored for lesion Dice on the same
validation photos (mean over cases with a lesion mask; both-empty counts as 1).

Example (the real comparison; minutes, not seconds)::

    .venv/bin/python scripts/benchmark.py --checkpoint models/default --backend torch,onnx \\
        --sizes 1024x768,4000x3000 --n-images 5 \\
        --val-dataset DATA/vitiligo-web --split-file RUN/split.json --split val \\
        --peer-weights PEER.pt --results docs/benchmark_results.md

Smoke test at tiny sizes::

    .venv/bin/python scripts/benchmark.py --checkpoint TINY_MODEL --sizes 320x240 \\
        --n-images 2 --peer-tile 128 --results /tmp/bench.md
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import logging
import math
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger("benchmark")

RESULT_PREFIX = "BENCHMARK-RESULT "
LATEST_BEGIN = "<!-- benchmark:latest:begin -->"
LATEST_END = "<!-- benchmark:latest:end -->"
HISTORY_BEGIN = "<!-- benchmark:history:begin -->"
HISTORY_END = "<!-- benchmark:history:end -->"
HISTORY_HEADER = (
    "| date (UTC) | model | threads | matmul peak GFLOP/s | photo | best vitiseg config "
    "| images/s | × peer | % of peak in model | peak RSS MB | lesion Dice vitiseg / peer |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)
REGION = "trunk"  # any region works: the timing does not depend on its hand units


# ---------------------------------------------------------------- configurations
@dataclass(frozen=True)
class RunConfig:
    """One way of scoring a photo.

    Attributes:
        label: Name in the tables.
        system: ``"vitiseg"`` or ``"peer"``.
        backend: vitiseg backend name (``torch``, ``onnx``, ``onnx-int8``); ``torch`` for
            the peer.
        long_side: Working long side in px; None = the model's, 0 = full resolution.
        tile: Tile side in px.
        batch_size: Tiles per forward pass.
    """

    label: str
    system: str
    backend: str
    long_side: int | None
    tile: int
    batch_size: int


@dataclass
class Settings:
    """What a worker needs besides its configuration (JSON-serialisable)."""

    checkpoint: str
    threads: int
    out_dir: str
    peer_weights: str | None = None
    peer_overlap: float = 0.25
    max_seconds: float = 300.0
    warmup: int = 1
    onnx_memory_arena: bool = False  # as infer.onnx_memory_arena
    pipeline: str = "shared"


def parse_size(text: str) -> tuple[int, int]:
    """``"4000x3000"`` -> (width, height)."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"size must look like 4000x3000, got {text!r}")
    return int(width), int(height)


# ---------------------------------------------------------------- synthetic photos
def make_photo(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A camera-like photo: shaded background, a skin area with pale patches, sensor noise.

    Returns:
        (height, width, 3) uint8 RGB.
    """
    small_w, small_h = max(8, width // 8), max(8, height // 8)
    yy, xx = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    background = np.stack(
        [
            60 + 40 * xx / small_w,
            70 + 30 * yy / small_h,
            80 + 20 * (xx + yy) / (small_w + small_h),
        ],
        axis=-1,
    )
    small = background.astype(np.uint8)
    skin_tone = rng.uniform([90, 55, 35], [230, 180, 150]).astype(int).tolist()
    centre = (int(small_w * rng.uniform(0.4, 0.6)), int(small_h * rng.uniform(0.4, 0.6)))
    axes = (int(small_w * 0.38), int(small_h * 0.42))
    cv2.ellipse(small, centre, axes, float(rng.uniform(0, 180)), 0, 360, skin_tone, -1)
    pale = np.clip(np.asarray(skin_tone) * 0.35 + 160, 0, 255).astype(int).tolist()
    for _ in range(int(rng.integers(2, 7))):
        blob_centre = (
            int(centre[0] + rng.uniform(-0.6, 0.6) * axes[0]),
            int(centre[1] + rng.uniform(-0.6, 0.6) * axes[1]),
        )
        blob_axes = (
            int(rng.uniform(0.03, 0.12) * small_w) + 1,
            int(rng.uniform(0.03, 0.1) * small_h) + 1,
        )
        cv2.ellipse(small, blob_centre, blob_axes, float(rng.uniform(0, 180)), 0, 360, pale, -1)
    photo = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    photo = cv2.GaussianBlur(photo, (0, 0), sigmaX=max(1.0, width / 1500))
    noise = rng.integers(-6, 7, size=photo.shape, dtype=np.int16)
    return np.clip(photo.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def write_photos(folder: Path, size: tuple[int, int], count: int, seed: int) -> list[Path]:
    """Write ``count`` JPEG photos of ``size`` (width, height); reuse ones already there."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for index in range(count):
        path = folder / f"photo_{width}x{height}_{seed}_{index:03d}.jpg"
        if not path.is_file():
            rng = np.random.default_rng([seed, width, height, index])
            rgb = make_photo(width, height, rng)
            cv2.imwrite(
                str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
            )
        paths.append(path)
    return paths


# ---------------------------------------------------------------- runners (worker side)
class TimedBackend:
    """Wraps a tile runner to add up the seconds spent in it and the tiles it ran."""

    def __init__(self, run_batch: Callable[[np.ndarray], np.ndarray]) -> None:
        self.run_batch = run_batch
        # Passed on so the predictor takes the same one-tile path as vitiseg-score.
        self.any_size_stride = getattr(run_batch, "any_size_stride", None)
        self.seconds = 0.0
        self.tiles = 0
        self.tile_pixels = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        out = self.run_batch(batch)
        self.seconds += time.perf_counter() - started
        self.tiles += int(batch.shape[0])
        # A photo that fits in one tile runs at its stride-padded size, not the whole tile.
        self.tile_pixels += int(batch.shape[0] * batch.shape[2] * batch.shape[3])
        return out


class VitisegRunner:
    """vitiseg's own predictor, with its backend timed."""

    def __init__(self, config: RunConfig, settings: Settings) -> None:
        from vitiseg.inference.onnx_backend import make_backend
        from vitiseg.inference.predictor import Predictor
        from vitiseg.models.model_folder import load_metadata

        folder = Path(settings.checkpoint)
        backend = make_backend(
            folder,
            config.backend,
            "cpu",
            settings.threads,
            tile=config.tile,
            memory_arena=settings.onnx_memory_arena,
        )
        self.timer = TimedBackend(backend)
        self.predictor = Predictor(
            self.timer,
            load_metadata(folder),
            long_side=config.long_side,
            tile=config.tile,
            batch_size=config.batch_size,
        )

    def masks(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 -> (skin, lesion) (H, W) bool."""
        return self.predictor.masks(self.predictor.predict(rgb), rgb)


class PeerRunner:
    """What a user would write with segmentation_models_pytorch: eager fp32 tiles, averaged.

    ImageNet normalisation (as the encoder expects), 512-px tiles at full resolution,
    overlapping by ``overlap`` and averaged with equal weights, sigmoid, threshold 0.5,
    lesion kept inside skin like vitiseg's masks.
    """

    def __init__(self, config: RunConfig, settings: Settings) -> None:
        import torch

        self.torch = torch
        self.model = build_peer()
        if settings.peer_weights:
            state = torch.load(settings.peer_weights, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        self.model.eval()
        self.tile = config.tile
        self.long_side = config.long_side or 0
        self.batch_size = config.batch_size
        self.overlap = settings.peer_overlap
        self.mean = np.asarray((0.485, 0.456, 0.406), np.float32)
        self.std = np.asarray((0.229, 0.224, 0.225), np.float32)
        self.timer = TimedBackend(self._run)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.torch.sigmoid(self.model(self.torch.from_numpy(batch))).numpy()

    def _origins(self, length: int) -> list[int]:
        if length <= self.tile:
            return [0]
        stride = max(1, int(self.tile * (1 - self.overlap)))
        return [*range(0, length - self.tile, stride), length - self.tile]

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (2, H, W) float32 probabilities."""
        height, width = rgb.shape[:2]
        work = rgb
        if self.long_side and max(height, width) > self.long_side:
            scale = self.long_side / max(height, width)
            size = (round(width * scale), round(height * scale))
            work = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        image = ((work.astype(np.float32) / 255.0 - self.mean) / self.std).transpose(2, 0, 1)
        work_h, work_w = image.shape[1:]
        pad_h, pad_w = max(0, self.tile - work_h), max(0, self.tile - work_w)
        if pad_h or pad_w:
            mode = "reflect" if work_h > pad_h and work_w > pad_w else "edge"
            image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        total = np.zeros((2, *image.shape[1:]), np.float32)
        count = np.zeros(image.shape[1:], np.float32)
        boxes = [
            (y, x) for y in self._origins(image.shape[1]) for x in self._origins(image.shape[2])
        ]
        for start in range(0, len(boxes), self.batch_size):
            chunk = boxes[start : start + self.batch_size]
            batch = np.stack([image[:, y : y + self.tile, x : x + self.tile] for y, x in chunk])
            for (y, x), out in zip(chunk, self.timer(np.ascontiguousarray(batch)), strict=True):
                total[:, y : y + self.tile, x : x + self.tile] += out
                count[y : y + self.tile, x : x + self.tile] += 1
        probabilities = (total / count)[:, :work_h, :work_w]
        if (work_h, work_w) != (height, width):
            probabilities = np.stack(
                [
                    cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)
                    for p in probabilities
                ]
            )
        return probabilities

    def masks(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = self.probabilities(rgb)
        lesion = probabilities[1] >= 0.5
        return (probabilities[0] >= 0.5) | lesion, lesion


def build_peer():
    """The peer network: smp U-Net, ResNet-34 encoder, random init, skin + lesion outputs."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError as exc:  # not a vitiseg dependency
        raise SystemExit(
            "the peer needs segmentation-models-pytorch: .venv/bin/pip install "
            "segmentation-models-pytorch (or pass --no-peer)"
        ) from exc
    return smp.Unet("resnet34", encoder_weights=None, in_channels=3, classes=2)


def make_runner(config: RunConfig, settings: Settings):
    return (
        PeerRunner(config, settings)
        if config.system == "peer"
        else VitisegRunner(config, settings)
    )


# ---------------------------------------------------------------- end-to-end scoring
def write_outputs(
    out_dir: Path, stem: str, rgb: np.ndarray, skin: np.ndarray, lesion: np.ndarray
) -> None:
    """What the scoring command writes per photo: two mask PNGs and an overlay JPEG."""
    from vitiseg.io.atomic import write_jpeg_atomic, write_png_atomic
    from vitiseg.report import draw_overlay

    write_png_atomic(
        out_dir / "masks" / "lesion" / f"{stem}.png", lesion.view(np.uint8) * np.uint8(255)
    )
    write_png_atomic(
        out_dir / "masks" / "skin" / f"{stem}.png", skin.view(np.uint8) * np.uint8(255)
    )
    write_jpeg_atomic(out_dir / "overlays" / f"{stem}.jpg", draw_overlay(rgb, skin, lesion))


def score_with_vitiseg_score(runner: VitisegRunner, path: Path, out_dir: Path) -> dict[str, float]:
    """vitiseg's own per-photo scorer (what ``vitiseg-score`` runs): besides the shared
    steps it also checks photo quality and writes the report's thumbnails."""
    from vitiseg.scoring.inputs import PhotoInput
    from vitiseg.scoring.runner import ScoreSettings
    from vitiseg.scoring.runner import score_photo as vitiseg_score_photo

    photo = PhotoInput(key=path.stem, image=path.name, path=path, region=REGION)
    model_before = runner.timer.seconds
    started = time.perf_counter()
    record = vitiseg_score_photo(photo, runner.predictor, out_dir, ScoreSettings(), "benchmark")
    total = time.perf_counter() - started
    if not record.ok:
        raise RuntimeError(f"{path}: {record.error}")
    return {"model_s": runner.timer.seconds - model_before, "total_s": total, "vasi": record.vasi}


def score_photo(
    runner, path: Path, out_dir: Path, vasi_config, pipeline: str = "shared"
) -> dict[str, float]:
    """Score one photo end to end; returns seconds per stage (and the VASI, as a check).

    ``pipeline="score"`` runs vitiseg configurations through vitiseg's own scorer (stages
    other than the network are then not separated); the peer always runs the shared steps.
    """
    from vitiseg.io.images import read_rgb
    from vitiseg.vasi import score_region

    if pipeline == "score" and isinstance(runner, VitisegRunner):
        return score_with_vitiseg_score(runner, path, out_dir)
    model_before = runner.timer.seconds
    started = time.perf_counter()
    rgb = read_rgb(path)
    decoded = time.perf_counter()
    skin, lesion = runner.masks(rgb)
    predicted = time.perf_counter()
    score = score_region(skin, lesion, REGION, config=vasi_config)
    scored = time.perf_counter()
    write_outputs(out_dir, path.stem, rgb, skin, lesion)
    written = time.perf_counter()
    model = runner.timer.seconds - model_before
    return {
        "decode_s": decoded - started,
        "model_s": model,
        "predict_other_s": predicted - decoded - model,
        "vasi_s": scored - predicted,
        "write_s": written - scored,
        "total_s": written - started,
        "vasi": score.vasi,
    }


def _memory_mb(key: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process in MB (Linux), else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def set_threads(threads: int) -> None:
    """Thread count for OpenCV, and for torch when the runner loaded it (a torch-free
    path must not pay for importing torch here; OMP_NUM_THREADS covers a later import)."""
    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def worker_time(config: RunConfig, settings: Settings, photos: Sequence[str]) -> dict[str, Any]:
    """Time one configuration on photos of one size (run in a fresh process)."""
    from vitiseg.vasi import VasiConfig

    runner = make_runner(config, settings)
    set_threads(settings.threads)
    vasi_config = VasiConfig()
    out_dir = Path(settings.out_dir)
    rss_loaded = _memory_mb("VmRSS")
    paths = [Path(p) for p in photos]
    warm = [
        score_photo(runner, paths[i % len(paths)], out_dir, vasi_config, settings.pipeline)
        for i in range(settings.warmup)
    ]
    runner.timer.seconds, runner.timer.tiles, runner.timer.tile_pixels = 0.0, 0, 0
    rows: list[dict[str, float]] = []
    started = time.perf_counter()
    for path in paths:
        rows.append(score_photo(runner, path, out_dir, vasi_config, settings.pipeline))
        if time.perf_counter() - started > settings.max_seconds:
            log.warning("%s: time budget reached after %d photos", config.label, len(rows))
            break
    stages = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "vasi"}
    return {
        "n_images": len(rows),
        "seconds": float(sum(r["total_s"] for r in rows)),
        "stages_s": stages,
        "first_image_s": warm[0]["total_s"] if warm else None,
        "model_seconds": runner.timer.seconds,
        "tiles": runner.timer.tiles,
        "tile_pixels": runner.timer.tile_pixels,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": _memory_mb("VmHWM"),
    }


def validation_cases(dataset: Path, split_file: Path | None, split: str) -> list:
    """Cases of ``dataset`` with a lesion mask, restricted to ``split``."""
    from vitiseg.data.dataset_format import load_dataset

    cases = load_dataset(dataset)
    if split_file is not None:
        splits = json.loads(split_file.read_text())
        key = dataset.name if dataset.name in splits else None
        if key is None and len(splits) == 1:
            key = next(iter(splits))
        if key is None:
            raise SystemExit(f"{split_file}: no entry for {dataset.name}; has {sorted(splits)}")
        wanted = set(splits[key].get(split, []))
        cases = [c for c in cases if c.case_id in wanted]
    elif any(c.split for c in cases):
        cases = [c for c in cases if c.split == split]
    else:
        log.warning("%s: no split file and no split column; scoring every case", dataset)
    return [c for c in cases if c.lesion_mask_path is not None]


def worker_dice(
    config: RunConfig, settings: Settings, dataset: str, split_file: str | None, split: str
) -> dict[str, Any]:
    """Mean lesion Dice of one configuration on the validation cases."""
    from vitiseg.io.images import read_mask, read_rgb
    from vitiseg.metrics.segmentation import score_masks

    runner = make_runner(config, settings)
    set_threads(settings.threads)
    cases = validation_cases(Path(dataset), Path(split_file) if split_file else None, split)
    if not cases:
        raise SystemExit(f"{dataset}: no validation cases with a lesion mask")
    dice, nonempty = [], []
    for case in cases:
        _, lesion = runner.masks(read_rgb(case.image_path))
        truth = read_mask(case.lesion_mask_path)
        scores = score_masks(lesion, truth, with_hd95=False)
        dice.append(scores.dice)
        if truth.any():
            nonempty.append(scores.dice)
    return {
        "lesion_dice": float(np.mean(dice)),
        "lesion_dice_nonempty": float(np.mean(nonempty)) if nonempty else None,
        "n_cases": len(dice),
        "n_nonempty": len(nonempty),
    }


def worker_peak(threads: int) -> dict[str, Any]:
    """Best fp32 matmul GFLOP/s with ``threads`` threads (2n³ FLOPs per n×n product)."""
    import torch

    set_threads(threads)
    best = 0.0
    by_size = {}
    for n in (2048, 4096):
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        for _ in range(2):
            torch.matmul(a, b, out=out)
        times = []
        for _ in range(5 if n <= 2048 else 3):
            started = time.perf_counter()
            torch.matmul(a, b, out=out)
            times.append(time.perf_counter() - started)
        by_size[n] = 2 * n**3 / min(times) / 1e9
        best = max(best, by_size[n])
    return {"matmul_gflops": best, "by_size": by_size}


def worker_profile(
    config: RunConfig, settings: Settings, photo: str, report: str
) -> dict[str, Any]:
    """cProfile one photo end to end (after a warm-up) and write the top functions."""
    from vitiseg.vasi import VasiConfig

    runner = make_runner(config, settings)
    set_threads(settings.threads)
    vasi_config = VasiConfig()
    out_dir = Path(settings.out_dir)
    score_photo(runner, Path(photo), out_dir, vasi_config, settings.pipeline)
    profiler = cProfile.Profile()
    profiler.enable()
    stages = score_photo(runner, Path(photo), out_dir, vasi_config, settings.pipeline)
    profiler.disable()
    with open(report, "w", encoding="utf-8") as stream:
        stream.write(f"# {config.label} on {Path(photo).name}; stages (s): {json.dumps(stages)}\n")
        stats = pstats.Stats(profiler, stream=stream).strip_dirs()
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    return {"stages_s": stages, "report": report}


def run_worker(payload: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(**payload["settings"])
    config = RunConfig(**payload["config"]) if payload.get("config") else None
    mode = payload["mode"]
    if mode == "peak":
        return worker_peak(settings.threads)
    if mode == "time":
        return worker_time(config, settings, payload["photos"])
    if mode == "dice":
        return worker_dice(
            config, settings, payload["dataset"], payload.get("split_file"), payload["split"]
        )
    if mode == "profile":
        return worker_profile(config, settings, payload["photo"], payload["report"])
    raise ValueError(f"unknown worker mode {mode!r}")


# ---------------------------------------------------------------- parent side
def spawn(payload: dict[str, Any], threads: int, timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(payload)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode or not lines:
        raise RuntimeError(
            f"worker {payload['mode']} {payload.get('config', {}).get('label', '')} failed "
            f"(exit {completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def count_flops(model, tile: int) -> float:
    """FLOPs of one forward pass on a (1, 3, tile, tile) input (multiply-add = 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, tile, tile))
    return float(counter.get_total_flops())


def machine_description(threads: int) -> str:
    import onnxruntime
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {threads} threads; Python "
        f"{platform.python_version()}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}"
    )


def build_configs(args: argparse.Namespace, model_tile: int) -> list[RunConfig]:
    configs = []
    tile = args.tile or model_tile
    for backend in args.backend:
        configs.append(
            RunConfig(f"vitiseg-{backend}", "vitiseg", backend, None, tile, args.batch_size)
        )
    if args.full_res:
        for backend in args.backend:
            configs.append(
                RunConfig(
                    f"vitiseg-{backend}-fullres", "vitiseg", backend, 0, tile, args.batch_size
                )
            )
    if args.peer:
        configs.append(
            RunConfig(
                "peer", "peer", "torch", args.peer_long_side, args.peer_tile, args.peer_batch_size
            )
        )
    return configs


def prepare_backends(args: argparse.Namespace, tile: int) -> dict[str, Any]:
    """Export (and quantise) before timing, so one-off work is not counted per photo."""
    from vitiseg.inference.onnx_backend import calibration_tiles, ensure_onnx, quantize_onnx
    from vitiseg.models.model_folder import load_metadata

    notes: dict[str, Any] = {}
    if "onnx" in args.backend or "onnx-int8" in args.backend:
        notes["onnx"] = str(ensure_onnx(args.checkpoint, tile))
    if "onnx-int8" in args.backend:
        if args.int8_calibration:
            from vitiseg.io.images import read_rgb

            cases = validation_cases(args.int8_calibration, args.split_file, "train")
            cases = cases[: args.int8_calibration_n] or []
            if not cases:
                raise SystemExit(f"{args.int8_calibration}: no calibration cases")
            metadata = load_metadata(args.checkpoint)
            tiles = calibration_tiles((read_rgb(c.image_path) for c in cases), metadata, tile)
            path = quantize_onnx(
                args.checkpoint,
                tiles,
                calibration_source=f"{args.int8_calibration.name}: {len(cases)} train photos",
            )
        else:
            path = ensure_onnx(args.checkpoint, tile, int8=True)
        notes["onnx-int8"] = str(path)
    return notes


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def assemble_rows(
    configs: Sequence[RunConfig],
    sizes: Sequence[tuple[int, int]],
    timings: dict[tuple[str, str], dict[str, Any]],
    flops: dict[str, float],
    dice: dict[str, dict[str, Any] | None],
    peak: float,
    working_side: int,
) -> list[dict[str, Any]]:
    rows = []
    for width, height in sizes:
        size = f"{width}x{height}"
        peer = timings.get(("peer", size))
        peer_ips = peer["n_images"] / peer["seconds"] if peer else None
        for config in configs:
            timing = timings.get((config.label, size))
            if timing is None:
                continue
            ips = timing["n_images"] / timing["seconds"]
            megapixels = width * height / 1e6
            tile_flops = flops[config.system]
            # Convolutions cost in proportion to their input's pixels.
            model_flops = tile_flops * timing["tile_pixels"] / config.tile**2
            achieved = (
                model_flops / timing["model_seconds"] / 1e9 if timing["model_seconds"] else None
            )
            if config.long_side is None:
                scale = min(1.0, working_side / max(width, height))
                network = f"{round(width * scale)}x{round(height * scale)}"
            elif config.long_side:
                scale = min(1.0, config.long_side / max(width, height))
                network = f"{round(width * scale)}x{round(height * scale)}"
            else:
                network = f"{size} (full)"
            config_dice = dice.get(config.label) or {}
            rows.append(
                {
                    "config": config.label,
                    "photo": size,
                    "network_input": network,
                    "tile": config.tile,
                    "images_per_s": ips,
                    "ms_per_mp": 1000 / ips / megapixels,
                    "peak_rss_mb": timing["peak_rss_mb"],
                    "rss_loaded_mb": timing["rss_loaded_mb"],
                    "gflop_per_mp": tile_flops / 1e9 / (config.tile**2 / 1e6),
                    "gflop_per_photo": model_flops / 1e9 / timing["n_images"],
                    "model_share": timing["model_seconds"] / timing["seconds"],
                    "model_gflops": achieved,
                    "peak_share": achieved / peak if achieved else None,
                    "lesion_dice": config_dice.get("lesion_dice"),
                    "speed_vs_peer": ips / peer_ips
                    if peer_ips and config.system != "peer"
                    else None,
                    "n_images": timing["n_images"],
                    "stages_s": timing["stages_s"],
                }
            )
    return rows


def render_tables(rows: Sequence[dict[str, Any]], peer_dice: float | None) -> str:
    header = (
        "| configuration | photo | network input | images/s | ms/MP | peak RSS MB "
        "| GFLOP/MP (model) | GFLOP/photo | network share of time | network GFLOP/s "
        "| % of matmul peak | lesion Dice | Dice − peer | × peer images/s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for row in rows:
        dice_gap = (
            row["lesion_dice"] - peer_dice
            if row["lesion_dice"] is not None and peer_dice is not None and row["config"] != "peer"
            else None
        )
        lines.append(
            f"| {row['config']} | {row['photo']} | {row['network_input']} | "
            f"{fmt(row['images_per_s'], 3)} | {fmt(row['ms_per_mp'], 0)} | "
            f"{fmt(row['peak_rss_mb'], 0)} | {fmt(row['gflop_per_mp'], 1)} | "
            f"{fmt(row['gflop_per_photo'], 1)} | {fmt(row['model_share'] * 100, 0)} % | "
            f"{fmt(row['model_gflops'], 1)} | "
            f"{fmt(row['peak_share'] * 100 if row['peak_share'] else None, 0)} % | "
            f"{fmt(row['lesion_dice'], 3)} | {fmt(dice_gap, 3)} | "
            f"{fmt(row['speed_vs_peer'], 1)} |"
        )
    stages = [
        "| configuration | photo | decode | network | tiling + resize | VASI | write outputs "
        "| total (ms per photo) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = ("decode_s", "model_s", "predict_other_s", "vasi_s", "write_s", "total_s")
    for row in rows:
        cells = [fmt(row["stages_s"][k] * 1000, 0) if k in row["stages_s"] else "–" for k in keys]
        stages.append(f"| {row['config']} | {row['photo']} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines) + "\n\nWhere the time goes (mean per photo, ms):\n\n" + "\n".join(stages)
    )


def update_results(path: Path, latest: str, history_row: str) -> None:
    """Replace the latest-run block and append one history row in the results file."""
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        text = (
            "# Benchmark results\n\nWritten by `scripts/benchmark.py`.\n\n## Latest run\n\n"
            f"{LATEST_BEGIN}\n{LATEST_END}\n\n## History\n\n{HISTORY_BEGIN}\n"
            f"{HISTORY_HEADER}\n{HISTORY_END}\n"
        )
    for marker in (LATEST_BEGIN, LATEST_END, HISTORY_BEGIN, HISTORY_END):
        if marker not in text:
            raise SystemExit(f"{path}: marker {marker} missing; fix the file or pass another")
    head, rest = text.split(LATEST_BEGIN, 1)
    _, tail = rest.split(LATEST_END, 1)
    text = f"{head}{LATEST_BEGIN}\n{latest.strip()}\n{LATEST_END}{tail}"
    head, rest = text.split(HISTORY_END, 1)
    if HISTORY_HEADER.splitlines()[0] not in head:
        head = head.rstrip("\n") + "\n" + HISTORY_HEADER + "\n"
    row = f"{history_row}\n" if history_row else ""
    text = f"{head.rstrip(chr(10))}\n{row}{HISTORY_END}{rest}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def history_row(rows, sizes, args, model_id, peak, dice) -> str:
    width, height = max(sizes, key=lambda s: s[0] * s[1])
    size = f"{width}x{height}"
    candidates = [r for r in rows if r["photo"] == size and not r["config"].startswith("peer")]
    if not candidates:
        return ""
    best = max(candidates, key=lambda r: r["images_per_s"])
    peer_dice = (dice.get("peer") or {}).get("lesion_dice")
    share = best["peak_share"] * 100 if best["peak_share"] else None
    return (
        f"| {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} | {model_id} | {args.threads} | "
        f"{peak:.0f} | {size} | {best['config']} | {fmt(best['images_per_s'], 3)} | "
        f"{fmt(best['speed_vs_peer'], 1)} | {fmt(share, 0)} | {fmt(best['peak_rss_mb'], 0)} | "
        f"{fmt(best['lesion_dice'], 3)} / {fmt(peer_dice, 3)} |"
    )


def summary_text(args, metadata, tile, peak, flops, dice, dice_note, notes, table) -> str:
    """The latest-run block of the results file: settings, notes, then the tables."""
    peer_at = f"long side {args.peer_long_side} px" if args.peer_long_side else "full resolution"
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"Run {now:%Y-%m-%d %H:%M} UTC on {machine_description(args.threads)}.",
        "",
        f"- Model: `{metadata.model_id}` ({metadata.arch}, working long side "
        f"{metadata.preprocessing.long_side} px, {tile} px tiles); peer: "
        + (
            f"smp Unet resnet34, {args.peer_tile} px tiles at {peer_at}."
            if args.peer
            else "not run."
        ),
        f"- fp32 matmul peak measured in this run: {peak['matmul_gflops']:.1f} GFLOP/s ("
        + ", ".join(f"{n}²: {v:.1f}" for n, v in peak["by_size"].items())
        + ").",
        "- GFLOP per tile: " + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in flops.items()) + ".",
        f"- {args.n_images} timed photos per size after {args.warmup} warm-up; synthetic JPEGs "
        "(quality 92) decoded from disk; peak RSS per configuration and size in a fresh "
        "process; ONNX Runtime's memory arena "
        + ("on (`--onnx-arena`)." if args.onnx_memory_arena else "off (the default)."),
        "- `vitiseg-<backend>` shrinks photos to the model's working long side; `-fullres` "
        "and the peer run the photo's full resolution.",
        "- Pipeline: "
        + (
            "vitiseg configurations run `vitiseg-score`'s own per-photo scorer (with quality "
            "checks and thumbnails); the peer runs decode, masks, VASI, mask PNGs and overlay."
            if args.pipeline == "score"
            else "every configuration runs the same decode, masks, VASI, mask PNGs and "
            "overlay steps; only the inference differs."
        ),
        f"- {dice_note}.",
    ]
    for label, result in dice.items():
        if result:
            lines.append(
                f"- {label}: lesion Dice {fmt(result['lesion_dice'], 3)} over "
                f"{result['n_cases']} cases ({fmt(result['lesion_dice_nonempty'], 3)} over "
                f"{result['n_nonempty']} with lesions)"
            )
    if dice.get("vitiseg-onnx") and dice.get("vitiseg-onnx-int8"):
        loss = dice["vitiseg-onnx"]["lesion_dice"] - dice["vitiseg-onnx-int8"]["lesion_dice"]
        verdict = "below 0.01: int8 may be recommended" if loss < 0.01 else "keep fp32"
        lines.append(f"- int8 lesion Dice loss against ONNX fp32: {loss:.4f} ({verdict}).")
    if args.peer and not args.peer_weights:
        lines.append(
            "- Peer Dice n/a: no --peer-weights given; an untrained peer's masks are noise, "
            "so only its speed is comparable."
        )
    lines += [f"- {name} file: `{Path(path).name}`" for name, path in notes.items()]
    return "\n".join(lines) + "\n\n" + table + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from vitiseg.inference.onnx_backend import BACKENDS
    from vitiseg.paths import default_model_dir

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=default_model_dir(),
        help="vitiseg model folder (default: the shipped model)",
    )
    parser.add_argument(
        "--backend",
        default="torch,onnx",
        help=f"comma-separated vitiseg backends from {', '.join(BACKENDS)}",
    )
    parser.add_argument(
        "--sizes", default="1024x768,4000x3000", help="comma-separated photo sizes WIDTHxHEIGHT"
    )
    parser.add_argument("--n-images", type=int, default=5, help="timed photos per size")
    parser.add_argument("--warmup", type=int, default=1, help="untimed photos first")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tile", type=int, default=None, help="vitiseg tile (default: model's)")
    parser.add_argument("--batch-size", type=int, default=4, help="vitiseg tiles per pass")
    parser.add_argument(
        "--no-full-res",
        dest="full_res",
        action="store_false",
        help="skip vitiseg at full resolution (long_side=0)",
    )
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the peer")
    parser.add_argument(
        "--peer-weights",
        type=Path,
        default=None,
        help="state_dict of the peer smp Unet trained on the same data",
    )
    parser.add_argument("--peer-tile", type=int, default=512)
    parser.add_argument("--peer-batch-size", type=int, default=4)
    parser.add_argument("--peer-overlap", type=float, default=0.25)
    parser.add_argument(
        "--peer-long-side",
        type=int,
        default=0,
        help="peer working long side; 0 = full resolution (default)",
    )
    parser.add_argument(
        "--val-dataset",
        type=Path,
        default=None,
        help="vitiseg-format dataset with lesion masks, for lesion Dice",
    )
    parser.add_argument("--split-file", type=Path, default=None, help="a run's split.json")
    parser.add_argument("--split", default="val")
    parser.add_argument(
        "--int8-calibration",
        type=Path,
        default=None,
        help="dataset whose train-split photos (from --split-file) calibrate int8 "
        "(default: synthetic photos)",
    )
    parser.add_argument("--int8-calibration-n", type=int, default=32)
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="markdown results file to update (e.g. docs/benchmark_results.md)",
    )
    parser.add_argument("--raw", type=Path, default=None, help="write every figure as JSON")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where photos and outputs go (default: a temporary folder)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help="time budget per configuration and size (at least one photo)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="per worker process")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="also cProfile the first vitiseg configuration on one photo of "
        "the largest size and write the statistics here",
    )
    parser.add_argument(
        "--profile-only", action="store_true", help="with --profile: skip the timing and Dice runs"
    )
    parser.add_argument(
        "--onnx-arena",
        dest="onnx_memory_arena",
        action="store_true",
        help="ONNX Runtime keeps activation memory between calls (its own default; "
        "vitiseg's is off, infer.onnx_memory_arena: higher peak RSS, no faster on AVX2)",
    )
    parser.add_argument(
        "--pipeline",
        choices=("score", "shared"),
        default="score",
        help="score (default): vitiseg runs through vitiseg-score's own per-photo scorer "
        "(with quality checks and thumbnails, so its figures are conservative); shared: "
        "vitiseg and the peer run the same decode/VASI/write steps, so only the inference "
        "differs, and the stages are timed separately",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.backend = [name.strip() for name in args.backend.split(",") if name.strip()]
    unknown = [name for name in args.backend if name not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    args.sizes = [parse_size(text) for text in args.sizes.split(",") if text.strip()]
    if not (args.checkpoint / "metadata.json").is_file():
        parser.error(f"{args.checkpoint}: not a vitiseg model folder (no metadata.json)")
    return args


def run_profile(args: argparse.Namespace, configs, settings: Settings, workdir: Path) -> None:
    """cProfile the first vitiseg configuration on one photo of the largest size."""
    width, height = max(args.sizes, key=lambda s: s[0] * s[1])
    photo = write_photos(workdir / "photos", (width, height), 1, args.seed)[0]
    first = next(c for c in configs if c.system == "vitiseg")
    payload = {
        "mode": "profile",
        "settings": asdict(settings),
        "config": asdict(first),
        "photo": str(photo),
        "report": str(args.profile.resolve()),
    }
    spawn(payload, args.threads, args.timeout)
    log.info("profile of %s written to %s", first.label, args.profile)


def time_all(args, configs, settings: Settings, workdir: Path) -> dict[tuple[str, str], dict]:
    """Every configuration on every photo size, each in a fresh process."""
    timings: dict[tuple[str, str], dict[str, Any]] = {}
    for width, height in args.sizes:
        photos = write_photos(workdir / "photos", (width, height), args.n_images, args.seed)
        for config in configs:
            log.info("timing %s at %dx%d", config.label, width, height)
            payload = {
                "mode": "time",
                "settings": asdict(settings),
                "config": asdict(config),
                "photos": [str(p) for p in photos],
            }
            result = spawn(payload, args.threads, args.timeout)
            timings[(config.label, f"{width}x{height}")] = result
            ips = result["n_images"] / result["seconds"]
            log.info("  %.3f images/s, peak RSS %.0f MB", ips, result["peak_rss_mb"])
    return timings


def dice_all(args, configs, settings: Settings) -> tuple[dict[str, dict | None], str]:
    """Lesion Dice of every configuration on the validation photos (peer: needs weights)."""
    dice: dict[str, dict[str, Any] | None] = {}
    if not args.val_dataset:
        return dice, "no --val-dataset given: lesion Dice not measured"
    note = f"lesion Dice on {args.val_dataset.name}"
    if args.split_file:
        note += f", split {args.split} of {args.split_file.name}"
    for config in configs:
        if config.system == "peer" and not args.peer_weights:
            dice[config.label] = None
            continue
        log.info("lesion Dice of %s", config.label)
        payload = {
            "mode": "dice",
            "settings": asdict(settings),
            "config": asdict(config),
            "dataset": str(args.val_dataset.resolve()),
            "split_file": str(args.split_file.resolve()) if args.split_file else None,
            "split": args.split,
        }
        dice[config.label] = spawn(payload, args.threads, args.timeout)
        log.info("  %s", dice[config.label])
    return dice, note


def main(argv: Sequence[str] | None = None) -> int:
    # Root at WARNING: ONNX Runtime's quantiser logs one INFO line per bias to the root logger.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    for name in ("benchmark", "vitiseg"):
        logging.getLogger(name).setLevel(logging.INFO)
    args = parse_args(argv)
    args.checkpoint = args.checkpoint.resolve()

    import torch

    from vitiseg.models.model_folder import load_model_folder

    model, metadata = load_model_folder(args.checkpoint)
    tile = args.tile or metadata.preprocessing.tile
    configs = build_configs(args, metadata.preprocessing.tile)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vitiseg-benchmark-"))
    log.info("photos and outputs in %s", workdir)
    notes = prepare_backends(args, tile)
    settings = Settings(
        checkpoint=str(args.checkpoint),
        threads=args.threads,
        out_dir=str(workdir / "outputs"),
        peer_weights=str(args.peer_weights.resolve()) if args.peer_weights else None,
        peer_overlap=args.peer_overlap,
        max_seconds=args.max_seconds,
        warmup=args.warmup,
        onnx_memory_arena=args.onnx_memory_arena,
        pipeline=args.pipeline,
    )
    if args.profile:
        run_profile(args, configs, settings, workdir)
        if args.profile_only:
            return 0

    torch.set_num_threads(args.threads)
    flops = {"vitiseg": count_flops(model, tile)}
    del model
    if args.peer:
        flops["peer"] = count_flops(build_peer(), args.peer_tile)
    log.info("GFLOP per tile: %s", {k: round(v / 1e9, 2) for k, v in flops.items()})
    peak = spawn({"mode": "peak", "settings": asdict(settings)}, args.threads, args.timeout)
    log.info("fp32 matmul peak: %.1f GFLOP/s", peak["matmul_gflops"])

    timings = time_all(args, configs, settings, workdir)
    dice, dice_note = dice_all(args, configs, settings)
    rows = assemble_rows(
        configs, args.sizes, timings, flops, dice, peak["matmul_gflops"],
        metadata.preprocessing.long_side,
    )  # fmt: skip
    peer_dice = (dice.get("peer") or {}).get("lesion_dice")
    table = render_tables(rows, peer_dice)
    latest = summary_text(args, metadata, tile, peak, flops, dice, dice_note, notes, table)
    print(latest)
    if args.results:
        row = history_row(rows, args.sizes, args, metadata.model_id, peak["matmul_gflops"], dice)
        update_results(args.results, latest, row)
        log.info("updated %s", args.results)
    if args.raw:
        raw = {
            "peak": peak,
            "flops_per_tile": flops,
            "rows": rows,
            "dice": dice,
            "configs": [asdict(c) for c in configs],
            "notes": notes,
        }
        args.raw.write_text(json.dumps(raw, indent=2, default=str))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        logging.basicConfig(level=logging.WARNING)
        result = run_worker(json.loads(sys.argv[2]))
        print(RESULT_PREFIX + json.dumps(result, default=float), flush=True)
        sys.exit(0)
    sys.exit(main())
