"""generate.py as a user runs it: fixture grids with the fixture weights, random weights, user mistakes."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import generate
from tools.synthetic import make_video
from utils.cli import run_main
from utils.errors import UserError
from tolerances import uint8_close


def _run(repo_root, *args):
    return subprocess.run([sys.executable, "generate.py", *map(str, args)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300)


def test_generate_writes_the_fixture_grids(repo_root, reference_dir, tmp_path):
    tiny = reference_dir / "fixtures" / "tiny"
    fixture = torch.load(tiny / "sample.pt", weights_only=True)
    meta = fixture["meta"]
    result = _run(repo_root, "--cfg", "configs/tiny.yaml", "--ckpt", tiny / "state_dict.pt",
                  "--input", reference_dir.parent / "data" / "walking_white_faced_egret", "--output", tmp_path,
                  "--elevation", meta["elevation_deg"], "--crop_size", meta["crop_size"],
                  "--frame_num", meta["frame_num"], "--sample_steps", meta["ddim_steps"], "--seed", meta["seed"],
                  "--decomposed_sampling", "--cfg_scales", 2.0, 1.0, "--batch_view_num", 16, "--smooth_filter",
                  "--is_cyc", meta["is_cyc"], "--device", "cpu")
    assert result.returncode == 0, result.stderr
    expected = fixture["main"]["grid_uint8"].numpy()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.png" for i in range(len(expected)))
    for i, grid in enumerate(expected):
        uint8_close(np.asarray(Image.open(tmp_path / f"{i}.png")), grid)


def test_generate_with_random_weights_on_a_synthetic_video(repo_root, tmp_path):
    make_video(tmp_path / "video", num_frames=2, size=96, seed=2)
    out = tmp_path / "out"
    result = _run(repo_root, "--cfg", "configs/tiny.yaml", "--ckpt", "random", "--input", tmp_path / "video",
                  "--output", out, "--elevation", 15, "--crop_size", 40, "--frame_num", 3, "--sample_steps", 2,
                  "--cfg_scales", 1.0, "--smooth_filter", "--device", "cpu", "--crop_mode", "shared_scale")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("RANDOM weights") == 2  # when loading and again at the end
    assert "only 2 frame(s)" in result.stderr  # fewer frames than --frame_num: all are used
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png"]
    for i in range(2):
        image = Image.open(out / f"{i}.png")
        assert image.mode == "RGB" and image.size == (16 * 64, 64)


def test_generate_missing_input_exits_with_one_line(repo_root, tmp_path):
    result = _run(repo_root, "--cfg", "configs/tiny.yaml", "--ckpt", "random", "--input", tmp_path / "nowhere",
                  "--output", tmp_path / "out", "--elevation", 0, "--device", "cpu")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: --input {tmp_path / 'nowhere'} does not exist; "
                                                  "pass a folder of RGBA PNG frames (or one PNG)"]


@pytest.mark.parametrize("problem,match", [
    ("missing_ckpt", "ckpt/README.md"),
    ("bad_is_cyc", "--is_cyc"),
    ("one_dg_scale", "--cfg_scales"),
    ("bad_steps", "--sample_steps"),
    ("bad_sampler", "--sampler"),
    ("no_alpha", "alpha"),
    ("bad_device", "--device"),
])
def test_generate_user_mistakes(repo_root, tmp_path, monkeypatch, capsys, problem, match):
    video = tmp_path / "video"
    make_video(video, num_frames=2, size=48)
    args = {"--cfg": "configs/tiny.yaml", "--ckpt": "random", "--input": video, "--output": tmp_path / "out",
            "--elevation": 0, "--crop_size": 40, "--device": "cpu"}
    extra = {"bad_is_cyc": ["--is_cyc", 2], "one_dg_scale": ["--decomposed_sampling", "--cfg_scales", 2.0],
             "bad_steps": ["--sample_steps", 0], "bad_sampler": ["--sampler", "plms"]}.get(problem, [])
    if problem == "missing_ckpt":
        args["--ckpt"] = tmp_path / "syncdreamer-pretrain.ckpt"
    elif problem == "no_alpha":
        Image.fromarray(np.full((48, 48, 3), 90, np.uint8), "RGB").save(video / "0.png")
    elif problem == "bad_device":
        args["--device"] = "tpu"
    argv = ["generate.py", *[str(x) for kv in args.items() for x in kv], *map(str, extra)]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(repo_root)
    with pytest.raises(SystemExit) as exit_info:
        run_main(generate.main)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_generate_attention_flag_picks_the_path_and_both_agree(repo_root, tmp_path, monkeypatch):
    """--attention sdpa runs the folded depth attention; its images match the plain path's."""
    from ldm.modules.attention import DepthAttention
    from ldm.pipeline import generate_frames

    folded_calls = []
    forward_folded = DepthAttention.forward_folded
    monkeypatch.setattr(DepthAttention, "forward_folded",
                        lambda self, *a: folded_calls.append(1) or forward_folded(self, *a))
    make_video(tmp_path / "video", num_frames=1, size=96, seed=2)
    tiny = repo_root / "configs/tiny.yaml"
    images = {}
    for attention in ("plain", "sdpa"):
        calls_before = len(folded_calls)
        generate_frames(tmp_path / "video", tmp_path / attention, 15, cfg=tiny, ckpt="random",
                        crop_size=40, sample_steps=2, devices=["cpu"], attention=attention, progress=False)
        assert (len(folded_calls) > calls_before) == (attention == "sdpa")
        images[attention] = np.asarray(Image.open(tmp_path / attention / "0.png"))
    uint8_close(images["sdpa"], images["plain"])
    with pytest.raises(UserError, match="--attention must be one of auto, sdpa, plain"):
        generate_frames(tmp_path / "video", tmp_path / "bad", 15, cfg=tiny, ckpt="random",
                        devices=["cpu"], attention="flash")
