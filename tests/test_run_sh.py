"""run.sh end to end on the CPU: the chain's outputs, resume after a kill, and bad input.

The chain uses the tiny model and RIFE with seeded random weights on a 3-frame synthetic video.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tools.synthetic import make_video

NUM_FRAMES = 3
VIEW = 64  # the tiny model's image size
DATA_FRAMES = NUM_FRAMES + 3 * (NUM_FRAMES - 1)
STAGES = ["generate", "interpolate", "assemble", "confidence", "convert"]


@pytest.fixture
def workdir(tmp_path, repo_root):
    """A scratch project: run.sh and the code linked in, data/ and outputs private to the test."""
    for name in os.listdir(repo_root):
        if name not in {"data", "output", "recon_data", "recon_out", ".git", ".venv"}:
            (tmp_path / name).symlink_to(repo_root / name)
    make_video(tmp_path / "data" / "clip", num_frames=NUM_FRAMES, size=96, seed=1)
    return tmp_path


def chain_env(**extra):
    env = dict(os.environ, PYTHON=sys.executable, CFG="configs/tiny.yaml", CKPT="random", RIFE_MODEL="random",
               CROP_SIZE="48", SAMPLE_STEPS="2", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def run_sh(workdir, *args, **env):
    return subprocess.run(["bash", "run.sh", *map(str, args)], cwd=workdir, env=chain_env(**env),
                          capture_output=True, text=True, timeout=600)


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.load()  # a truncated file fails here
        return img.size


def check_chain_outputs(root: Path, name: str) -> None:
    out, recon = root / "output" / name, root / "recon_data" / name
    for i in range(NUM_FRAMES):
        assert image_size(out / f"{i}.png") == (16 * VIEW, VIEW)
    for i in range(NUM_FRAMES - 1):
        for j in range(5):
            assert image_size(out / "interp" / f"{i}_{i + 1}" / f"img{j}.png") == (16 * VIEW, VIEW)
    data = sorted((out / "data").glob("*.png"))
    assert [p.name for p in data] == [f"{k:02d}.png" for k in range(DATA_FRAMES)]
    for k in range(DATA_FRAMES):
        for kind in ("ssim", "rgb"):
            assert image_size(out / "data" / "conf_map" / f"{k:02d}_{kind}.png") == (16 * VIEW, VIEW)
    previews = sorted(p.name for p in (out / "preview").iterdir())
    assert previews == sorted([f"view_{v:02d}.mp4" for v in range(16)] + ["view360.mp4", "contact_sheet.png"])
    assert all((out / "preview" / p).stat().st_size > 0 for p in previews)
    for k in range(DATA_FRAMES):
        folder = recon / f"{k:02d}"
        for v in range(16):
            for prefix in ("rgb", "conf_ssim", "conf_rgb"):
                assert image_size(folder / f"{prefix}-{v:02d}.png") == (VIEW, VIEW)
        assert (folder / "transforms_train.json").is_file() and (folder / "transforms_test.json").is_file()
    assert (recon / "transforms_train.json").is_file() and (recon / "transforms_test.json").is_file()
    leftovers = [p for p in root.rglob(".*.tmp*")]
    assert leftovers == []


def test_chain_writes_every_stage_and_a_rerun_skips_them(workdir):
    proc = run_sh(workdir, "clip", "run1", "cpu", NUM_FRAMES, 0)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    check_chain_outputs(workdir, "run1")
    assert "all stages done" in proc.stdout

    again = run_sh(workdir, "clip", "run1", "cpu", NUM_FRAMES, 0)
    assert again.returncode == 0
    for stage in STAGES:
        assert f"=== {stage}: done before, skipped" in again.stdout

    recon = run_sh(workdir, "clip", "run1", "cpu", NUM_FRAMES, 0, RECON="1", RECON_ITERATIONS="2", RECON_EVAL="0",
                   RECON_VIDEO_FRAMES="0")
    assert recon.returncode == 0, recon.stdout[-2000:] + recon.stderr[-2000:]
    assert all(f"=== {stage}: done before, skipped" in recon.stdout for stage in STAGES)  # only stage 6 runs
    command = (workdir / "output" / "run1" / ".stages" / "reconstruct.done").read_text()
    assert "--no-eval --video_frames 0" in command
    out = workdir / "recon_out" / "run1"
    assert (out / "checkpoint.pt").is_file() and not list(out.rglob("*.mp4"))

    changed = run_sh(workdir, "clip", "run1", "cpu", NUM_FRAMES, 0, SEED="7", ATTENTION="sdpa")
    assert changed.returncode == 0, changed.stdout[-2000:] + changed.stderr[-2000:]
    assert "=== generate: done before" not in changed.stdout  # a changed flag redoes the stage...
    assert "=== convert: done before" not in changed.stdout  # ...and every stage after it
    command = (workdir / "output" / "run1" / ".stages" / "generate.done").read_text()
    assert "--seed 7" in command and "--attention sdpa" in command


def test_killed_stage_leaves_no_partial_file_and_rerun_completes(workdir):
    marker = workdir / "output" / "run2" / ".stages" / "assemble.done"
    proc = subprocess.Popen(["bash", "run.sh", "clip", "run2", "cpu", str(NUM_FRAMES), "0"], cwd=workdir,
                            env=chain_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.2)
    time.sleep(2)  # into the confidence stage
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not (workdir / "output" / "run2" / ".stages" / "confidence.done").exists()
    assert [p for p in workdir.rglob(".*.tmp*")] == []
    for png in (workdir / "output" / "run2").rglob("*.png"):
        image_size(png)  # every file that exists is complete

    rerun = run_sh(workdir, "clip", "run2", "cpu", NUM_FRAMES, 0)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    for stage in ["generate", "interpolate", "assemble"]:
        assert f"=== {stage}: done before, skipped" in rerun.stdout
    check_chain_outputs(workdir, "run2")


def _rgb_frames(folder: Path):
    for path in folder.glob("*.png"):
        Image.open(path).convert("RGB").save(path)


def _transparent_frame(folder: Path):
    Image.new("RGBA", (96, 96), (0, 0, 0, 0)).save(folder / "1.png")


def _mixed_sizes(folder: Path):
    Image.new("RGBA", (80, 80), (255, 0, 0, 255)).save(folder / "2.png")


def _empty(folder: Path):
    shutil.rmtree(folder)
    folder.mkdir()


def _corrupt_png(folder: Path):
    (folder / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")


BAD_INPUTS = {
    # case: (change to data/clip, run.sh arguments, extra env, words the message must contain)
    "missing data folder": (None, ["nope", "o", "cpu", 3, 0], {}, ["data/nope", "does not exist"]),
    "empty folder": (_empty, ["clip", "o", "cpu", 3, 0], {}, ["no PNG frames", "data/clip"]),
    "frames without alpha": (_rgb_frames, ["clip", "o", "cpu", 3, 0], {}, ["alpha", "Consistent4D"]),
    "fully transparent frame": (_transparent_frame, ["clip", "o", "cpu", 3, 0], {}, ["1.png", "fully transparent"]),
    "frames of different sizes": (_mixed_sizes, ["clip", "o", "cpu", 3, 0], {}, ["2.png", "same size"]),
    "unreadable frame": (_corrupt_png, ["clip", "o", "cpu", 3, 0], {}, ["1.png", "cannot read"]),
    "more frames than available": (None, ["clip", "o", "cpu", 5, 0], {}, ["has 3 frames", "N_FRAMES"]),
    "zero frames": (None, ["clip", "o", "cpu", 0, 0], {}, ["N_FRAMES", "'0'"]),
    "frames not a number": (None, ["clip", "o", "cpu", "ten", 0], {}, ["N_FRAMES", "'ten'"]),
    "cycle not 0/1": (None, ["clip", "o", "cpu", 3, 2], {}, ["CYCLE", "'2'"]),
    "too few arguments": (None, ["clip", "o", "cpu"], {}, ["expected 5 arguments", "usage"]),
    "absent gpu": (None, ["clip", "o", "7", 3, 0], {}, ["GPU 7"]),
    "missing checkpoint": (None, ["clip", "o", "cpu", 3, 0], {"CKPT": "ckpt/none.ckpt"},
                           ["ckpt/none.ckpt", "download", "ckpt/README.md"]),
    "missing rife weights": (None, ["clip", "o", "cpu", 3, 0], {"RIFE_MODEL": "ckpt_empty"},
                             ["flownet.pkl", "model/flownet.pkl"]),
    "bad env flag": (None, ["clip", "o", "cpu", 3, 0], {"FORCE": "yes"}, ["FORCE", "'yes'"]),
    "bad precision": (None, ["clip", "o", "cpu", 3, 0], {"PRECISION": "int8"}, ["PRECISION", "'int8'"]),
    "bad attention": (None, ["clip", "o", "cpu", 3, 0], {"ATTENTION": "flash"}, ["ATTENTION", "'flash'"]),
    "bad compile mode": (None, ["clip", "o", "cpu", 3, 0], {"COMPILE": "fast"}, ["COMPILE", "'fast'"]),
    "bad recon eval flag": (None, ["clip", "o", "cpu", 3, 0], {"RECON_EVAL": "no"}, ["RECON_EVAL", "'no'"]),
    "bad recon video frames": (None, ["clip", "o", "cpu", 3, 0], {"RECON_VIDEO_FRAMES": "-1"}, ["RECON_VIDEO_FRAMES", "'-1'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_fast_with_one_clear_line(workdir, case):
    change, args, env, words = BAD_INPUTS[case]
    folder = workdir / "data" / "clip"
    if change:
        change(folder)
    (workdir / "ckpt_empty").mkdir()
    before = {p: p.read_bytes() for p in folder.glob("*")}
    proc = run_sh(workdir, *args, **env)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[0]
    for word in words:
        assert word in proc.stderr, f"{word!r} not in: {proc.stderr}"
    assert message.startswith("error:")
    assert {p: p.read_bytes() for p in folder.glob("*")} == before  # data/ untouched
    assert not (workdir / "output" / "o" / "0.png").exists()  # failed before any model ran


def test_truncated_checkpoint_is_reported_before_loading(workdir):
    checkpoint = workdir / "ckpt_empty" / "model.ckpt"
    checkpoint.parent.mkdir()
    import torch
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    proc = run_sh(workdir, "clip", "o", "cpu", 3, 0, CKPT=str(checkpoint.relative_to(workdir)))
    assert proc.returncode != 0
    assert "truncated or corrupt" in proc.stderr and "Traceback" not in proc.stderr


def test_read_only_output_folder_is_reported(workdir):
    proc = run_sh(workdir, "clip", "o", "cpu", 3, 0, OUTPUT_ROOT="/proc/efficient4d")  # read-only, even for root
    assert proc.returncode != 0
    assert "/proc/efficient4d/o" in proc.stderr and "writable" in proc.stderr


def test_output_on_a_path_that_cannot_be_a_folder_is_reported(workdir):
    (workdir / "blocked").write_text("a file, not a folder")
    proc = run_sh(workdir, "clip", "o", "cpu", 3, 0, OUTPUT_ROOT="blocked")
    assert proc.returncode != 0
    assert "blocked/o" in proc.stderr and "writable" in proc.stderr
