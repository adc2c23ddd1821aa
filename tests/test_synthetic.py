import subprocess
import sys

import numpy as np

from tools.synthetic import make_video
from utils.images import list_frames, read_rgba


def test_same_seed_gives_identical_frames(tmp_path):
    a = make_video(tmp_path / "a", num_frames=3, size=64, seed=5)
    b = make_video(tmp_path / "b", num_frames=3, size=64, seed=5)
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes()


def test_different_seeds_differ(tmp_path):
    a = make_video(tmp_path / "a", num_frames=1, size=64, seed=1)
    b = make_video(tmp_path / "b", num_frames=1, size=64, seed=2)
    assert not np.array_equal(read_rgba(a[0]), read_rgba(b[0]))


def test_frames_are_rgba_with_an_object_on_transparent_background(tmp_path):
    frames = [read_rgba(p) for p in make_video(tmp_path, num_frames=4, size=64)]
    for frame in frames:
        assert frame.shape == (64, 64, 4)
        alpha = frame[..., 3]
        assert alpha[0, 0] == 0 and alpha[-1, -1] == 0  # corners transparent
        assert 0.05 < (alpha > 127).mean() < 0.5  # an object, not the whole frame
        assert frame[alpha > 127, :3].std() > 10  # textured, not flat


def test_object_moves_and_deforms(tmp_path):
    frames = [read_rgba(p)[..., 3] > 127 for p in make_video(tmp_path, num_frames=4, size=64)]
    centroids = [np.argwhere(m).mean(0) for m in frames]
    areas = [m.sum() for m in frames]
    assert np.linalg.norm(centroids[0] - centroids[1]) > 1.0
    assert len(set(areas)) > 1


def test_cli_writes_numbered_frames(tmp_path, repo_root):
    out = tmp_path / "video"
    subprocess.run(
        [sys.executable, "-m", "tools.synthetic", str(out), "--frames", "3", "--size", "32"],
        check=True, cwd=repo_root, capture_output=True,
    )
    assert [p.name for p in list_frames(out)] == ["0.png", "1.png", "2.png"]


def test_cli_rejects_bad_frame_count(tmp_path, repo_root):
    proc = subprocess.run(
        [sys.executable, "-m", "tools.synthetic", str(tmp_path), "--frames", "0"],
        cwd=repo_root, capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "--frames" in proc.stderr and "Traceback" not in proc.stderr
