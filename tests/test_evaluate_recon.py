"""The protocol geometry end to end: a synthetic moving object is reconstructed from the 16-view
SyncDreamer rig, its ground truth is rendered at the four protocol views through cameras built here
by hand (not with utils.cameras), and evaluate.py renders the reconstruction and scores it.

Measured (200 iterations, 64 px ground truth): correct cameras 35.2 dB; every azimuth sign flipped
(a mirrored protocol) 25.5 dB; alpha-box alignment 28.4 dB (its boxes are quantised to whole
pixels at 64 px). Thresholds sit between those with a few dB to spare.
"""
import json
import math
import shutil

import pytest
import torch
from PIL import Image

import evaluation.render as render
from evaluation.pipeline import EvalOptions, evaluate_recon
from recon.pipeline import reconstruct
from recon.rasterizer import Camera, rasterize_reference
from recon.synthetic import default_scene, quick_config, write_dataset
from utils.errors import UserError

SIZE = 64
FRAMES = 3
AZIMUTHS = (-75.0, 15.0, 105.0, 195.0)
CORRECT_MIN_DB = 31.0
SIGN_MARGIN_DB = 5.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hand_camera(azimuth_deg: float, distance: float = 2.0, fovy_deg: float = 49.1) -> Camera:
    """A camera on the equator (elevation 0) of a z-up world, looking at the origin, OpenCV axes:
    right = (-sin a, cos a, 0), down = -z, forward = -(cos a, sin a, 0); it sits at (0, 0, d) in its own frame."""
    a = math.radians(azimuth_deg)
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, :3] = torch.tensor([[-math.sin(a), math.cos(a), 0], [0, 0, -1], [-math.cos(a), -math.sin(a), 0]])
    w2c[:3, 3] = torch.tensor([0.0, 0.0, distance])
    focal = SIZE / 2 / math.tan(math.radians(fovy_deg) / 2)
    K = torch.tensor([[focal, 0, SIZE / 2], [0, focal, SIZE / 2], [0, 0, 1]], dtype=torch.float64)
    return Camera(w2c, K, SIZE, SIZE).to("cpu")


@pytest.fixture(scope="module")
def scene_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    data = write_dataset(root / "recon_data" / "toy", size=32, num_frames=FRAMES)
    reconstruct(data, root / "recon_out" / "toy", quick_config(200), confidence="none", device="cpu",
                rasterizer="torch", video_frames=0, ply_times=[], log=lambda _: None)
    scene = default_scene(FRAMES)
    for v, azimuth in enumerate(AZIMUTHS):
        for k in range(FRAMES):
            means, covariances = scene.at(k / 30)
            image = rasterize_reference(means, covariances, scene.colors, scene.opacities, hand_camera(azimuth), torch.ones(3)).image
            path = root / "gt" / "toy" / f"eval_{v}" / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((image.clamp(0, 1) * 255).round().byte().numpy()).save(path)
    return root


def _psnr(root, name, camera, monkeypatch=None, azimuths=None):
    if azimuths is not None:
        monkeypatch.setattr(render, "VIEW_AZIMUTHS_DEG", azimuths)
    table = evaluate_recon(root / "gt", [root / "recon_out" / "toy"], root / f"renders_{name}", root / f"{name}.json",
                           EvalOptions(metrics=["psnr"]), camera, torch.device("cpu"), "torch", log=lambda _: None)
    return table["psnr"]["toy"]


def test_protocol_views_match_the_ground_truth_and_a_flipped_azimuth_is_caught(scene_dirs, monkeypatch):
    correct = _psnr(scene_dirs, "correct", render.CameraSettings())
    flipped = _psnr(scene_dirs, "flipped", render.CameraSettings(), monkeypatch, tuple(-a for a in AZIMUTHS))
    assert correct > CORRECT_MIN_DB
    assert correct > flipped + SIGN_MARGIN_DB
    record = json.loads((scene_dirs / "renders_correct" / "toy" / "render.json").read_text())
    assert record["align"] == "camera" and record["frame_times"][0] == pytest.approx([0, 1 / 30, 2 / 30])
    assert json.loads((scene_dirs / "correct_details.json").read_text())["protocol"]["camera"]["align"] == "camera"


def test_alpha_box_alignment_recovers_a_wrong_camera_distance(scene_dirs):
    wrong_distance = _psnr(scene_dirs, "far", render.CameraSettings(distance=2.8))
    aligned = _psnr(scene_dirs, "far_aligned", render.CameraSettings(distance=2.8, align="alpha_box"))
    assert aligned > wrong_distance + 2.0


def test_frame_times_come_from_the_checkpoint_so_the_dataset_may_be_gone(scene_dirs, tmp_path):
    from recon.trainer import load_checkpoint

    recon = tmp_path / "toy"
    shutil.copytree(scene_dirs / "recon_out" / "toy", recon)
    (recon / "config.json").unlink()  # neither the config nor the dataset it names is needed
    state = load_checkpoint(recon / "checkpoint.pt")
    assert render.recon_times(recon, state) == pytest.approx([k / 30 for k in range(FRAMES)])
    del state["frame_times"]  # a checkpoint from before frame times were stored needs its dataset
    with pytest.raises(UserError, match="has no config.json"):
        render.recon_times(recon, state)


def test_recon_named_unlike_any_ground_truth_object_is_one_line(scene_dirs, tmp_path):
    with pytest.raises(UserError, match="has no object elsewhere"):
        evaluate_recon(scene_dirs / "gt", [tmp_path / "elsewhere"], tmp_path / "r", tmp_path / "m.json",
                       EvalOptions(metrics=["psnr"]), render.CameraSettings(), torch.device("cpu"), "torch")
