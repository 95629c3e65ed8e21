"""ONNX Runtime inference: export a model folder to ONNX, quantise it to int8, run it.

Files written beside the weights (the model folder's ``metadata.json`` is left as it is)::

    MODEL/model.onnx       fp32 graph with the sigmoid inside:
                           (B, 3, T, T) float32 -> (B, C, T, T) probabilities, one per output
    MODEL/model.int8.onnx  optional static int8 (QDQ) version of the same graph
    MODEL/onnx.json        what they were made from: model_id, tile, opset, stride, int8 record
    MODEL/.vitiseg-onnx.lock  lock file: one process exports (and quantises) at a time

An export is rebuilt when the weights (``model_id``) or the tile size change, so a stale
graph is never run. When the model folder is read-only (an installed wheel), exports go
to ``$VITISEG_CACHE`` (default ``~/.cache/vitiseg``) under ``onnx/<model_id>/``.

Typical use::

    backend = make_backend("models/default", "onnx", threads=2)
    predictor = Predictor(backend, load_metadata("models/default"))
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitiseg.inference.tiling import RunBatch
from vitiseg.io.atomic import write_json_atomic

if TYPE_CHECKING:
    from vitiseg.models.metadata import ModelMetadata

# torch and the model code are imported where they are needed: running an exported graph
# needs neither, and importing torch alone costs about 0.5 GB of resident memory.

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")
ONNX_NAME = "model.onnx"
ONNX_INT8_NAME = "model.int8.onnx"
ONNX_INFO_NAME = "onnx.json"
ONNX_INFO_FORMAT = "vitiseg-onnx/1"
EXPORT_LOCK_NAME = ".vitiseg-onnx.lock"
DEFAULT_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class OnnxInfo:
    """What an export in a folder was made from (``onnx.json``).

    Attributes:
        model_id: ``metadata.model_id`` of the weights that were exported.
        tile: Tile side in px the graph takes (its H and W when ``dynamic_hw`` is False).
        opset: ONNX opset version.
        stride: The network's stride; dynamic-size inputs are padded to a multiple of it.
        dynamic_hw: Whether H and W are dynamic axes (the batch axis always is).
        torch_version: PyTorch that exported it.
        int8: Record of the int8 file (calibration source, images, format), or None.
    """

    model_id: str
    tile: int
    opset: int
    stride: int
    dynamic_hw: bool = False
    torch_version: str = ""
    int8: dict[str, Any] | None = None
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME

    def to_dict(self) -> dict[str, Any]:
        return {"format": ONNX_INFO_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnnxInfo:
        if data.get("format") != ONNX_INFO_FORMAT:
            raise ValueError(f"unsupported onnx.json format {data.get('format')!r}")
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def read_onnx_info(folder: str | Path) -> OnnxInfo | None:
    """The ``onnx.json`` record in ``folder``, or None when there is none (or unreadable)."""
    path = Path(folder) / ONNX_INFO_NAME
    if not path.is_file():
        return None
    try:
        return OnnxInfo.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        logger.warning("%s: ignored (%s); the model will be re-exported", path, exc)
        return None


def _set_onnx_metadata(path: Path, info: OnnxInfo) -> None:
    """Write the record into the graph too, so a lone .onnx file still says what it is."""
    import onnx

    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    for key, value in (
        ("vitiseg_model_id", info.model_id),
        ("vitiseg_tile", str(info.tile)),
        ("vitiseg_stride", str(info.stride)),
        ("vitiseg_outputs", "skin,lesion probabilities"),
    ):
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def export_onnx(
    model_folder: str | Path,
    tile: int | None = None,
    opset: int = DEFAULT_OPSET,
    *,
    dynamic_hw: bool = False,
    out_dir: str | Path | None = None,
) -> Path:
    """Export a model folder's network, sigmoid included, to ``model.onnx``.

    The batch axis is dynamic. H and W are fixed to ``tile`` by default: the tiler always
    sends full tiles, and a static shape lets ONNX Runtime plan memory once. A previous
    int8 file in the folder is removed, since it no longer matches.

    Args:
        model_folder: A vitiseg model folder (``weights.safetensors`` + ``metadata.json``).
        tile: Tile side in px; None = the model's ``preprocessing.tile``.
        opset: ONNX opset version.
        dynamic_hw: Make H and W dynamic too; inputs are then padded to the stride by
            :class:`OnnxBackend`.
        out_dir: Where to write; None = the model folder itself.

    Returns:
        Path of the written ``model.onnx``.
    """
    import onnx
    import torch

    from vitiseg.models.model_folder import load_model_folder

    class Probabilities(torch.nn.Module):
        """The network with its sigmoid, so the graph outputs probabilities."""

        def __init__(self, network: torch.nn.Module) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.network(x))

    folder = Path(model_folder)
    model, metadata = load_model_folder(folder)
    tile = int(tile or metadata.preprocessing.tile)
    stride = int(getattr(model, "stride", 32))
    if dynamic_hw and tile % stride:
        # A trace at a non-multiple would bake the model's own padding in as constants.
        tile += stride - tile % stride
    target_dir = Path(out_dir) if out_dir is not None else folder
    target_dir.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    sample = torch.zeros(1, 3, tile, tile)
    info = OnnxInfo(
        model_id=metadata.model_id,
        tile=tile,
        opset=opset,
        stride=stride,
        dynamic_hw=dynamic_hw,
        torch_version=torch.__version__,
    )
    path = target_dir / ONNX_NAME
    with tempfile.TemporaryDirectory(dir=target_dir) as scratch:
        scratch_file = Path(scratch) / ONNX_NAME
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of dynamo (which needs
            # onnxscript, not a dependency); tracer warnings concern the fixed tile size.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Probabilities(model).eval(),
                (sample,),
                str(scratch_file),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                do_constant_folding=True,
            )
        onnx.checker.check_model(str(scratch_file))
        _set_onnx_metadata(scratch_file, info)
        os.replace(scratch_file, path)
    (target_dir / ONNX_INT8_NAME).unlink(missing_ok=True)
    write_json_atomic(target_dir / ONNX_INFO_NAME, info.to_dict())
    logger.info("exported %s (%s, %d px tiles, opset %d)", path, info.model_id, tile, opset)
    return path


def calibration_tiles(
    images: Iterable[np.ndarray], metadata: ModelMetadata, tile: int
) -> np.ndarray:
    """Network inputs for int8 calibration, prepared exactly as the predictor does.

    Each photo is shrunk to the model's working long side, normalised, padded (reflect)
    to at least one tile, and its top-left tile is taken.

    Args:
        images: (H, W, 3) uint8 RGB photos.
        metadata: The model's metadata (normalisation, working size).
        tile: Tile side in px.

    Returns:
        (N, 3, tile, tile) float32.
    """
    from vitiseg.data.colour_constancy import channel_gains
    from vitiseg.data.network_input import normalised_chw
    from vitiseg.data.resize import resize_long_side

    pre = metadata.preprocessing
    tiles = []
    for rgb in images:
        work = resize_long_side(rgb, pre.long_side) if pre.long_side else rgb
        chw = normalised_chw(work, pre.mean, pre.std, channel_gains(work, pre.colour_constancy))
        pad_h, pad_w = max(0, tile - chw.shape[1]), max(0, tile - chw.shape[2])
        if pad_h or pad_w:
            mode = "reflect" if chw.shape[1] > pad_h and chw.shape[2] > pad_w else "edge"
            chw = np.pad(chw, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        tiles.append(chw[:, :tile, :tile])
    if not tiles:
        raise ValueError("calibration needs at least one image")
    return np.ascontiguousarray(np.stack(tiles), dtype=np.float32)


def synthetic_calibration_tiles(
    metadata: ModelMetadata, tile: int, n_images: int = 16, seed: int = 0
) -> np.ndarray:
    """Calibration tiles from procedural synthetic photos (skin types I-VI, with lesions).

    Returns:
        (n_images, 3, tile, tile) float32.
    """
    from vitiseg.synth import iter_cases  # only needed here; keeps the import light

    size = max(64, metadata.preprocessing.long_side or tile)
    cases = iter_cases(n_images, seed, "procedural", size=size)
    return calibration_tiles((case.image for case in cases), metadata, tile)


class _TileReader:
    """ONNX Runtime calibration reader over an array of tiles, one tile per batch."""

    def __init__(self, tiles: np.ndarray, input_name: str) -> None:
        self._batches = iter([tiles[i : i + 1] for i in range(len(tiles))])
        self._input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch}


def _head_nodes(path: Path) -> list[str]:
    """Names of the last Conv and the Sigmoid after it, kept in fp32.

    The head turns features into logits; quantising it (and the sigmoid) would round
    probabilities near the 0.5 threshold to steps of 1/256.
    """
    import onnx

    graph = onnx.load(str(path)).graph
    names = [node.name for node in graph.node if node.op_type == "Sigmoid"]
    convs = [node.name for node in graph.node if node.op_type == "Conv"]
    return names + convs[-1:]


def quantize_onnx(
    model_folder: str | Path,
    tiles: np.ndarray | None = None,
    *,
    n_calibration: int = 16,
    seed: int = 0,
    calibration_source: str | None = None,
    out_dir: str | Path | None = None,
) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) of the folder's ``model.onnx``.

    Activations are uint8 and weights int8 (the fast pair on CPUs with VNNI); the head
    convolution and the sigmoid stay fp32. Only ship the result when the lesion Dice it
    loses against fp32 on real validation photos is below 0.01 (``scripts/benchmark.py
    --backend onnx,onnx-int8 --val-dataset ...`` measures that).

    Args:
        model_folder: A vitiseg model folder; exported first when it has no current
            ``model.onnx``.
        tiles: (N, 3, T, T) float32 calibration inputs (see :func:`calibration_tiles`);
            None = ``n_calibration`` synthetic photos.
        n_calibration: Synthetic photos when ``tiles`` is None.
        seed: Seed of the synthetic photos.
        calibration_source: Free text recorded in ``onnx.json`` (e.g. the dataset name).
        out_dir: Folder holding ``model.onnx``; None = the model folder.

    Returns:
        Path of the written ``model.int8.onnx``.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from vitiseg.models.metadata import load_metadata

    folder = Path(model_folder)
    target_dir = Path(out_dir) if out_dir is not None else folder
    metadata = load_metadata(folder)
    info = read_onnx_info(target_dir)
    if not _is_current(target_dir, info, metadata, int8=False):
        export_onnx(folder, out_dir=target_dir, dynamic_hw=True)
        info = read_onnx_info(target_dir)
    if info is None:
        raise RuntimeError(f"{target_dir / ONNX_INFO_NAME}: missing right after export")
    if tiles is None:
        tiles = synthetic_calibration_tiles(metadata, info.tile, n_calibration, seed)
        calibration_source = calibration_source or f"synthetic procedural, seed {seed}"
    if tiles.ndim != 4 or tiles.shape[1:] != (3, info.tile, info.tile):
        raise ValueError(
            f"calibration tiles must be (N, 3, {info.tile}, {info.tile}), got {tiles.shape}"
        )
    path = target_dir / ONNX_INT8_NAME
    with tempfile.TemporaryDirectory(dir=target_dir) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quantized = Path(scratch) / ONNX_INT8_NAME
        # Shape inference and graph clean-up first, as ONNX Runtime recommends.
        quant_pre_process(str(target_dir / ONNX_NAME), str(prepared))
        quantize_static(
            str(prepared),
            str(quantized),
            _TileReader(np.ascontiguousarray(tiles, dtype=np.float32), info.input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_head_nodes(prepared),
            calibrate_method=CalibrationMethod.MinMax,
        )
        _set_onnx_metadata(quantized, info)
        os.replace(quantized, path)
    record = {
        "file": ONNX_INT8_NAME,
        "format": "QDQ, uint8 activations, int8 per-channel weights, MinMax",
        "calibration_source": calibration_source or "caller-provided tiles",
        "calibration_tiles": int(len(tiles)),
    }
    write_json_atomic(target_dir / ONNX_INFO_NAME, {**info.to_dict(), "int8": record})
    logger.info("quantised %s with %d calibration tiles", path, len(tiles))
    return path


class OnnxBackend:
    """Runs an exported graph on batches of tiles with ONNX Runtime on the CPU.

    Same contract as :class:`~vitiseg.inference.predictor.TorchBackend`: (B, 3, T, T)
    float32 normalised tiles in, (B, C, T, T) float32 probabilities out (the sigmoid is
    inside the graph).

    Args:
        path: A ``model.onnx`` or ``model.int8.onnx`` written by this module.
        name: Backend name recorded with the scores; None = ``onnx-int8`` for a
            ``model.int8.onnx`` file, else ``onnx``.
        threads: Intra-op threads; 0 = ONNX Runtime's default (one per physical core).
        memory_arena: Keep freed activation memory for the next call (ONNX Runtime's
            default, fastest). False returns it to the system after each call: for a
            ResNet-18 U-Net on four 512-px tiles, resident memory drops from about 0.85 GB
            to 0.27 GB between calls.
    """

    def __init__(
        self,
        path: str | Path,
        threads: int = 0,
        *,
        memory_arena: bool = True,
        name: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: ONNX file not found; run export_onnx first")
        self.name = name or ("onnx-int8" if self.path.name == ONNX_INT8_NAME else "onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One forward pass at a time; its ops are parallelised inside (intra-op).
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = max(0, int(threads))
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = memory_arena
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name
        height, width = model_input.shape[2:]
        self.tile: int | None = height if isinstance(height, int) and height == width else None
        custom = self.session.get_modelmeta().custom_metadata_map
        self.stride = int(custom.get("vitiseg_stride", 32))
        self.model_id = custom.get("vitiseg_model_id", "")
        # A graph with dynamic H and W takes a lone small tile at its own (stride-padded) size.
        self.any_size_stride = self.stride if self.tile is None else None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Args: batch (B, 3, H, W) float32. Returns (B, C, H, W) float32 probabilities."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {batch.shape}")
        height, width = batch.shape[2:]
        if self.tile is not None:
            if (height, width) != (self.tile, self.tile):
                raise ValueError(
                    f"{self.path} was exported for {self.tile} px tiles, got {height}x{width}; "
                    "export again with export_onnx(folder, tile=...)"
                )
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        pad_h, pad_w = (-height) % self.stride, (-width) % self.stride
        if pad_h or pad_w:
            mode = "reflect" if height > pad_h and width > pad_w else "edge"
            batch = np.pad(batch, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        output = self.session.run([self.output_name], {self.input_name: batch})[0]
        return np.ascontiguousarray(output[..., :height, :width])


def _is_current(
    folder: Path, info: OnnxInfo | None, metadata: ModelMetadata, *, int8: bool
) -> bool:
    if info is None or info.model_id != metadata.model_id or not (folder / ONNX_NAME).is_file():
        return False
    if not info.dynamic_hw:
        # Static-tile exports pad a photo smaller than a tile to the whole tile, which
        # changes the answer (0.045 lesion Dice on the real validation photos for one model):
        # made again with dynamic H and W, like the PyTorch path.
        return False
    return not int8 or (info.int8 is not None and (folder / ONNX_INT8_NAME).is_file())


def onnx_cache_dir(metadata: ModelMetadata) -> Path:
    """Where exports go when the model folder is read-only."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitiseg"
    root = Path(os.environ.get("VITISEG_CACHE", default))
    return root / "onnx" / (metadata.model_id or "unnamed")


@contextlib.contextmanager
def export_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's export lock, waiting while another process holds it.

    Shards started together on a fresh model folder would otherwise export at the same
    time, and one export deletes the int8 file the other has just quantised. The lock is an
    ``flock``, which the kernel releases when its process dies, so a killed export blocks
    nobody.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; exports are not serialised
        yield
        return
    with open(folder / EXPORT_LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            logger.info("%s: another process is exporting the model; waiting for it", folder)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_onnx(model_folder: str | Path, tile: int | None = None, *, int8: bool = False) -> Path:
    """Path of a current export of the folder's model, exporting (and quantising) if needed.

    Looks in the model folder, then in :func:`onnx_cache_dir`; writes into the model folder
    when it is writable, else into the cache.

    Args:
        model_folder: A vitiseg model folder.
        tile: Tile side in px; None = the model's tile.
        int8: Return the int8 file (quantised with synthetic calibration when missing).
    """
    from vitiseg.models.metadata import load_metadata

    folder = Path(model_folder)
    metadata = load_metadata(folder)
    tile = int(tile or metadata.preprocessing.tile)
    name = ONNX_INT8_NAME if int8 else ONNX_NAME
    candidates = [folder, onnx_cache_dir(metadata)]
    for candidate in candidates:
        if _is_current(candidate, read_onnx_info(candidate), metadata, int8=int8):
            return candidate / name
    target = folder if os.access(folder, os.W_OK) else candidates[1]
    target.mkdir(parents=True, exist_ok=True)
    with export_lock(target):
        # Another process may have made the export while this one waited for the lock.
        info = read_onnx_info(target)
        if _is_current(target, info, metadata, int8=int8):
            return target / name
        if not _is_current(target, info, metadata, int8=False):
            logger.info("no current ONNX export of %s; exporting", folder)
            export_onnx(folder, tile, out_dir=target, dynamic_hw=True)
        if int8:
            logger.info("no int8 model for %s; quantising with synthetic calibration", folder)
            quantize_onnx(folder, out_dir=target)
    return target / name


def make_backend(
    model_folder: str | Path,
    name: str = "torch",
    device: str = "cpu",
    threads: int = 0,
    *,
    tile: int | None = None,
    memory_arena: bool = False,
) -> RunBatch:
    """The tile runner for a model folder by backend name.

    Args:
        model_folder: A vitiseg model folder.
        name: ``"torch"`` (eager PyTorch, any device), ``"torch-bf16"`` (the same under
            bf16 autocast: fast on CPUs with AVX512-BF16/AMX and on GPUs), ``"onnx"`` (ONNX
            Runtime fp32, CPU) or ``"onnx-int8"`` (ONNX Runtime, static int8, CPU).
        device: ``"cpu"`` or a torch device such as ``"cuda"`` (torch backend only).
        threads: CPU threads for the backend; 0 = the library's default.
        tile: Tile side the predictor will use; None = the model's. ONNX graphs take any
            height and width (traced at this size), so every backend pads a photo smaller
            than a tile only to the network's stride, as PyTorch does.
        memory_arena: ONNX backends keep activation memory between calls (see
            :class:`OnnxBackend`); off by default, as ``infer.onnx_memory_arena``.

    Returns:
        A callable (B, 3, T, T) float32 -> (B, C, T, T) float32 probabilities.

    Raises:
        ValueError: unknown name, or an ONNX backend on a non-CPU device.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if name in ("torch", "torch-bf16"):
        import torch

        from vitiseg.inference.predictor import TorchBackend
        from vitiseg.models.model_folder import load_model_folder

        if threads:
            torch.set_num_threads(int(threads))
        model, _ = load_model_folder(model_folder, device)
        return TorchBackend(model, device, bf16=name == "torch-bf16")
    if device != "cpu":
        raise ValueError(f"backend {name!r} runs on the CPU only; use backend torch for {device}")
    path = ensure_onnx(model_folder, tile, int8=name == "onnx-int8")
    return OnnxBackend(path, threads, memory_arena=memory_arena, name=name)
