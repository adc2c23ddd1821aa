"""Outputs of a trained 4D Gaussian model.

In ``recon_out/NAME``:
  renders/test/{frame}_{view}.png   test views rendered at their times
  renders/test/metrics.json         PSNR / SSIM per view and their means, and what they measure:
                                    held-out views, or views seen in training
  videos/orbit.mp4                  the camera circles the object while time runs
  videos/time_view{v:02d}.mp4       a fixed training camera while time runs
  ply/time_{t:.4f}.ply              the 3D Gaussians at time t, 3DGS .ply layout
"""
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from recon.dataset import ReconDataset
from recon.gaussians import Gaussians4D, Slice3D
from recon.loss import psnr, ssim_map
from recon.ply import export_ply
from recon.rasterizer import Camera, Rasterizer, RenderOutput
from utils.cameras import syncdreamer_cameras
from utils.images import write_json, write_png
from utils.video import write_mp4

VIDEO_FPS = 30


def render_gaussians(
    gaussians: Gaussians4D, camera: Camera, t: float, rasterizer: Rasterizer, background: Tensor, min_marginal: float = 0.05
) -> tuple[RenderOutput, Slice3D]:
    """Render the Gaussians at time ``t`` through ``camera``; also return the slice drawn."""
    sliced = gaussians.slice(t, camera.center, min_marginal)
    out = rasterizer(sliced.means, sliced.covariances, sliced.colors, sliced.opacities, camera, background)
    return out, sliced


def to_uint8(image: Tensor) -> np.ndarray:
    """(H,W,3) float in [0,1] -> uint8, rounded."""
    return (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def split_label(held_out: Sequence[bool]) -> str:
    """What a score over test views measures, given per view whether it was held out of training."""
    if all(held_out):
        return "held out"
    if not any(held_out):
        return "seen in training"
    return f"mixed: {sum(held_out)} of {len(held_out)} held out"


@torch.no_grad()
def evaluate_test_views(
    gaussians: Gaussians4D, dataset: ReconDataset, out_dir: Path, rasterizer: Rasterizer, background: Tensor,
    min_marginal: float = 0.05,
) -> dict:
    """Render every test view, write it and ``metrics.json``; return the metrics. ``measures`` says
    whether the scores are on held-out views or on views the model was trained on."""
    per_view = {}
    for view, held_out in zip(dataset.test, dataset.held_out):
        out, _ = render_gaussians(gaussians, view.camera, view.time, rasterizer, background, min_marginal)
        write_png(out_dir / "renders" / "test" / f"{view.name.replace('/', '_')}.png", to_uint8(out.image))
        per_view[view.name] = {
            "time": view.time,
            "held_out": held_out,
            "psnr": psnr(out.image.clamp(0, 1), view.image),
            "ssim": float(ssim_map(out.image.clamp(0, 1), view.image).mean()),
        }
    metrics = {
        "measures": split_label(dataset.held_out),
        "psnr": float(np.mean([m["psnr"] for m in per_view.values()])) if per_view else None,
        "ssim": float(np.mean([m["ssim"] for m in per_view.values()])) if per_view else None,
        "num_views": len(per_view),
        "gaussians": len(gaussians),
        "views": per_view,
    }
    write_json(out_dir / "renders" / "test" / "metrics.json", metrics)
    return metrics


def orbit_cameras(reference: Camera, count: int) -> list[Camera]:
    """``count`` cameras circling the origin at the distance and elevation of ``reference``
    (the SyncDreamer rig looks at the origin), with its intrinsics."""
    center = reference.center.detach().cpu().double()
    distance = float(center.norm())
    elevation = math.degrees(math.asin(float(center[2]) / distance))
    rig = syncdreamer_cameras(count, elevation_deg=elevation, distance=distance)
    cameras = []
    for pose in rig["poses"]:
        w2c = torch.eye(4, dtype=torch.float64)
        w2c[:3] = torch.from_numpy(pose)
        cameras.append(Camera(w2c, reference.K.detach().cpu().double(), reference.width, reference.height).to(reference.K.device))
    return cameras


def video_times(times: Sequence[float], count: int) -> list[float]:
    """``count`` times evenly from the first to the last frame time."""
    if count == 1 or times[0] == times[-1]:
        return [times[0]] * count
    return [times[0] + (times[-1] - times[0]) * i / (count - 1) for i in range(count)]


@torch.no_grad()
def write_videos(
    gaussians: Gaussians4D, dataset: ReconDataset, out_dir: Path, rasterizer: Rasterizer, background: Tensor,
    frames: int = 120, fixed_view: int = 0, min_marginal: float = 0.05,
) -> list[Path]:
    """The orbit video (camera circling while time runs) and the fixed-view time video."""
    times = video_times(dataset.times, frames)
    reference = dataset.train[fixed_view % len(dataset.train)].camera
    orbit = [
        to_uint8(render_gaussians(gaussians, cam, t, rasterizer, background, min_marginal)[0].image)
        for cam, t in zip(orbit_cameras(reference, frames), times)
    ]
    fixed = [to_uint8(render_gaussians(gaussians, reference, t, rasterizer, background, min_marginal)[0].image) for t in times]
    paths = [out_dir / "videos" / "orbit.mp4", out_dir / "videos" / f"time_view{fixed_view:02d}.mp4"]
    write_mp4(paths[0], orbit, VIDEO_FPS)
    write_mp4(paths[1], fixed, VIDEO_FPS)
    return paths


def write_plys(gaussians: Gaussians4D, out_dir: Path, times: Sequence[float]) -> list[Path]:
    paths = []
    for t in times:
        path = out_dir / "ply" / f"time_{t:.4f}.ply"
        export_ply(gaussians, t, path)
        paths.append(path)
    return paths


def default_ply_times(times: Sequence[float]) -> list[float]:
    """First, middle and last frame times."""
    return sorted({times[0], times[len(times) // 2], times[-1]})


def render_outputs(
    gaussians: Gaussians4D,
    dataset: ReconDataset,
    out_dir: str | Path,
    rasterizer: Rasterizer,
    ply_times: Sequence[float] | None = None,
    video_frames: int = 120,
    min_marginal: float = 0.05,
    log: Callable[[str], None] = print,
) -> dict:
    """Write every output listed in the module docstring; return the test metrics."""
    out_dir = Path(out_dir)
    background = torch.ones(3, device=gaussians.device)
    metrics = evaluate_test_views(gaussians, dataset, out_dir, rasterizer, background, min_marginal)
    if metrics["num_views"]:
        log(f"test views ({metrics['measures']}): PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f} "
            f"over {metrics['num_views']} views -> {out_dir / 'renders' / 'test'}")
    if video_frames > 0:
        videos = write_videos(gaussians, dataset, out_dir, rasterizer, background, video_frames, 0, min_marginal)
        log(f"videos: {', '.join(str(p) for p in videos)}")
    plys = write_plys(gaussians, out_dir, default_ply_times(dataset.times) if ply_times is None else ply_times)
    if plys:
        log(f"3DGS .ply files: {out_dir / 'ply'} ({len(plys)} times)")
    return metrics
