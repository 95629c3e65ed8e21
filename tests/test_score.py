"""vitiseg-score: bad inputs, resumption after kill -9, shards, big photos, escaping."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vitiseg.inference.factory import predictor_from_config
from vitiseg.inference.onnx_backend import make_backend
from vitiseg.inference.predictor import Predictor, backend_name
from vitiseg.io.images import ImageReadError, read_rgb
from vitiseg.models.metadata import load_metadata
from vitiseg.quality import QualityConfig, assess_quality, quality_config_from_mapping
from vitiseg.scoring import (
    InputError,
    MergeError,
    OutputBusyError,
    ScoreJob,
    ScoreSettings,
    discover_inputs,
    merge_shards,
    parse_shard,
    run_score_job,
    select_shard,
)
from vitiseg.scoring.runner import output_lock, settings_fingerprint

# Small overlays and thumbnails keep the tests fast; they change no score.
FAST = ScoreSettings(overlay_long_side=256, thumbnail_long_side=64)


# --- helpers -------------------------------------------------------------------------------


def photo_array(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB: textured skin tone with a pale patch."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (150, 100, 70)
    cv2.circle(image, (width // 2, height // 2), min(height, width) // 4, (235, 215, 210), -1)
    noise = rng.integers(-12, 13, size=(height, width, 1), dtype=np.int16)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def write_photo(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb.ndim == 3:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if rgb.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), rgb)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A valid-looking PNG of about a kilobyte whose header claims ``width x height``."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def row_value(path: Path, column: str) -> str:
    (row,) = read_rows(path)
    return row[column]


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_cli(monkeypatch, *args: str) -> int:
    """Run ``vitiseg-score`` in this process; returns its exit code."""
    from vitiseg.cli import score

    monkeypatch.setattr(sys, "argv", ["vitiseg-score", *args, "progress=false"])
    with pytest.raises(SystemExit) as exit_info:
        score.main()
    return int(exit_info.value.code or 0)


@pytest.fixture
def predictor(tiny_model_dir: Path) -> Predictor:
    return Predictor.from_folder(tiny_model_dir)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for index in range(5):
        write_photo(folder / f"visit{index % 2}" / f"p{index}.jpg", photo_array(seed=index))
    return folder


# --- bad inputs ----------------------------------------------------------------------------


def test_bad_files_give_error_rows_the_batch_goes_on_and_the_exit_code_is_non_zero(
    tmp_path, tiny_model_dir, monkeypatch
):
    folder = tmp_path / "photos"
    write_photo(folder / "good.png", photo_array())
    jpeg = cv2.imencode(".jpg", photo_array(200, 240))[1].tobytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a photo\n")
    (folder / "bomb.png").write_bytes(bomb_png())
    write_photo(folder / "zgood.png", photo_array(seed=3))
    before = digest_tree(folder)
    out = tmp_path / "out"

    code = run_cli(monkeypatch, f"input={folder}", f"output={out}", f"checkpoint={tiny_model_dir}")

    assert code == 1
    rows = {row["image"]: row for row in read_rows(out / "scores.csv")}
    assert set(rows) == {
        "good.png",
        "truncated.jpg",
        "empty.jpg",
        "notes.jpg",
        "bomb.png",
        "zgood.png",
    }
    assert rows["good.png"]["status"] == rows["zgood.png"]["status"] == "ok"
    expected = {
        "truncated.jpg": "truncated",
        "empty.jpg": "empty",
        "notes.jpg": "not a readable image",
        "bomb.png": "decompression bomb",
    }
    for name, problem in expected.items():
        assert rows[name]["status"] == "error"
        assert name in rows[name]["error"] and problem in rows[name]["error"]
    assert digest_tree(folder) == before, "inputs must never be modified"
    summary = json.loads((out / "scores.json").read_text())["summary"]
    assert (summary["n_ok"], summary["n_failed"]) == (2, 4)


def test_a_decompression_bomb_is_refused_fast_without_allocating(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    assert path.stat().st_size < 4096
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match="60000x60000"):
        read_rgb(path)
    assert time.perf_counter() - start < 1.0
    # Decoding would need 10.8 GB; the peak must not move by more than noise.
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 100


def test_a_processing_failure_is_an_error_row_and_is_retried_on_resume(
    tmp_path, photos, predictor, monkeypatch
):
    calls = []
    original = predictor.predict

    def fails_once(rgb):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("simulated")
        return original(rgb)

    monkeypatch.setattr(predictor, "predict", fails_once)
    job = ScoreJob(output=tmp_path / "out", input=photos, progress=False)
    first = run_score_job(job, predictor, FAST)
    assert first.n_failed == 1
    (failed,) = [r for r in first.records if not r.ok]
    assert failed.error == f"{failed.image}: scoring failed (MemoryError: simulated)"
    second = run_score_job(job, predictor, FAST)
    assert second.n_failed == 0 and second.n_reused == len(first.records) - 1


def test_missing_model_fails_with_a_clear_message(tmp_path, photos, monkeypatch, capsys):
    code = run_cli(
        monkeypatch,
        f"input={photos}",
        f"output={tmp_path / 'out'}",
        f"checkpoint={tmp_path / 'no-model'}",
    )
    assert code == 2
    assert "not a vitiseg model folder" in capsys.readouterr().out  # Hydra logs to stdout


def test_missing_input_and_bad_shard_are_refused(tmp_path, tiny_model_dir, monkeypatch, capsys):
    code = run_cli(
        monkeypatch,
        f"input={tmp_path / 'nowhere'}",
        f"output={tmp_path / 'o'}",
        f"checkpoint={tiny_model_dir}",
    )
    assert code == 2 and "input not found" in capsys.readouterr().out
    with pytest.raises(InputError):
        parse_shard("2/2")
    with pytest.raises(InputError):
        parse_shard("half")
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) is None


def test_region_on_the_command_line_is_normalised_like_the_manifests(
    tmp_path, tiny_model_dir, monkeypatch
):
    photo = write_photo(tmp_path / "in" / "arm.jpg", photo_array(60, 80))
    out = tmp_path / "out"
    code = run_cli(
        monkeypatch,
        f"input={photo}",
        f"output={out}",
        f"checkpoint={tiny_model_dir}",
        "region='Upper extremities'",
        "overlay_long_side=64",
        "thumbnail_long_side=32",
    )
    assert code == 0
    assert row_value(out / "scores.csv", "status") == "ok"
    assert row_value(out / "scores.csv", "region") == "upper_extremities"


# --- formats ------------------------------------------------------------------------------


def test_exif_rotated_16_bit_grey_rgba_and_tiff_photos_are_scored_upright(tmp_path, predictor):
    folder = tmp_path / "photos"
    folder.mkdir()
    sideways = photo_array(100, 200)  # stored 100 rows x 200 columns
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": upright is 200 x 100
    Image.fromarray(sideways).save(folder / "rotated.jpg", exif=exif)
    write_photo(folder / "deep16.png", photo_array(90, 110).astype(np.uint16) * 257)
    write_photo(folder / "grey.png", cv2.cvtColor(photo_array(80, 96), cv2.COLOR_RGB2GRAY))
    rgba = np.dstack([photo_array(70, 90), np.full((70, 90), 200, np.uint8)])
    write_photo(folder / "alpha.png", rgba)
    write_photo(folder / "scan.tif", photo_array(64, 72).astype(np.uint16) * 257)

    result = run_score_job(
        ScoreJob(output=tmp_path / "out", input=folder, progress=False), predictor, FAST
    )

    by_name = {r.image: r for r in result.records}
    assert all(r.ok for r in result.records), [r.error for r in result.records]
    sizes = {name: (r.height, r.width) for name, r in by_name.items()}
    assert sizes == {
        "rotated.jpg": (200, 100),
        "deep16.png": (90, 110),
        "grey.png": (80, 96),
        "alpha.png": (70, 90),
        "scan.tif": (64, 72),
    }
    for record in result.records:
        for kind in ("mask_skin", "mask_lesion"):
            mask = cv2.imread(str(tmp_path / "out" / record.files[kind]), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (record.height, record.width) and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 255}


@pytest.mark.parametrize("mode, dtype", [("I;16B", ">u2"), ("I;16", "<u2")])
def test_16_bit_grey_tiff_of_either_byte_order_keeps_its_brightness(tmp_path, mode, dtype):
    # Values up to 30000 of 65535: stretching by the photo's own maximum would double them.
    grey = np.linspace(0, 30000, 64 * 72).reshape(64, 72).astype(dtype)
    path = tmp_path / "scan.tif"
    Image.frombytes(mode, (72, 64), grey.tobytes()).save(path)
    with Image.open(path) as stored:
        assert stored.mode == mode
    rgb = read_rgb(path)
    expected = (grey.astype(np.uint16) >> 8).astype(np.uint8)
    assert rgb.shape == (64, 72, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)


def test_4000x3000_photo_is_scored_at_full_size(tmp_path, predictor):
    path = write_photo(tmp_path / "big" / "big.jpg", photo_array(3000, 4000))
    result = run_score_job(
        ScoreJob(output=tmp_path / "out", input=path, progress=False), predictor, FAST
    )
    (record,) = result.records
    assert record.ok and (record.height, record.width) == (3000, 4000)
    lesion = cv2.imread(str(tmp_path / "out" / record.files["mask_lesion"]), cv2.IMREAD_GRAYSCALE)
    assert lesion.shape == (3000, 4000)
    overlay = cv2.imread(str(tmp_path / "out" / record.files["overlay"]))
    assert overlay.shape[1] == 256  # overlay_long_side; a legend band is added below
    assert record.skin_px + 0 <= 3000 * 4000


def test_tta_gives_a_per_pixel_uncertainty_map(tmp_path, tiny_model_dir):
    path = write_photo(tmp_path / "in" / "p.png", photo_array(90, 130))
    predictor = Predictor.from_folder(tiny_model_dir, tta=True)
    result = run_score_job(
        ScoreJob(output=tmp_path / "out", input=path, progress=False), predictor, FAST
    )
    (record,) = result.records
    spread = cv2.imread(str(tmp_path / "out" / record.files["uncertainty"]), cv2.IMREAD_GRAYSCALE)
    assert spread.shape == (90, 130)
    assert record.mean_uncertainty is not None and record.mean_uncertainty >= 0
    assert row_value(tmp_path / "out" / "scores.csv", "mean_uncertainty") != ""


def test_overlay_outlines_lesions_and_skin_and_adds_a_legend():
    from vitiseg.report import LESION_COLOUR, SKIN_COLOUR, draw_overlay

    rgb = np.full((200, 300, 3), 90, np.uint8)
    skin = np.zeros((200, 300), bool)
    skin[20:180, 20:280] = True
    lesion = np.zeros_like(skin)
    lesion[80:120, 120:180] = True
    overlay = draw_overlay(rgb, skin, lesion, long_side=0)
    assert overlay.shape[0] > 200 and overlay.shape[1] == 300  # legend band below

    def nearest(rows: slice, column: int, colour: tuple[int, int, int]) -> int:
        distances = np.abs(overlay[rows, column].astype(int) - np.asarray(colour)).sum(axis=1)
        return int(distances.min())

    assert nearest(slice(116, 123), 150, LESION_COLOUR) < 40  # across the lesion's edge
    assert nearest(slice(17, 24), 150, SKIN_COLOUR) < 40  # across the skin's edge
    assert nearest(slice(17, 24), 150, LESION_COLOUR) > 200  # no lesion outline there
    assert (overlay[5, 5] == 90).all()  # the photo elsewhere is untouched
    # With a depigmented output only the depigmented part of the outlined patch is tinted.
    depigmented = np.zeros_like(skin)
    depigmented[80:120, 120:150] = True
    split = draw_overlay(rgb, skin, lesion, long_side=0, depigmented=depigmented)
    assert (split[100, 135] == overlay[100, 135]).all()  # tinted in both
    assert (split[100, 165] == 90).all() and (overlay[100, 165] != 90).any()
    assert split.shape == overlay.shape  # the legend names the outline and the tint


# --- resumption, sharding, merge ------------------------------------------------------------


def test_resume_after_kill_9_keeps_finished_photos_and_duplicates_nothing(
    tmp_path, tiny_model_dir, monkeypatch
):
    folder = tmp_path / "photos"
    names = [f"p{index}.png" for index in range(6)]
    for index, name in enumerate(names):
        write_photo(folder / name, photo_array(240, 320, seed=index))
    out = tmp_path / "out"
    # Full resolution with small tiles makes each photo take a noticeable time.
    arguments = [
        f"input={folder}",
        f"output={out}",
        f"checkpoint={tiny_model_dir}",
        "infer.long_side=0",
        "infer.tile=64",
        "overlay_long_side=256",
        "thumbnail_long_side=64",
    ]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vitiseg.cli.score",
            *arguments,
            "infer.threads=1",
            "progress=false",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    records = out / "records"
    deadline = time.monotonic() + 120
    while not list(records.glob("*.json")) and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 1 <= len(finished) < len(names), "the kill must land in the middle of the batch"
    assert not (out / "scores.csv").exists()

    # The same command again (in this process, to save a second interpreter start).
    assert run_cli(monkeypatch, *arguments) == 0

    rows = read_rows(out / "scores.csv")
    assert sorted(row["image"] for row in rows) == names  # each photo exactly once
    assert all(row["status"] == "ok" for row in rows)
    for name, mtime in finished.items():
        assert (records / name).stat().st_mtime_ns == mtime, f"{name} was recomputed"
    run = json.loads((out / "scores.json").read_text())["run"]
    assert run["n_reused"] == len(finished) and run["n_scored"] == len(names) - len(finished)
    assert not [p for p in out.rglob("*.part")], "no half-written file may remain"


def test_resume_rescores_changed_photos_and_changed_settings(tmp_path, photos, predictor):
    job = ScoreJob(output=tmp_path / "out", input=photos, progress=False)
    first = run_score_job(job, predictor, FAST)
    assert first.n_reused == 0
    again = run_score_job(job, predictor, FAST)
    assert again.n_reused == len(first.records)
    changed = photos / "visit0" / "p0.jpg"
    write_photo(changed, photo_array(seed=99))
    after_edit = run_score_job(job, predictor, FAST)
    assert after_edit.n_reused == len(first.records) - 1
    other = ScoreSettings(overlay_long_side=256, thumbnail_long_side=64, default_region="trunk")
    rescored = run_score_job(job, predictor, other)
    assert rescored.n_reused == 0
    assert all(r.region == "trunk" and r.vasi is not None for r in rescored.records)
    assert len(read_rows(tmp_path / "out" / "scores.csv")) == len(first.records)


def test_output_inside_the_input_folder_is_not_scored(tmp_path, photos, predictor):
    job = ScoreJob(output=photos / "scores", input=photos, progress=False)
    first = run_score_job(job, predictor, FAST)
    second = run_score_job(job, predictor, FAST)
    assert len(second.records) == len(first.records) == 5


def test_a_second_run_on_the_same_folder_is_refused(tmp_path, photos, predictor):
    out = tmp_path / "out"
    with output_lock(out), pytest.raises(OutputBusyError):
        run_score_job(ScoreJob(output=out, input=photos, progress=False), predictor, FAST)


def test_shards_partition_the_photos_and_merge_equals_one_run(
    tmp_path, photos, predictor, monkeypatch
):
    all_photos = discover_inputs(photos)
    parts = [select_shard(all_photos, i, 2) for i in range(2)]
    assert sorted(p.key for part in parts for p in part) == sorted(p.key for p in all_photos)
    single = run_score_job(
        ScoreJob(output=tmp_path / "single", input=photos, progress=False), predictor, FAST
    )
    shard_dirs = []
    for index in range(2):
        shard_dir = tmp_path / f"shard{index}"
        run_score_job(
            ScoreJob(output=shard_dir, input=photos, shard=(index, 2), progress=False),
            predictor,
            FAST,
        )
        shard_dirs.append(shard_dir)
    with pytest.raises(MergeError, match="missing shard"):
        merge_shards(shard_dirs[:1], tmp_path / "partial")

    merged = tmp_path / "merged"
    code = run_cli(monkeypatch, f"merge=[{shard_dirs[0]},{shard_dirs[1]}]", f"output={merged}")

    assert code == 0
    single_csv = (tmp_path / "single" / "scores.csv").read_text()
    assert (merged / "scores.csv").read_text() == single_csv
    assert len(read_rows(merged / "scores.csv")) == len(single.records) == 5
    for row in read_rows(merged / "scores.csv"):
        assert (merged / row["mask_lesion"]).is_file() and (merged / row["overlay"]).is_file()
    (shard_dirs[1] / "scores.json").unlink()  # as if that shard were still running
    with pytest.raises(MergeError, match="has not finished"):
        merge_shards(shard_dirs, tmp_path / "again")


def test_another_backend_rescores_on_resume_and_its_shards_do_not_merge(
    tmp_path, photos, tiny_model_dir
):
    metadata = load_metadata(tiny_model_dir)
    fp32 = Predictor(make_backend(tiny_model_dir, "torch"), metadata)
    bf16 = Predictor(make_backend(tiny_model_dir, "torch-bf16"), metadata)
    shard_dirs = [tmp_path / "shard0", tmp_path / "shard1"]

    def score_shard(index: int, predictor: Predictor):
        job = ScoreJob(output=shard_dirs[index], input=photos, shard=(index, 2), progress=False)
        return run_score_job(job, predictor, FAST)

    score_shard(0, fp32)
    score_shard(1, bf16)
    recorded = [
        json.loads((folder / "scores.json").read_text())["run"]["inference"]["backend"]
        for folder in shard_dirs
    ]
    assert recorded == ["torch", "torch-bf16"]
    with pytest.raises(MergeError, match="settings_id"):
        merge_shards(shard_dirs, tmp_path / "mixed")

    resumed = score_shard(1, fp32)  # the bf16 records must not be taken as fp32 ones
    assert resumed.n_reused == 0 and len(resumed.records) > 0
    assert len(merge_shards(shard_dirs, tmp_path / "merged").records) == 5


def test_a_backend_without_a_name_is_named_by_its_class(tiny_model_dir):
    class HalfEverywhere:
        def __call__(self, batch: np.ndarray) -> np.ndarray:
            return np.full((len(batch), 2, *batch.shape[2:]), 0.5, np.float32)

    metadata = load_metadata(tiny_model_dir)
    fake = Predictor(HalfEverywhere(), metadata)
    assert backend_name(fake.backend) == "HalfEverywhere"
    torch_predictor = Predictor(make_backend(tiny_model_dir, "torch"), metadata)
    assert settings_fingerprint(fake, FAST) != settings_fingerprint(torch_predictor, FAST)


def test_the_depigmented_source_is_part_of_the_settings(tmp_path, photos, tiny_model_dir):
    # A resumed batch must not reuse model-source levels as colour-source ones.
    by_model, _ = predictor_from_config(tiny_model_dir, {})
    by_colour, _ = predictor_from_config(tiny_model_dir, {"depigmented_source": "colour"})
    assert (by_model.depigmented_source, by_colour.depigmented_source) == ("model", "colour")
    assert settings_fingerprint(by_model, FAST) != settings_fingerprint(by_colour, FAST)
    job = ScoreJob(output=tmp_path / "scored", input=photos, progress=False)
    run_score_job(job, by_colour, FAST)
    run = json.loads((tmp_path / "scored" / "scores.json").read_text())["run"]
    assert run["inference"]["depigmented_source"] == "colour"


def test_a_rerun_killed_halfway_leaves_no_finished_marker_to_merge(
    tmp_path, photos, predictor, monkeypatch
):
    out = tmp_path / "out"
    job = ScoreJob(output=out, input=photos, progress=False)
    run_score_job(job, predictor, FAST)

    class Killed(BaseException):
        """Stands in for kill -9: nothing after it runs."""

    calls = []
    original = predictor.predict

    def dies_on_the_third_photo(rgb):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return original(rgb)

    monkeypatch.setattr(predictor, "predict", dies_on_the_third_photo)
    trunk = ScoreSettings(overlay_long_side=256, thumbnail_long_side=64, default_region="trunk")
    with pytest.raises(Killed):
        run_score_job(job, predictor, trunk)  # other settings: every photo is scored again
    # Two records now hold region trunk, three the earlier run's settings.
    assert not (out / "scores.json").exists()
    with pytest.raises(MergeError, match="has not finished"):
        merge_shards([out], tmp_path / "merged")

    monkeypatch.setattr(predictor, "predict", original)
    run_score_job(job, predictor, trunk)
    merged = merge_shards([out], tmp_path / "merged")
    assert len(merged.records) == 5 and all(r.region == "trunk" for r in merged.records)


# --- manifest, VASI sums, escaping -----------------------------------------------------------


def test_manifest_with_case_ids_gives_regions_patients_and_visit_totals(
    tmp_path, tiny_dataset, predictor
):
    result = run_score_job(
        ScoreJob(output=tmp_path / "out", manifest=tiny_dataset / "cases.csv", progress=False),
        predictor,
        FAST,
    )
    assert all(r.ok for r in result.records) and len(result.records) == 6
    rows = read_rows(tmp_path / "out" / "scores.csv")
    assert [row["image"] for row in rows] == [f"images/case{i:02d}.png" for i in range(6)]
    assert {row["region"] for row in rows} == {"trunk"}
    assert all(row["vasi"] != "" and row["hand_units_region"] == "36" for row in rows)
    visits = json.loads((tmp_path / "out" / "scores.json").read_text())["summary"]["visits"]
    assert [v["patient_id"] for v in visits] == ["p0", "p1", "p2"]
    for visit in visits:
        assert visit["t_vasi"] is not None and visit["t_vasi"] <= 36
        assert visit["f_vasi"] is None and "face" in visit["regions_missing"]


def test_manifest_problems_are_error_rows(tmp_path, photos, predictor):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "image,patient_id,visit,region,pixels_per_cm\n"
        "visit0/p0.jpg,=HYPERLINK(1),v1,Upper extremities,\n"
        "visit1/p1.jpg,P2,v1,elbow,\n"
        "missing.jpg,P3,v1,face,\n"
        "visit0/p2.jpg,P4,v1,face,-3\n"
    )
    result = run_score_job(
        ScoreJob(output=tmp_path / "out", input=photos, manifest=manifest, progress=False),
        predictor,
        FAST,
    )
    rows = read_rows(tmp_path / "out" / "scores.csv")
    assert [row["status"] for row in rows] == ["ok", "error", "error", "error"]
    assert rows[0]["region"] == "upper_extremities"
    assert rows[0]["patient_id"] == "'=HYPERLINK(1)"  # no formula in a spreadsheet
    assert "unknown VASI region 'elbow'" in rows[1]["error"]
    assert "not found" in rows[2]["error"]
    assert "pixels_per_cm" in rows[3]["error"]
    assert result.n_failed == 3


def test_report_escapes_every_name_and_value(tmp_path, predictor):
    folder = tmp_path / "photos"
    hostile = "<script>alert(1)</script>.png"  # a folder "<script>alert(1)<" and a file
    write_photo(folder / hostile, photo_array())
    write_photo(folder / "plain.png", photo_array(seed=1))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "image,patient_id,visit,region\n"
        f'{hostile},<b>bold</b>,"v1 & <i>x</i>",face\n'
        'plain.png,<b>bold</b>,"v1 & <i>x</i>",hands\n'
    )
    run_score_job(
        ScoreJob(output=tmp_path / "out", input=folder, manifest=manifest, progress=False),
        predictor,
        FAST,
    )
    page = (tmp_path / "out" / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in page
    assert "<script" not in page.lower()
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page
    assert "v1 &amp; &lt;i&gt;x&lt;/i&gt;" in page and "<i>" not in page
    assert "Research use only" in page
    assert "Content-Security-Policy" in page


# --- quality flags ---------------------------------------------------------------------------


def textured(height: int = 400, width: int = 400, seed: int = 0) -> np.ndarray:
    """A sharp, well-exposed photo in brown-skin tones (typology angle about -10 degrees)."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(60, 200, size=(height // 8, width // 8, 1)).astype(np.float32)
    base = np.clip(grey * np.array([1.0, 0.68, 0.48], np.float32) + 20, 0, 255)
    return cv2.resize(base.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)


def test_quality_flags_each_fire_on_their_defect_and_not_on_a_good_photo():
    good = textured()
    skin = np.zeros(good.shape[:2], bool)
    skin[50:350, 50:350] = True
    assert assess_quality(good, skin).flags == ()

    blurred = cv2.GaussianBlur(good, (0, 0), 6)
    assert "blur" in assess_quality(blurred, skin).flags
    dark = (good // 12).astype(np.uint8)
    assert "underexposed" in assess_quality(dark, skin).flags
    bright = np.clip(good.astype(np.int16) + 150, 0, 255).astype(np.uint8)
    assert "overexposed" in assess_quality(bright, skin).flags
    tinted = good.copy()
    tinted[~skin] = (40, 80, 230)  # strongly blue background
    assert "colour_cast" in assess_quality(tinted, skin).flags
    assert "too_small" in assess_quality(textured(120, 200), None).flags
    little = np.zeros_like(skin)
    little[:10, :10] = True
    assert "little_skin" in assess_quality(good, little).flags
    unsure = np.full(skin.shape, 0.5, np.float32)
    assert "low_confidence" in assess_quality(good, skin, lesion_probability=unsure).flags
    spread = np.full(skin.shape, 0.3, np.float32)
    assert "low_confidence" in assess_quality(good, skin, uncertainty=spread).flags
    sure = np.where(skin, 0.95, 0.02).astype(np.float32)
    assert assess_quality(good, skin, lesion_probability=sure).flags == ()
    # Skin outline: a photo whose skin probability hovers near 0.5 over a fifth of it.
    unsure_skin = np.where(skin, 0.97, 0.03).astype(np.float32)
    assert assess_quality(good, skin, skin_probability=unsure_skin).flags == ()
    unsure_skin[:80] = 0.5  # 20 % of the photo
    report = assess_quality(good, skin, skin_probability=unsure_skin)
    assert "uncertain_skin" in report.flags and report.ambiguous_skin_share == 0.2
    unsure_skin[:80] = 0.9  # confident again, though wrong: no flag
    assert assess_quality(good, skin, skin_probability=unsure_skin).flags == ()

    light = good.copy()
    light[skin] = np.clip(good[skin].astype(np.int16) // 4 + (205, 175, 160), 0, 255)
    report = assess_quality(light, skin)
    assert "light_skin" in report.flags and report.ita_deg > 41
    # White patches are not the skin's tone: only the normal skin the model found counts.
    patchy = good.copy()
    patches = skin.copy()
    patches[50:300] = False  # patches cover the bottom sixth of the skin ...
    patchy[patches] = (245, 240, 236)
    assert assess_quality(patchy, skin, lesion=patches).flags == ()
    patches[50:250, 50:350] = skin[50:250, 50:350]  # ... then most of it
    patchy[patches] = (245, 240, 236)
    assert "light_skin" in assess_quality(patchy, skin).flags
    assert assess_quality(patchy, skin, lesion=patches).flags == ()


def test_faint_depigmentation_flags_patches_the_depigmented_output_barely_fills():
    good = textured()
    skin = np.zeros(good.shape[:2], bool)
    skin[50:350, 50:350] = True
    lesion = np.zeros_like(skin)
    lesion[100:200, 100:200] = True  # 10 000 px outlined
    depigmented = np.zeros_like(skin)
    depigmented[100:120, 100:200] = True  # 20 % of the outline
    report = assess_quality(good, skin, lesion=lesion, depigmented=depigmented)
    assert "faint_depigmentation" in report.flags and report.depigmented_share == 0.2
    depigmented[100:130, 100:200] = True  # 30 %: level 50 % or so, no flag
    assert assess_quality(good, skin, lesion=lesion, depigmented=depigmented).flags == ()
    # A few lesion pixels say nothing about levels; a two-output model has no such mask.
    speck = np.zeros_like(skin)
    speck[10:12, 10:12] = True
    report = assess_quality(good, skin, lesion=speck, depigmented=np.zeros_like(skin))
    assert report.flags == () and report.depigmented_share is None
    assert assess_quality(good, skin, lesion=lesion).depigmented_share is None


def test_quality_config_refuses_an_empty_skin_probability_band():
    with pytest.raises(ValueError, match="skin_ambiguous_low < skin_ambiguous_high"):
        QualityConfig(skin_ambiguous_low=0.8, skin_ambiguous_high=0.2)
    with pytest.raises(ValueError, match="max_ambiguous_skin_share"):
        QualityConfig(max_ambiguous_skin_share=1.5)


def test_quality_config_defaults_equal_the_shipped_yaml_and_the_shipped_models_choices():
    import yaml

    from vitiseg.paths import config_dir, default_model_dir

    shipped = yaml.safe_load((config_dir() / "quality" / "default.yaml").read_text())
    defaults = QualityConfig().to_dict()
    assert set(shipped) == set(defaults)
    assert {k: v for k, v in shipped.items() if v is not None} == {
        k: v for k, v in defaults.items() if shipped[k] is not None
    }
    # What the yaml leaves to the model, the shipped model chooses (and the defaults agree).
    chosen = load_metadata(default_model_dir()).quality
    assert set(chosen) == {k for k, v in shipped.items() if v is None} != set()
    assert quality_config_from_mapping(shipped, chosen) == QualityConfig()


def test_null_quality_keys_take_the_models_value_and_a_number_given_wins():
    chosen = {"max_ambiguous_skin_share": 0.3}
    resolved = quality_config_from_mapping(
        {"max_ambiguous_skin_share": None, "min_side_px": 300}, chosen
    )
    assert (resolved.max_ambiguous_skin_share, resolved.min_side_px) == (0.3, 300)
    given = quality_config_from_mapping({"max_ambiguous_skin_share": 0.2}, chosen)
    assert given.max_ambiguous_skin_share == 0.2
    unchosen = quality_config_from_mapping({"max_ambiguous_skin_share": None}, {})
    assert unchosen.max_ambiguous_skin_share == QualityConfig().max_ambiguous_skin_share
    with pytest.raises(ValueError, match="model folder's quality thresholds have unknown keys"):
        quality_config_from_mapping({}, {"max_ambiguous_skin_shares": 0.3})
    with pytest.raises(ValueError, match="max_ambiguous_skin_share: must lie within"):
        quality_config_from_mapping(
            {"max_ambiguous_skin_share": None}, {"max_ambiguous_skin_share": 3}
        )


def test_vitiseg_score_takes_the_model_folders_threshold_unless_one_is_given(
    tmp_path, tiny_model_dir, monkeypatch
):
    # A random network is unsure of the skin nearly everywhere: a share of 0 flags every
    # photo, a share of 1 none, so the flags show which threshold was used.
    metadata_path = tiny_model_dir / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["quality"] = {"max_ambiguous_skin_share": 0.0}
    metadata_path.write_text(json.dumps(metadata))
    write_photo(tmp_path / "photos" / "p.png", photo_array())
    runs = {
        "from_model": [],
        "given": ["quality.max_ambiguous_skin_share=1.0"],
    }
    for name, extra in runs.items():
        out = tmp_path / name
        arguments = [
            f"input={tmp_path / 'photos'}",
            f"output={out}",
            f"checkpoint={tiny_model_dir}",
        ]
        assert run_cli(monkeypatch, *arguments, *extra) == 0
        scores = json.loads((out / "scores.json").read_text())
        runs[name] = (
            scores["run"]["quality"]["max_ambiguous_skin_share"],
            "uncertain_skin" in scores["photos"][0]["quality_flags"],
        )
    assert runs == {"from_model": (0.0, True), "given": (1.0, False)}


# --- memory on a 4000 x 3000 photo -----------------------------------------------------------

_MEMORY_PROBE = """
import json, sys, time
from pathlib import Path
from vitiseg.inference.predictor import Predictor
from vitiseg.scoring import ScoreJob, ScoreSettings, run_score_job

def status_mib(field):  # VmRSS: resident now; VmHWM: peak resident so far
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

model, photo, out, long_side, tile = sys.argv[1:6]
predictor = Predictor.from_folder(model, long_side=int(long_side), tile=int(tile))
baseline = status_mib("VmRSS")
start = time.perf_counter()
result = run_score_job(ScoreJob(output=Path(out), input=Path(photo), progress=False),
                       predictor, ScoreSettings())
record = result.records[0]
print(json.dumps({"baseline_rss_mib": baseline, "peak_rss_mib": status_mib("VmHWM"),
                  "seconds": time.perf_counter() - start, "ok": record.ok,
                  "size": [record.height, record.width]}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("long_side", [0, 128])
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_peak_memory_of_a_4000x3000_photo_is_bounded(tmp_path, tiny_model_dir, long_side):
    path = write_photo(tmp_path / "big.jpg", photo_array(3000, 4000))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEMORY_PROBE,
            str(tiny_model_dir),
            str(path),
            str(tmp_path / "out"),
            str(long_side),
            "256",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    probe = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"long_side={long_side}: {probe}")
    assert probe["ok"] and probe["size"] == [3000, 4000]
    # A 12 MP photo is 36 MB as uint8 and 48 MB per float32 map; the whole run must stay
    # within a small multiple of that above the resident size after loading the model.
    assert probe["peak_rss_mib"] - probe["baseline_rss_mib"] < 1500
