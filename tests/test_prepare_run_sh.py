"""run.sh from a video file: stage 0 writes data/<stem>, the chain goes on through stage 5, and
stage 0's mistakes fail in the preflight with one line. Same tiny settings as test_run_sh."""
import os

import pytest

from test_run_sh import NUM_FRAMES, check_chain_outputs, run_sh
from tools.synthetic import backdrop_video, write_video
from utils.images import list_frames, read_rgba

VIDEO_FRAMES = 8


@pytest.fixture
def videodir(tmp_path, repo_root):
    """A scratch project (code linked in, data/ and outputs private) with clip.mp4 beside run.sh."""
    for name in os.listdir(repo_root):
        if name not in {"data", "output", "recon_data", "recon_out", ".git", ".venv"}:
            (tmp_path / name).symlink_to(repo_root / name)
    frames, _ = backdrop_video(VIDEO_FRAMES, 96, 96, "noisy", seed=1)
    write_video(tmp_path / "clip.mp4", frames)
    return tmp_path


def test_chain_runs_from_an_mp4_and_a_rerun_skips_stage_0(videodir):
    proc = run_sh(videodir, "clip.mp4", "vid", "cpu", NUM_FRAMES, 0)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = videodir / "data" / "clip"
    frames = [read_rgba(p) for p in list_frames(data)]
    assert len(frames) == NUM_FRAMES and all(f.shape == (96, 96, 4) for f in frames)
    assert all(0 < (f[..., 3] >= 128).mean() < 0.5 for f in frames)  # matted: an object, not the whole frame
    assert (data / "preview" / "contact_sheet.png").is_file()
    check_chain_outputs(videodir, "vid")

    again = run_sh(videodir, "clip.mp4", "vid", "cpu", NUM_FRAMES, 0)
    assert again.returncode == 0, again.stderr[-2000:]
    for stage in ["prepare", "generate", "convert"]:
        assert f"=== {stage}: done before, skipped" in again.stdout


def _foreign_frames(videodir):
    folder = videodir / "data" / "clip"
    folder.mkdir(parents=True)
    (folder / "0.png").write_bytes(b"my own frame")


VIDEO_ERRORS = {
    # case: (setup, run.sh arguments, extra env, words the message must contain)
    "missing video": (None, ["nope.mp4", "o", "cpu", 3, 0], {}, ["video", "nope.mp4 does not exist"]),
    "missing VIDEO file": (None, ["mine", "o", "cpu", 3, 0], {"VIDEO": "gone.mov"}, ["video", "gone.mov does not exist"]),
    "fewer frames than N_FRAMES": (None, ["clip.mp4", "o", "cpu", 20, 0], {}, ["has 8 frames", "20"]),
    "someone else's data folder": (_foreign_frames, ["clip.mp4", "o", "cpu", 3, 0], {},
                                   ["data/clip already holds files", "FORCE=1"]),
    "missing matting model": (None, ["clip.mp4", "o", "cpu", 3, 0],
                              {"MATTING": "rembg", "MATTING_MODEL": "nowhere/u2net.onnx"},
                              ["nowhere/u2net.onnx not found", "rembg releases"]),
}


@pytest.mark.parametrize("case", sorted(VIDEO_ERRORS))
def test_stage_0_mistakes_fail_in_the_preflight(videodir, case):
    setup, args, env, words = VIDEO_ERRORS[case]
    if setup:
        setup(videodir)
    before = {p: p.read_bytes() for p in videodir.rglob("*") if p.is_file() and not p.is_symlink()}
    proc = run_sh(videodir, *args, **env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
    for word in words:
        assert word in proc.stderr, proc.stderr
    after = {p: p.read_bytes() for p in videodir.rglob("*") if p.is_file() and not p.is_symlink()}
    assert after == before  # the video and any data folder untouched, nothing written
