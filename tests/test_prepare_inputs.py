"""prepare_inputs: parity with the original's recorded inputs, shared_scale, frame selection, errors."""
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from ldm.data import prepare_inputs, select_frames
from tools.synthetic import make_video
from utils.errors import UserError


def _egret(reference_dir):
    return reference_dir.parent / "data" / "walking_white_faced_egret"


def test_prepare_inputs_matches_reference(reference_dir):
    expected = torch.load(reference_dir / "fixtures" / "prepare_inputs.pt", weights_only=True)
    egret = _egret(reference_dir)
    runs = {
        "dir_crop200": prepare_inputs(egret, 0.0, crop_size=200, image_size=256, frame_num=4),
        "file_nocrop": prepare_inputs(egret / "5.png", 30.0, crop_size=-1, image_size=256),
    }
    for name, got in runs.items():
        for key in ("input_image", "input_elevation"):
            assert got[key].dtype == torch.float32
            assert torch.equal(got[key], expected[name][key]), (name, key)
    assert [p.name for p in select_frames(egret, 4)] == expected["meta"]["dir_crop200"]["files"]


def _square_frame(path, canvas, side, colour=(200, 30, 30)):
    rgba = np.zeros((canvas, canvas, 4), np.uint8)
    top = (canvas - side) // 3
    rgba[top:top + side, top:top + side] = (*colour, 255)
    Image.fromarray(rgba, "RGBA").save(path)


def _object_extent(image):
    """Side lengths (h, w) of the non-white region of a (H,W,3) image in [-1,1]."""
    ys, xs = np.nonzero((image < 0.99).any(-1).numpy())
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def test_shared_scale_keeps_relative_object_size(tmp_path):
    _square_frame(tmp_path / "0.png", 96, 21)  # crop 20 x 20 (the max row/column are excluded)
    _square_frame(tmp_path / "1.png", 96, 41)  # crop 40 x 40
    per_frame = prepare_inputs(tmp_path, 0.0, crop_size=32, image_size=64, frame_num=2)["input_image"]
    shared = prepare_inputs(tmp_path, 0.0, crop_size=32, image_size=64, frame_num=2,
                            crop_mode="shared_scale")["input_image"]
    assert _object_extent(per_frame[0]) == _object_extent(per_frame[1]) == (32, 32)
    assert _object_extent(shared[1]) == (32, 32)
    assert _object_extent(shared[0]) == (16, 16)
    # The frame with the largest object is prepared exactly as the original does.
    assert torch.equal(shared[1], per_frame[1])


def test_shared_scale_on_synthetic_video(tmp_path):
    make_video(tmp_path, num_frames=4, size=96, seed=1)
    out = prepare_inputs(tmp_path, 10.0, crop_size=48, image_size=64, frame_num=4, crop_mode="shared_scale")
    assert out["input_image"].shape == (4, 64, 64, 3)
    assert out["input_image"].min() >= -1 and out["input_image"].max() <= 1
    extents = [max(_object_extent(im)) for im in out["input_image"]]
    assert max(extents) <= 48 and max(extents) >= 46
    assert torch.allclose(out["input_elevation"], torch.full((4, 1), np.deg2rad(10.0), dtype=torch.float32))


def test_frames_are_taken_in_numeric_order_with_stride(tmp_path):
    make_video(tmp_path, num_frames=12, size=32)
    assert [p.name for p in select_frames(tmp_path, 4)] == ["0.png", "3.png", "6.png", "9.png"]
    # 12 // 5 = 2: the stride rounds down, so more than frame_num frames come back (the caller truncates).
    assert [p.name for p in select_frames(tmp_path, 5)] == [f"{i}.png" for i in range(0, 12, 2)]
    assert len(select_frames(tmp_path, 40)) == 12


def test_inputs_are_not_modified(tmp_path):
    paths = make_video(tmp_path, num_frames=3, size=48)
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    prepare_inputs(tmp_path, 0.0, crop_size=30, image_size=64, frame_num=3)
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths] == before


def test_rgb_frames_work_without_crop_and_fail_with_crop(tmp_path):
    Image.fromarray(np.full((40, 30, 3), 100, np.uint8), "RGB").save(tmp_path / "0.png")
    out = prepare_inputs(tmp_path, 0.0, crop_size=-1, image_size=32, frame_num=1)["input_image"]
    assert out.shape == (1, 32, 32, 3)
    with pytest.raises(UserError, match="0.png.*alpha"):
        prepare_inputs(tmp_path, 0.0, crop_size=20, image_size=32, frame_num=1)


@pytest.mark.parametrize("problem,match", [
    ("missing", "does not exist"),
    ("empty", "no PNG frames"),
    ("transparent", "1.png is fully transparent"),
    ("crop_too_big", "--crop_size"),
    ("crop_zero", "--crop_size"),
    ("crop_mode", "--crop_mode"),
    ("frame_num", "--frame_num"),
    ("missing_file", "does not exist"),
])
def test_user_mistakes_raise_user_error(tmp_path, problem, match):
    folder = tmp_path / "frames"
    folder.mkdir()
    kwargs = dict(crop_size=32, image_size=64, frame_num=2)
    if problem not in ("missing", "empty"):
        make_video(folder, num_frames=2, size=48)
    if problem == "missing":
        folder = tmp_path / "nope"
    elif problem == "transparent":
        Image.fromarray(np.zeros((48, 48, 4), np.uint8), "RGBA").save(folder / "1.png")
    elif problem == "crop_too_big":
        kwargs["crop_size"] = 65
    elif problem == "crop_zero":
        kwargs["crop_size"] = 0
    elif problem == "crop_mode":
        kwargs["crop_mode"] = "biggest"
    elif problem == "frame_num":
        kwargs["frame_num"] = 0
    elif problem == "missing_file":
        folder = folder / "7.png"
    with pytest.raises(UserError, match=match):
        prepare_inputs(folder, 0.0, **kwargs)
