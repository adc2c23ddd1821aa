"""Reading the converter's dataset: the reflected transform_matrix, resolution, confidence, errors."""
import json
import shutil

import numpy as np
import pytest
import torch

from recon.dataset import _w2c, load_dataset
from recon.synthetic import true_cameras, write_dataset
from utils.errors import UserError


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("recon_tiny") / "data", size=24, num_frames=2)


def _copy(src, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(src, dst)
    return dst


def test_original_transform_matrix_gives_the_original_cameras(reference_dir):
    """The original converter's JSON (fixture) read back gives the original camera-16 poses."""
    cameras = json.loads((reference_dir / "camera-16.json").read_text())
    poses = np.asarray(cameras["poses"])
    contents = json.loads((reference_dir / "fixtures/convertor/confidence/transforms_train.json").read_text())
    assert len(contents["frames"]) == 48
    for i, entry in enumerate(contents["frames"]):
        w2c = _w2c(entry, reference_dir)
        np.testing.assert_allclose(w2c[:3], poses[i % 16], atol=1e-6)
    centers = np.asarray(cameras["derived_camera_centers_world"])
    w2c = _w2c(contents["frames"][5], reference_dir)
    np.testing.assert_allclose(-w2c[:3, :3].T @ w2c[:3, 3], centers[5], atol=1e-6)


def test_load_dataset_recovers_true_cameras_and_times(tiny_dataset):
    dataset = load_dataset(tiny_dataset, "ssim", holdout=False)
    assert (len(dataset.train), len(dataset.test)) == (32, 8)
    assert dataset.times == [0.0, 1 / 30]
    for view, camera in zip(dataset.train[16:], true_cameras(24)):
        torch.testing.assert_close(view.camera.w2c, camera.w2c, atol=1e-6, rtol=0)
        torch.testing.assert_close(view.camera.K, camera.K)
    assert dataset.train[16].name == "01/rgb-00" and dataset.train[16].time == pytest.approx(1 / 30)
    assert torch.equal(dataset.train[0].confidence, torch.ones(24, 24))


def test_resolution_factor_and_width_downsample_by_block_average(tiny_dataset):
    full = load_dataset(tiny_dataset, "none", holdout=False)
    for resolution in (2, 12):  # a factor, and a width in pixels (24 / 12 = factor 2)
        half = load_dataset(tiny_dataset, "none", resolution=resolution, holdout=False)
        assert (half.width, half.height) == (12, 12)
        expected = full.train[3].image.reshape(12, 2, 12, 2, 3).mean((1, 3))
        torch.testing.assert_close(half.train[3].image, expected)
        torch.testing.assert_close(half.train[3].camera.K[:2], full.train[3].camera.K[:2] / 2)


def test_test_views_are_held_out_by_default_and_labelled(tiny_dataset):
    dataset = load_dataset(tiny_dataset, "none")
    assert len(dataset.train) == 24 and len(dataset.test) == 8
    assert not {v.name for v in dataset.train} & {v.name for v in dataset.test}
    assert dataset.held_out == [True] * 8
    assert {v.time for v in dataset.train} == {0.0, 1 / 30}


def test_without_holdout_every_test_view_is_labelled_seen_in_training(tiny_dataset):
    dataset = load_dataset(tiny_dataset, "none", holdout=False)
    assert len(dataset.train) == 32
    assert dataset.held_out == [False] * 8


def _only_test_views_in_frame_1(root):
    """Frame 01 lists only its test views as training views: holding them out would leave that time untrained."""
    contents = json.loads((root / "transforms_train.json").read_text())
    test_paths = {e["file_path"] for e in json.loads((root / "transforms_test.json").read_text())["frames"]}
    contents["frames"] = [e for e in contents["frames"] if e["file_path"].startswith("00/") or e["file_path"] in test_paths]
    (root / "transforms_train.json").write_text(json.dumps(contents))


def test_holdout_keeps_test_views_when_a_time_would_lose_every_training_view(tiny_dataset, tmp_path):
    root = _copy(tiny_dataset, tmp_path)
    _only_test_views_in_frame_1(root)
    dataset = load_dataset(root, "none")
    assert len(dataset.train) == 20  # 16 of frame 00 + the 4 test views of frame 01, none dropped
    assert dataset.held_out == [False] * 8


def _break_json(root, text):
    (root / "transforms_train.json").write_text(text)


def _drop_key(root, key):
    contents = json.loads((root / "transforms_train.json").read_text())
    for entry in contents["frames"]:
        entry.pop(key)
    (root / "transforms_train.json").write_text(json.dumps(contents))


def _rgb_confidence(root):
    """What the converter writes without --confidence: conf PNGs that are copies of the RGB view."""
    shutil.copy(root / "00" / "rgb-02.png", root / "00" / "conf_ssim-02.png")


def _proper_rotation(root):
    contents = json.loads((root / "transforms_train.json").read_text())
    matrix = np.asarray(contents["frames"][0]["transform_matrix"])
    matrix[:3, :3] *= -1
    contents["frames"][0]["transform_matrix"] = matrix.tolist()
    (root / "transforms_train.json").write_text(json.dumps(contents))


@pytest.mark.parametrize("breakage, kwargs, message", [
    (lambda r: (r / "transforms_train.json").unlink(), {}, "transforms_train.json does not exist"),
    (lambda r: _break_json(r, "{ not json"), {}, "is not valid JSON"),
    (lambda r: _break_json(r, '{"frames": []}'), {}, "has no 'frames' list"),
    (lambda r: (r / "01" / "rgb-03.png").unlink(), {}, "rgb-03.png .* does not exist"),
    (lambda r: _drop_key(r, "conf_ssim"), {"confidence": "ssim"}, "no 'conf_ssim' confidence maps"),
    (lambda r: (r / "00" / "conf_rgb-04.png").unlink(), {"confidence": "rgb"}, "confidence map .*conf_rgb-04.png"),
    (_rgb_confidence, {"confidence": "ssim"}, "colour image, not a confidence map"),
    (lambda r: None, {"resolution": 5}, "does not divide"),
    (lambda r: _drop_key(r, "transform_matrix"), {}, "transform_matrix"),
    (_proper_rotation, {}, "proper rotation"),
])
def test_dataset_errors_name_the_problem(tiny_dataset, tmp_path, breakage, kwargs, message):
    root = _copy(tiny_dataset, tmp_path)
    breakage(root)
    with pytest.raises(UserError, match=message):
        load_dataset(root, **{"confidence": "none", **kwargs})


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist; run data_convertor.py"):
        load_dataset(tmp_path / "nope")
