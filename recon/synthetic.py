"""A synthetic dynamic scene written as a converter-format dataset (for tests and the benchmark).

A few colour-distinct, anisotropic 3D Gaussians move along straight lines. They are rendered
with the reference rasteriser through the TRUE SyncDreamer cameras, and the JSON stores the
original converter's reflected ``transform_matrix``, exactly as ``data_convertor.py`` writes it,
so a reader with the wrong camera convention cannot reconstruct the scene.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.densify import DensifyConfig
from recon.rasterizer import Camera, rasterize_reference
from recon.trainer import TrainConfig
from utils.cameras import original_transform_matrix, syncdreamer_cameras
from utils.images import write_json, write_png

FPS = 30
NUM_VIEWS = 16
TEST_VIEWS = (0, 5, 10, 15)


@dataclass
class MovingGaussians:
    """G Gaussians: ``centers`` (G,3) at t = 0, ``velocities`` (G,3) per second, ``scales`` (G,3),
    ``rotations`` (G,3,3), ``colors`` (G,3) at t = 0, ``opacities`` (G,), and ``color_velocities``
    (G,3) per second (zeros: constant colour)."""

    centers: Tensor
    velocities: Tensor
    scales: Tensor
    rotations: Tensor
    colors: Tensor
    opacities: Tensor
    color_velocities: Tensor

    def at(self, t: float) -> tuple[Tensor, Tensor]:
        """Means (G,3) and covariances (G,3,3) at time ``t`` seconds."""
        factor = self.rotations * self.scales[:, None, :]
        return self.centers + self.velocities * t, factor @ factor.transpose(1, 2)

    def colors_at(self, t: float) -> Tensor:
        """(G,3) colours at time ``t`` seconds."""
        return (self.colors + self.color_velocities * t).clamp(0, 1)


def _rotation_z(angle: float) -> Tensor:
    c, s = np.cos(angle), np.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float32)


def default_scene(num_frames: int = 3, color_change: float = 0.0) -> MovingGaussians:
    """Four Gaussians (red, green, blue, yellow) inside the SyncDreamer view volume. Whatever the
    frame count, each travels 0.1-0.2 from the first frame to the last (0.1 per frame for 3 frames
    at 30 fps): enough that a static model cannot fit all frames. With ``color_change`` = c each
    colour moves the fraction c of the way to the next one's (red to green, ...) by the last frame."""
    duration = max(num_frames - 1, 1) / FPS
    colors = torch.tensor([[0.9, 0.15, 0.1], [0.1, 0.8, 0.2], [0.15, 0.25, 0.9], [0.95, 0.85, 0.1]])
    return MovingGaussians(
        centers=torch.tensor([[0.0, 0.0, 0.05], [0.22, -0.12, -0.1], [-0.2, 0.18, 0.0], [-0.05, -0.25, 0.2]]),
        velocities=torch.tensor([[0.0, 0.0, 0.1], [-0.2, 0.0, 0.0], [0.0, -0.2, 0.0], [0.13, 0.13, 0.0]]) / duration,
        scales=torch.tensor([[0.16, 0.08, 0.07], [0.07, 0.12, 0.06], [0.1, 0.06, 0.1], [0.06, 0.06, 0.12]]),
        rotations=torch.stack([_rotation_z(a) for a in (0.3, -0.5, 1.0, 0.0)]),
        colors=colors,
        opacities=torch.tensor([0.95, 0.9, 0.9, 0.95]),
        color_velocities=color_change * (colors.roll(-1, 0) - colors) / duration,
    )


def quick_config(iterations: int, num_points: int = 500) -> TrainConfig:
    """A schedule for runs of a few hundred iterations on the synthetic scene (tests, CPU benchmark):
    10x the default position learning rate, 4x the colour rate, densification every 50 iterations
    over the first 70 %, no opacity reset, view-independent colour (SH degree 0) whose time
    harmonics (if any) open after each fifth of the run."""
    return TrainConfig(
        iterations=iterations, num_points=num_points, sh_degree=0, preview_every=0, checkpoint_every=0,
        sh_increase_interval=max(iterations // 5, 1),
        position_lr_init=0.0016, position_lr_final=0.00016, feature_lr=0.01,
        densify=DensifyConfig(
            densify_from_iter=50, densify_until_iter=int(iterations * 0.7), densification_interval=50,
            opacity_reset_interval=iterations + 1,
        ),
    )


def true_cameras(size: int) -> list[Camera]:
    """The 16 SyncDreamer cameras at ``size`` px (float32, CPU)."""
    rig = syncdreamer_cameras(NUM_VIEWS, image_size=size)
    cameras = []
    for pose in rig["poses"]:
        w2c = torch.eye(4, dtype=torch.float64)
        w2c[:3] = torch.from_numpy(pose)
        cameras.append(Camera(w2c, torch.from_numpy(rig["K"]), size, size).to("cpu"))
    return cameras


@torch.no_grad()
def render_scene(scene: MovingGaussians, camera: Camera, t: float) -> Tensor:
    """(H,W,3) image of the scene at time ``t`` over white."""
    means, covariances = scene.at(t)
    return rasterize_reference(means, covariances, scene.colors_at(t), scene.opacities, camera, torch.ones(3)).image


def write_dataset(
    out_dir: str | Path,
    size: int = 32,
    num_frames: int = 3,
    scene: MovingGaussians | None = None,
    corrupt_view: int | None = None,
    seed: int = 0,
) -> Path:
    """Write ``out_dir`` in data_convertor.py's layout; frame k has time k/30.

    With ``corrupt_view`` = v, view v of every frame is replaced by uniform noise and its
    confidence maps are 0 (every other confidence map is 255)."""
    out_dir = Path(out_dir)
    scene = scene or default_scene(num_frames)
    rig = syncdreamer_cameras(NUM_VIEWS, image_size=size)
    cameras = true_cameras(size)
    K = rig["K"]
    noise = np.random.default_rng(seed)
    intrinsics = {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2])}
    train_all, test_all = [], []
    for k in range(num_frames):
        name, t = f"{k:02d}", k / FPS
        entries = []
        for v, cam in enumerate(cameras):
            image = (render_scene(scene, cam, t).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            confidence = np.full((size, size), 255, np.uint8)
            if v == corrupt_view:
                image = noise.integers(0, 256, image.shape, dtype=np.uint8)
                confidence[:] = 0
            write_png(out_dir / name / f"rgb-{v:02d}.png", image)
            write_png(out_dir / name / f"conf_ssim-{v:02d}.png", confidence)
            write_png(out_dir / name / f"conf_rgb-{v:02d}.png", confidence)
            entries.append({
                "file_path": f"{name}/rgb-{v:02d}.png",
                "conf_ssim": f"{name}/conf_ssim-{v:02d}.png",
                "conf_rgb": f"{name}/conf_rgb-{v:02d}.png",
                "transform_matrix": original_transform_matrix(rig["poses"][v]).tolist(),
            })
        test_entries = [entries[v] for v in TEST_VIEWS]
        write_json(out_dir / name / "transforms_train.json", {**intrinsics, "frames": entries}, indent=2)
        write_json(out_dir / name / "transforms_test.json", {**intrinsics, "frames": test_entries}, indent=2)
        train_all += [{**e, "time": t} for e in entries]
        test_all += [{**e, "time": t} for e in test_entries]
    write_json(out_dir / "transforms_train.json", {**intrinsics, "frames": train_all}, indent=2)
    write_json(out_dir / "transforms_test.json", {**intrinsics, "frames": test_all}, indent=2)
    return out_dir
