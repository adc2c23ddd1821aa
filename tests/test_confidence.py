"""Stage 4 (video_confidence.py, confidence/maps.py): the batched path against the original's loop, the
script end to end, user errors. Parity with the original's maps is in test_parity.py."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import video_confidence
from rife.model import load_flownet
from utils.cli import run_main
from confidence.maps import confidence_maps, confidence_maps_per_view
from utils.images import read_rgb, write_png
from tolerances import uint8_close
from tools.parity.tolerances import NETWORK_UINT8

def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def rife_dir(reference_dir) -> Path:
    return reference_dir / "fixtures" / "rife"


def tiny_strips(num_frames: int, size: int) -> list[np.ndarray]:
    """(size, 16*size, 3) uint8 strips of a smooth pattern drifting over time, shifted per view."""
    y, x = np.mgrid[0:size, 0:size] / size
    strips = []
    for k in range(num_frames):
        views = []
        for v in range(16):
            phase = 0.3 * k + 0.1 * v
            rgb = np.stack([np.sin(6 * x + phase), np.cos(5 * y - phase), np.sin(4 * (x + y) + 2 * phase)], -1)
            views.append(((rgb + 1) * 127.5).astype(np.uint8))
        strips.append(np.concatenate(views, axis=1))
    return strips


def test_batched_path_equals_per_view_reference(rife_dir):
    strips = tiny_strips(5, 32)
    flownet = load_flownet(rife_dir)
    batched = list(confidence_maps(strips, flownet, batch_size=24))
    reference = list(confidence_maps_per_view(strips, load_flownet(rife_dir, plain_kernels=True)))
    assert [k for k, *_ in batched] == [k for k, *_ in reference] == list(range(5))
    for (_, ssim_b, rgb_b), (_, ssim_r, rgb_r) in zip(batched, reference):
        uint8_close(ssim_b, ssim_r, NETWORK_UINT8)
        uint8_close(rgb_b, rgb_r, NETWORK_UINT8)


def test_tiny_64px_strips_through_the_script(rife_dir, repo_root, tmp_path):
    """The script end to end (its parity on the fixture's frames is in test_parity.py): a map per frame and
    kind, the first and last frames fully confident, the input frames untouched."""
    for k, strip in enumerate(tiny_strips(4, 64)):
        write_png(tmp_path / "data" / f"{k:02d}.png", strip)
    inputs = digest(tmp_path / "data")
    subprocess.run([sys.executable, "video_confidence.py", "--root_path", str(tmp_path), "--model", str(rife_dir),
                    "--device", "cpu"], cwd=repo_root, check=True, capture_output=True)
    for k in range(4):
        for kind in ("ssim", "rgb"):
            conf = read_rgb(tmp_path / "data" / "conf_map" / f"{k:02d}_{kind}.png")[..., 0]
            assert conf.shape == (64, 1024)
            assert (conf == 255).all() == (k in (0, 3))
    assert digest(tmp_path / "data") == inputs


def run_cli(monkeypatch, capsys, *args: str) -> str:
    """video_confidence.py in-process; returns stderr, asserting the one-line user-error exit."""
    monkeypatch.setattr(sys, "argv", ["video_confidence.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        run_main(video_confidence.main)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    return err


def test_user_errors(monkeypatch, capsys, rife_dir, tmp_path):
    assert "does not exist" in run_cli(monkeypatch, capsys, "--root_path", str(tmp_path / "nowhere"))
    data = tmp_path / "data"
    write_png(data / "00.png", np.zeros((8, 100, 3), np.uint8))
    write_png(data / "01.png", np.zeros((8, 100, 3), np.uint8))
    model = ["--model", str(rife_dir), "--device", "cpu"]
    assert "16 x its height wide" in run_cli(monkeypatch, capsys, "--root_path", str(tmp_path), *model)
    write_png(data / "00.png", np.zeros((4, 64, 3), np.uint8))
    write_png(data / "01.png", np.zeros((8, 128, 3), np.uint8))
    assert "all frames must have one size" in run_cli(monkeypatch, capsys, "--root_path", str(tmp_path), *model)
    write_png(data / "00.png", np.zeros((8, 128, 3), np.uint8))
    assert "flownet.pkl" in run_cli(monkeypatch, capsys, "--root_path", str(tmp_path), "--model", str(tmp_path))
    assert not (data / "conf_map").exists()
