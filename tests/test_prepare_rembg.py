"""--matting rembg for real through onnxruntime, with a tiny ONNX model built here.

The model has a rembg custom model's layout (NCHW float32 in, N x 1 x H x W out): it thresholds
the normalised red channel. A red disc on a blue backdrop must come out as its alpha.
"""
import sys

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from prepare.pipeline import prepare_video
from prepare.rembg_models import CUSTOM, LAYOUTS, RembgModel, default_model_path, layout_for
from utils.errors import UserError
from utils.images import read_rgba, write_png

SIZE = 64


def red_threshold_model(path, size=320):
    """sigmoid(40 * normalised red): ~1 where red is bright, ~0 elsewhere."""
    nodes = [
        helper.make_node("Slice", ["input", "start", "end", "axis"], ["red"]),
        helper.make_node("Mul", ["red", "gain"], ["scaled"]),
        helper.make_node("Sigmoid", ["scaled"], ["mask"]),
    ]
    constants = [
        helper.make_tensor("start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("end", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [40.0]),
    ]
    graph = helper.make_graph(
        nodes, "red_threshold",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, size, size])],
        initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def red_disc_frames(folder, count=3):
    """RGB frames of a red disc moving over a blue backdrop; returns the true masks."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    masks = []
    for t in range(count):
        disc = (yy - 32) ** 2 + (xx - 22 - 8 * t) ** 2 < 14 ** 2
        frame = np.where(disc[..., None], [230, 40, 30], [20, 40, 200]).astype(np.uint8)
        write_png(folder / f"{t}.png", frame)
        masks.append(disc)
    return masks


@pytest.mark.parametrize("model_size", [320, 48])
def test_rembg_model_gives_the_alpha_through_onnxruntime(tmp_path, model_size):
    model = red_threshold_model(tmp_path / "custom.onnx", model_size)
    frames = tmp_path / "frames"
    masks = red_disc_frames(frames)
    prepare_video(frames, tmp_path / "out", num_frames=3, matting="rembg", matting_model=model, log=lambda _: None)
    for t, mask in enumerate(masks):
        rgba = read_rgba(tmp_path / "out" / f"{t}.png")
        alpha = rgba[..., 3]
        inside = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        far = ~cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert (alpha[inside] >= 250).all() and (alpha[far] <= 5).all()
        assert ((alpha >= 128) & mask).sum() / ((alpha >= 128) | mask).sum() >= 0.9
        assert (rgba[mask, 0] == 230).all()  # colours are kept


def test_model_layouts_follow_rembg_file_names(tmp_path):
    assert layout_for(tmp_path / "u2net.onnx") == CUSTOM and CUSTOM.size == 320
    assert layout_for(tmp_path / "isnet-general-use.onnx") == LAYOUTS["isnet"]
    assert layout_for(tmp_path / "birefnet-general-lite.onnx").sigmoid
    assert layout_for(tmp_path / "my_model.onnx") == CUSTOM


def test_default_model_is_rembg_own_folder():
    assert default_model_path({"U2NET_HOME": "/models"}).as_posix() == "/models/u2net.onnx"
    assert default_model_path({"XDG_DATA_HOME": "/data"}).as_posix() == "/data/.u2net/u2net.onnx"
    assert default_model_path({}).name == "u2net.onnx" and default_model_path({}).parent.name == ".u2net"


def test_missing_model_names_the_file_and_where_rembg_users_get_it(tmp_path):
    with pytest.raises(UserError, match=r"u2net\.onnx not found; rembg users get u2net\.onnx from the rembg releases"):
        RembgModel(tmp_path / "u2net.onnx")


def test_corrupt_model_is_reported(tmp_path):
    bad = tmp_path / "u2net.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(UserError, match="cannot load matting model"):
        RembgModel(bad, log=lambda _: None)


def test_missing_onnxruntime_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(UserError, match="pip install onnxruntime"):
        RembgModel(red_threshold_model(tmp_path / "m.onnx"))
