"""Stage 2 batch mode (frame_interpolation.py --root_path/--num_frame): same frames as pair mode, order, errors."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import frame_interpolation
from rife.interpolate import interpolate_pair, interpolate_video
from rife.model import load_flownet
from utils.cli import run_main
from utils.images import read_rgb, write_png
from tolerances import uint8_close

SIZE = 32  # view size of the synthetic strips: 32 x 512, already a multiple of 32


@pytest.fixture(scope="module")
def rife_dir(reference_dir) -> Path:
    return reference_dir / "fixtures" / "rife"


@pytest.fixture(scope="module")
def flownet(rife_dir):
    return load_flownet(rife_dir)


def strip(k: int, size: int = SIZE) -> np.ndarray:
    """(size, 16*size, 3) uint8: a smooth colour pattern drifting with frame k, different per view."""
    y, x = np.mgrid[0:size, 0:16 * size] / size
    rgb = np.stack([np.sin(3 * x + 0.4 * k), np.cos(4 * y - 0.3 * k + x), np.sin(2 * (x + y) + 0.2 * k)], -1)
    return ((rgb + 1) * 127.5).astype(np.uint8)


def make_video(root: Path, num_frames: int, size: int = SIZE) -> Path:
    for k in range(num_frames):
        write_png(root / f"{k}.png", strip(k, size))
    return root


def read_pair(folder: Path, count: int = 5) -> np.ndarray:
    return np.stack([read_rgb(folder / f"img{j}.png") for j in range(count)])


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def batch_run(rife_dir, repo_root, tmp_path_factory) -> tuple[Path, dict]:
    """One batch-mode run of the script on 3 frames (shared by the tests below)."""
    root = make_video(tmp_path_factory.mktemp("video"), 3)
    before = digest(root)
    subprocess.run([sys.executable, "frame_interpolation.py", "--root_path", str(root), "--num_frame", "3",
                    "--cycle2", "--model", str(rife_dir), "--device", "cpu"],
                   cwd=repo_root, check=True, capture_output=True)
    return root, before


def test_batch_script_writes_every_pair(batch_run):
    root, before = batch_run
    assert sorted(p.name for p in (root / "interp").iterdir()) == ["0_1", "1_2"]
    for pair in ("0_1", "1_2"):
        assert sorted(p.name for p in (root / "interp" / pair).iterdir()) == [f"img{j}.png" for j in range(5)]
    assert digest(root) == before  # inputs untouched


def test_batch_mode_equals_pair_mode(batch_run, flownet, tmp_path):
    root, _ = batch_run
    for i in range(2):
        interpolate_pair(flownet, root / f"{i}.png", root / f"{i + 1}.png", tmp_path / str(i), cycle2=True)
        uint8_close(read_pair(root / "interp" / f"{i}_{i + 1}"), read_pair(tmp_path / str(i)))
    np.testing.assert_array_equal(read_rgb(root / "interp" / "0_1" / "img4.png"), strip(1))


@pytest.mark.parametrize("schedule, count", [(dict(exp=2), 5), (dict(ratio=0.3), 3)], ids=["exp2", "ratio"])
def test_other_schedules_batch_like_pair_mode(schedule, count, flownet, tmp_path):
    root = make_video(tmp_path / "video", 3)
    interpolate_video(flownet, root, 3, **schedule)
    for i in range(2):
        paths = interpolate_pair(flownet, root / f"{i}.png", root / f"{i + 1}.png", tmp_path / str(i), **schedule)
        assert len(paths) == count
        uint8_close(read_pair(root / "interp" / f"{i}_{i + 1}", count), read_pair(tmp_path / str(i), count))


def test_more_than_99_frames_keep_their_order(flownet, tmp_path):
    root = tmp_path / "video"
    for k in range(101):
        write_png(root / f"{k}.png", np.full((8, 128, 3), k, np.uint8))
    # a ratio within rthreshold/2 of 0 returns img0 unchanged: no network call, only the file plumbing
    folders = interpolate_video(flownet, root, 101, ratio=0.005)
    assert [f.name for f in folders] == [f"{i}_{i + 1}" for i in range(100)]
    for i in (9, 10, 98, 99):
        assert (read_pair(root / "interp" / f"{i}_{i + 1}", 3)[:, 0, 0, 0] == [i, i, i + 1]).all()


def test_per_view_interpolates_each_view_on_its_own(flownet, tmp_path):
    root = make_video(tmp_path / "video", 2)
    interpolate_video(flownet, root, 2, cycle2=True, per_view=True)
    got = read_pair(root / "interp" / "0_1")
    for view in (0, 9):
        crop = np.s_[:, view * SIZE:(view + 1) * SIZE]
        for k in range(2):
            write_png(tmp_path / "views" / f"{k}.png", strip(k)[crop])
        interpolate_pair(flownet, tmp_path / "views" / "0.png", tmp_path / "views" / "1.png", tmp_path / str(view),
                         cycle2=True)
        uint8_close(got[(slice(None), *crop)], read_pair(tmp_path / str(view)))


def test_pair_mode_keeps_alpha_as_the_original(flownet, tmp_path):
    rgba = np.concatenate([strip(0)[:, :SIZE], np.full((SIZE, SIZE, 1), 200, np.uint8)], -1)
    write_png(tmp_path / "a.png", rgba)
    write_png(tmp_path / "b.png", rgba[::-1])
    paths = interpolate_pair(flownet, tmp_path / "a.png", tmp_path / "b.png", tmp_path / "out", cycle2=True)
    with Image.open(paths[0]) as img:
        assert img.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(img), rgba)


def run_cli(monkeypatch, capsys, *args: str) -> str:
    """frame_interpolation.py in-process; returns stderr, asserting the one-line user-error exit."""
    monkeypatch.setattr(sys, "argv", ["frame_interpolation.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        run_main(frame_interpolation.main)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    return err


def test_user_errors(monkeypatch, capsys, rife_dir, tmp_path):
    root = make_video(tmp_path / "video", 2)
    batch = ["--root_path", str(root), "--model", str(rife_dir), "--device", "cpu", "--cycle2"]
    assert "lacks 1 of the 3 frames (2.png)" in run_cli(monkeypatch, capsys, *batch, "--num_frame", "3")
    assert "at least 2" in run_cli(monkeypatch, capsys, *batch, "--num_frame", "1")
    assert "flownet.pkl" in run_cli(monkeypatch, capsys, "--root_path", str(root), "--num_frame", "2",
                                    "--model", str(tmp_path))
    assert "either --img" in run_cli(monkeypatch, capsys, "--model", str(rife_dir))
    assert "batch mode" in run_cli(monkeypatch, capsys, "--img", "a.png", "b.png", "--per_view")
    write_png(root / "1.png", strip(1, 16))
    assert "differ in size" in run_cli(monkeypatch, capsys, *batch, "--num_frame", "2")
    write_png(root / "0.png", np.zeros((SIZE, 500, 3), np.uint8))
    write_png(root / "1.png", np.zeros((SIZE, 500, 3), np.uint8))
    assert "16 x its height wide" in run_cli(monkeypatch, capsys, *batch, "--num_frame", "2")
    assert not (root / "interp").exists()
