"""Stage 3 (concat_video.py): data/ frame order, previews, >99 frames, and user errors.

Synthetic strips: view v of a strip is flat, red = 16 v, green = the strip's data index
times ``step`` (so a frame out of place or a view out of place is visible), blue = 128.
"""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assemble.previews import contact_rows
from utils.strips import list_data_frames
from utils.images import read_rgb, write_png
from utils.video import read_mp4

NUM_VIEWS = 16


def strip(data_index: int, size: int, step: int) -> np.ndarray:
    """(size, 16*size, 3) uint8 strip whose pixels encode its view and data-frame index."""
    views = np.zeros((NUM_VIEWS, size, size, 3), np.uint8)
    views[..., 0] = (16 * np.arange(NUM_VIEWS))[:, None, None]
    views[..., 1] = (data_index * step) % 256
    views[..., 2] = 128
    return np.concatenate(list(views), axis=1)


def make_root(root: Path, num_frames: int, size: int = 16, step: int = 1, interp: bool = True) -> Path:
    """generate.py output {i}.png plus frame_interpolation's interp/{i}_{i+1}/img0..img4.png."""
    for i in range(num_frames):
        write_png(root / f"{i}.png", strip(4 * i, size, step))
        if interp and i < num_frames - 1:
            for j in range(5):
                write_png(root / "interp" / f"{i}_{i + 1}" / f"img{j}.png", strip(4 * i + j, size, step))
    return root


def run_concat(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "concat_video.py", *args], cwd=repo_root, capture_output=True, text=True)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def data_indices(root: Path) -> list[int]:
    """Green value of every data frame, in list_data_frames order (= numeric order)."""
    return [int(read_rgb(p)[0, 0, 1]) for p in list_data_frames(root / "data")]


def test_interp_frames_are_inserted_between_generated_frames(tmp_path, repo_root):
    root = make_root(tmp_path / "out", 4, step=10)
    result = run_concat(repo_root, "--root_path", str(root), "--num_frames", "4", "--interp")
    assert result.returncode == 0, result.stderr

    names = [p.name for p in list_data_frames(root / "data")]
    assert names == [f"{k:02d}.png" for k in range(4 + 3 * 3)]
    for k, path in enumerate(list_data_frames(root / "data")):
        image = read_rgb(path)
        assert image.shape == (16, 16 * NUM_VIEWS, 3)
        assert np.array_equal(image, strip(k, 16, 10)), f"data frame {k} is not the expected strip"


def test_previews_decode_with_right_views_and_counts(tmp_path, repo_root):
    root = make_root(tmp_path / "out", 4, step=10)
    assert run_concat(repo_root, "--root_path", str(root), "--num_frame", "4", "--interp").returncode == 0

    preview = root / "preview"
    for v in range(NUM_VIEWS):
        video = read_mp4(preview / f"view_{v:02d}.mp4")
        assert video.shape == (13, 16, 16, 3)
        # lossy H.264 of flat colours: within a few levels
        assert np.abs(video[..., 0].mean(axis=(1, 2)) - 16 * v).max() < 4
        assert np.abs(video[..., 1].mean(axis=(1, 2)) - 10 * np.arange(13)).max() < 4

    # the original's choice: frame v of view360 is view v of data frame (v mod --num_frames)
    video = read_mp4(preview / "view360.mp4")
    assert video.shape == (NUM_VIEWS, 16, 16, 3)
    views = np.arange(NUM_VIEWS)
    assert np.abs(video[..., 0].mean(axis=(1, 2)) - 16 * views).max() < 4
    assert np.abs(video[..., 1].mean(axis=(1, 2)) - 10 * (views % 4)).max() < 4

    sheet = read_rgb(preview / "contact_sheet.png")
    rows = contact_rows(13)
    assert rows == [0, 4, 8, 12]
    assert sheet.shape == (4 * 16 + 3 * 2, NUM_VIEWS * 16 + 15 * 2, 3)
    assert np.array_equal(sheet[18:34, 0:16], strip(4, 16, 10)[:, :16])  # row 1 = data frame 4, view 0


def test_without_interp_only_generated_frames(tmp_path, repo_root):
    root = make_root(tmp_path / "out", 3)
    result = run_concat(repo_root, "--root_path", str(root), "--num_frames", "3")
    assert result.returncode == 0, result.stderr
    assert data_indices(root) == [0, 4, 8]
    assert read_mp4(root / "preview" / "view_00.mp4").shape[0] == 3


def test_missing_interp_folder_falls_back_to_generated_frames(tmp_path, repo_root):
    root = make_root(tmp_path / "out", 3, interp=False)
    result = run_concat(repo_root, "--root_path", str(root), "--num_frames", "3", "--interp")
    assert result.returncode == 0, result.stderr
    assert "no interpolation frames" in result.stderr
    assert data_indices(root) == [0, 4, 8]


def test_rerun_with_fewer_frames_removes_stale_data_frames(tmp_path, repo_root):
    root = make_root(tmp_path / "out", 3)
    assert run_concat(repo_root, "--root_path", str(root), "--num_frames", "3", "--interp").returncode == 0
    assert len(list_data_frames(root / "data")) == 9
    assert run_concat(repo_root, "--root_path", str(root), "--num_frames", "3").returncode == 0
    assert data_indices(root) == [0, 4, 8]


def test_more_than_99_frames_stay_in_order(tmp_path, repo_root):
    root = make_root(tmp_path / "out", 26)
    result = run_concat(repo_root, "--root_path", str(root), "--num_frames", "26", "--interp")
    assert result.returncode == 0, result.stderr
    frames = list_data_frames(root / "data")
    assert len(frames) == 26 + 3 * 25 == 101
    assert frames[99].name == "99.png" and frames[100].name == "100.png"
    assert data_indices(root) == list(range(101))
    assert read_mp4(root / "preview" / "view_03.mp4").shape == (101, 16, 16, 3)


def _bad_width(root: Path) -> None:
    write_png(root / "1.png", np.zeros((16, 200, 3), np.uint8))


def _mixed_sizes(root: Path) -> None:
    write_png(root / "1.png", np.zeros((32, 32 * NUM_VIEWS, 3), np.uint8))


def _missing_interp_image(root: Path) -> None:
    (root / "interp" / "1_2" / "img2.png").unlink()


def _corrupt_png(root: Path) -> None:
    (root / "2.png").write_bytes(b"not a png")


@pytest.mark.parametrize(
    "break_input, args, message",
    [
        (None, ["--num_frames", "5"], "3.png is missing"),
        (None, ["--num_frames", "0"], "--num_frames must be at least 1"),
        (_bad_width, ["--num_frames", "3"], "must be 16 x its height wide"),
        (_mixed_sizes, ["--num_frames", "3"], "all frames must have one size"),
        (_missing_interp_image, ["--num_frames", "3", "--interp"], "img2.png is missing"),
        (_corrupt_png, ["--num_frames", "3"], "cannot read image"),
    ],
    ids=["too_few_frames", "zero_frames", "bad_width", "mixed_sizes", "missing_interp", "corrupt_png"],
)
def test_user_errors_exit_cleanly_without_writing(tmp_path, repo_root, break_input, args, message):
    root = make_root(tmp_path / "out", 3)
    if break_input:
        break_input(root)
    before = tree_digest(root)
    result = run_concat(repo_root, "--root_path", str(root), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert tree_digest(root) == before
    assert not (root / "data").exists()


def test_missing_root_folder_is_a_user_error(tmp_path, repo_root):
    result = run_concat(repo_root, "--root_path", str(tmp_path / "nope"), "--num_frames", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "does not exist" in result.stderr
