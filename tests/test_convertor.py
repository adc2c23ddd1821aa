"""Stage 5 (data_convertor.py): parity with the original's output (reference convertor/ fixtures),
tiny strips, more than 99 frames, and user errors."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convert.dataset import convert_dataset
from utils.images import read_rgb, write_png

NUM_VIEWS = 16
TOL = 1e-6
# variant -> (--confidence flag, copy conf_map/ into the input)
VARIANTS = {
    "confidence": (True, True),
    "no_confidence": (False, True),
    "no_confidence_no_conf_dir": (False, False),
}


def make_input(reference_dir: Path, root: Path, with_conf_dir: bool) -> Path:
    """ROOT/data with the reference's frames 00..02 (and their conf_map/), as the fixtures were made."""
    source = reference_dir / "fixtures" / "confidence" / "data"
    for k in range(3):
        (root / "data").mkdir(parents=True, exist_ok=True)
        shutil.copy(source / f"{k:02d}.png", root / "data")
        if with_conf_dir:
            (root / "data" / "conf_map").mkdir(exist_ok=True)
            for kind in ("ssim", "rgb"):
                shutil.copy(source / "conf_map" / f"{k:02d}_{kind}.png", root / "data" / "conf_map")
    return root


def run_convertor(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "data_convertor.py", *args], cwd=repo_root, capture_output=True, text=True)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def assert_json_equal(ours, ref, where: str = "") -> None:
    """Same keys in the same order, same list lengths, equal strings, numbers within TOL."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict) and list(ours) == list(ref), f"{where}: keys {list(ours)} != {list(ref)}"
        for key in ref:
            assert_json_equal(ours[key], ref[key], f"{where}.{key}")
    elif isinstance(ref, list):
        assert isinstance(ours, list) and len(ours) == len(ref), f"{where}: length differs"
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert_json_equal(a, b, f"{where}[{i}]")
    elif isinstance(ref, float):
        assert isinstance(ours, (int, float)) and abs(ours - ref) <= TOL, f"{where}: {ours} != {ref}"
    else:
        assert ours == ref and type(ours) is type(ref), f"{where}: {ours!r} != {ref!r}"


def pixel_sha256(path: Path) -> str:
    with Image.open(path) as img:
        return hashlib.sha256(np.ascontiguousarray(np.asarray(img)).tobytes()).hexdigest()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_script_matches_reference_convertor(tmp_path, repo_root, reference_dir, variant):
    confidence, with_conf_dir = VARIANTS[variant]
    root = make_input(reference_dir, tmp_path / "in", with_conf_dir)
    before = tree_digest(root)
    out = tmp_path / "out"
    result = run_convertor(repo_root, "--input", str(root), "--output", str(out), *(["--confidence"] if confidence else []))
    assert result.returncode == 0, result.stderr
    assert tree_digest(root) == before, "the converter modified its input"

    fixtures = reference_dir / "fixtures" / "convertor"
    listing = json.loads((fixtures / "listing.json").read_text())["variants"][variant]
    for entry in listing["files"]:
        if "pixel_sha256" in entry:
            assert pixel_sha256(out / entry["path"]) == entry["pixel_sha256"], entry["path"]

    for ref_path in sorted((fixtures / variant).rglob("*.json")):
        rel = ref_path.relative_to(fixtures / variant)
        ours, ref = json.loads((out / rel).read_text()), json.loads(ref_path.read_text())
        if variant == "no_confidence_no_conf_dir" and rel.parent == Path("."):
            # the original converted only 2 of the 3 frames ("entries in data/ minus 1"); we convert
            # all 3, and the frames both convert must match
            per_frame = NUM_VIEWS if rel.name == "transforms_train.json" else 4
            assert len(ours["frames"]) == 3 * per_frame
            ours["frames"] = ours["frames"][: len(ref["frames"])]
        assert_json_equal(ours, ref, str(rel))

    # [INFO] lines as the original's, except that the merged test split reports its real size
    expected = [line.replace("<out>", str(out)) for line in listing["stdout_info_lines"]]
    if variant == "no_confidence_no_conf_dir":
        expected = [
            *expected[:4],
            f"[INFO] write 16 images to {out / '02' / 'transforms_train.json'}",
            f"[INFO] write 4 images to {out / '02' / 'transforms_test.json'}",
            f"[INFO] write 48 images to {out / 'transforms_train.json'}",
            f"[INFO] write 3 images to {out / 'transforms_test.json'}",
        ]
    expected[-1] = expected[-1].replace("write 3 images", "write 12 images")
    assert [line for line in result.stdout.splitlines() if line.startswith("[INFO]")] == expected


def test_library_matches_reference_convertor(tmp_path, reference_dir):
    root = make_input(reference_dir, tmp_path / "in", with_conf_dir=True)
    convert_dataset(root, tmp_path / "out", confidence=True, log=lambda line: None)
    fixtures = reference_dir / "fixtures" / "convertor" / "confidence"
    for ref_path in sorted(fixtures.rglob("*.json")):
        rel = ref_path.relative_to(fixtures)
        assert_json_equal(json.loads((tmp_path / "out" / rel).read_text()), json.loads(ref_path.read_text()), str(rel))


def synthetic_data(root: Path, num_frames: int, size: int, confidence: bool) -> Path:
    """ROOT/data/{k:02d}.png strips (view v red = 16 v, green = k % 256) and optional conf maps."""
    for k in range(num_frames):
        views = np.zeros((NUM_VIEWS, size, size, 3), np.uint8)
        views[..., 0] = (16 * np.arange(NUM_VIEWS))[:, None, None]
        views[..., 1] = k % 256
        write_png(root / "data" / f"{k:02d}.png", np.concatenate(list(views), axis=1))
        if confidence:
            for kind, value in (("ssim", 200), ("rgb", 100)):
                write_png(root / "data" / "conf_map" / f"{k:02d}_{kind}.png", np.full((size, NUM_VIEWS * size), value, np.uint8))
    return root


def test_tiny_strips_scale_intrinsics(tmp_path, repo_root, reference_dir):
    root = synthetic_data(tmp_path / "in", 2, 64, confidence=True)
    out = tmp_path / "out"
    result = run_convertor(repo_root, "--input", str(root), "--output", str(out), "--confidence")
    assert result.returncode == 0, result.stderr

    ours = json.loads((out / "transforms_train.json").read_text())
    ref = json.loads((reference_dir / "fixtures" / "convertor" / "confidence" / "transforms_train.json").read_text())
    assert (ours["fl_x"], ours["fl_y"], ours["cx"], ours["cy"]) == (70.0, 70.0, 32.0, 32.0)
    for a, b in zip(ours["frames"], ref["frames"]):  # the cameras do not depend on the image size
        np.testing.assert_allclose(a["transform_matrix"], b["transform_matrix"], atol=TOL, rtol=0)
    assert read_rgb(out / "01" / "rgb-05.png").shape == (64, 64, 3)
    assert read_rgb(out / "01" / "rgb-05.png")[0, 0].tolist() == [80, 1, 0]
    with Image.open(out / "00" / "conf_ssim-03.png") as img:
        assert img.mode == "L" and np.asarray(img).max() == 200


def test_more_than_99_frames_in_numeric_order(tmp_path):
    root = synthetic_data(tmp_path / "in", 101, 16, confidence=False)
    out = tmp_path / "out"
    frame_dirs = convert_dataset(root, out, confidence=False, log=lambda line: None)
    assert [d.name for d in frame_dirs[98:]] == ["98", "99", "100"]
    assert read_rgb(out / "100" / "rgb-00.png")[0, 0, 1] == 100
    merged = json.loads((out / "transforms_train.json").read_text())["frames"]
    assert len(merged) == 101 * NUM_VIEWS
    assert [f["file_path"] for f in merged[-17:-15]] == ["99/rgb-15.png", "100/rgb-00.png"]
    assert merged[-1]["time"] == pytest.approx(100 / 30)
    test = json.loads((out / "transforms_test.json").read_text())["frames"]
    assert [f["file_path"] for f in test[-4:]] == [f"100/rgb-{v:02d}.png" for v in (0, 5, 10, 15)]


def _bad_width(root: Path) -> None:
    write_png(root / "data" / "01.png", np.zeros((16, 200, 3), np.uint8))


def _mixed_sizes(root: Path) -> None:
    write_png(root / "data" / "01.png", np.zeros((32, 32 * NUM_VIEWS, 3), np.uint8))


def _missing_conf(root: Path) -> None:
    (root / "data" / "conf_map" / "01_rgb.png").unlink()


def _gap_in_frames(root: Path) -> None:
    (root / "data" / "01.png").unlink()


def _empty_data(root: Path) -> None:
    shutil.rmtree(root / "data")
    (root / "data").mkdir()


@pytest.mark.parametrize(
    "break_input, message",
    [
        (_bad_width, "must be 16 x its height wide"),
        (_mixed_sizes, "all frames must have one size"),
        (_missing_conf, "run video_confidence.py first, or drop --confidence"),
        (_gap_in_frames, "01.png is missing"),
        (_empty_data, "no numbered frames"),
    ],
    ids=["bad_width", "mixed_sizes", "missing_conf", "gap_in_frames", "empty_data"],
)
def test_user_errors_exit_cleanly_without_writing(tmp_path, repo_root, break_input, message):
    root = synthetic_data(tmp_path / "in", 3, 16, confidence=True)
    break_input(root)
    before = tree_digest(root)
    out = tmp_path / "out"
    result = run_convertor(repo_root, "--input", str(root), "--output", str(out), "--confidence")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert tree_digest(root) == before
    assert not out.exists()


def test_missing_input_folder_is_a_user_error(tmp_path, repo_root):
    result = run_convertor(repo_root, "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "does not exist" in result.stderr
