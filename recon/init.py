"""Initial 4D points: inside the object's bounding volume, carved by the views of each frame.

The datasets have no point cloud. For every frame time, points are drawn uniformly in the box
that all cameras see, and a point is kept when every view of that frame that sees it shows
foreground (not background colour) there: a visual hull. Pixels with low confidence never carve,
so a corrupted view cannot remove the object. Each point is coloured by the (confidence-weighted)
mean of the pixels it projects to, and gets an isotropic size from the hull's volume per point.
"""
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.rasterizer import Camera, project_points

BACKGROUND_TOLERANCE = 0.03  # a pixel within this of the background colour in every channel is empty
MIN_CONFIDENCE = 0.5
MAX_ROUNDS = 16
MIN_HULL_POINTS = 8


@dataclass
class InitPoints:
    """``xyzt`` (N,4), ``rgb`` (N,3) in [0,1], ``spatial_scale`` (N,) world units."""

    xyzt: Tensor
    rgb: Tensor
    spatial_scale: Tensor


def bounding_box(cameras: list[Camera]) -> tuple[Tensor, float]:
    """Centre (3,) and half-size of the box to search: the point nearest all optical axes, and the
    smallest half-width of the fields of view at its depth (views that miss a point do not carve it)."""
    centers = torch.stack([cam.center for cam in cameras])
    axes = torch.stack([cam.w2c[2, :3] for cam in cameras])
    # least squares: sum_i (I - a_i a_i^T)(x - c_i) = 0
    projectors = torch.eye(3, dtype=centers.dtype) - axes[:, :, None] * axes[:, None, :]
    target = torch.linalg.lstsq(projectors.sum(0), (projectors @ centers[:, :, None]).sum(0)).solution[:, 0]
    half = min(
        float((target - cam.center).norm())
        * min(float(cam.K[0, 2]), cam.width - float(cam.K[0, 2]), float(cam.K[1, 2]), cam.height - float(cam.K[1, 2]))
        / float(cam.K[0, 0])
        for cam in cameras
    )
    return target, half


def _carve(
    points: Tensor, images: list[Tensor], confidences: list[Tensor | None], cameras: list[Camera], background: Tensor
) -> tuple[Tensor, Tensor]:
    """Keep mask (M,) and mean colours (M,3) of candidate ``points`` (M,3) against one frame's views."""
    keep = torch.ones(points.shape[0], dtype=torch.bool)
    color_sum = torch.zeros(points.shape[0], 3)
    weight_sum = torch.zeros(points.shape[0])
    for image, confidence, cam in zip(images, confidences, cameras):
        uv, depth = project_points(points, cam)
        col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        seen = (depth > 0) & (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height)
        col, row = col.clamp(0, cam.width - 1), row.clamp(0, cam.height - 1)
        pixels = image[row, col]
        weight = torch.ones(points.shape[0]) if confidence is None else confidence[row, col]
        empty = ((pixels - background).abs() <= BACKGROUND_TOLERANCE).all(-1) & (weight >= MIN_CONFIDENCE)
        keep &= ~(seen & empty)
        weight = weight * seen
        color_sum += pixels * weight[:, None]
        weight_sum += weight
    return keep & (weight_sum > 0), color_sum / weight_sum.clamp_min(1e-8)[:, None]


def init_points(
    frames: dict[float, list[tuple[Tensor, Tensor | None, Camera]]],
    num_points: int,
    background: Tensor,
    generator: torch.Generator,
) -> InitPoints:
    """About ``num_points`` points spread over the frame times.

    ``frames`` maps a time to its views as (image (H,W,3), confidence (H,W) or None, camera), on the CPU.
    Falls back to the whole box (mid-grey) for a frame whose views carve everything away.
    """
    cameras = [cam for views in frames.values() for _, _, cam in views]
    center, half = bounding_box(cameras)
    per_frame = max(1, num_points // len(frames))
    xyzt, rgb, scale = [], [], []
    for t, views in sorted(frames.items()):
        images, confidences, cams = zip(*views)
        kept, colors, tried = [], [], 0
        for _ in range(MAX_ROUNDS):
            candidates = center + (torch.rand(4 * per_frame, 3, generator=generator, dtype=center.dtype) * 2 - 1) * half
            keep, mean_color = _carve(candidates.float(), list(images), list(confidences), list(cams), background)
            kept.append(candidates[keep].float())
            colors.append(mean_color[keep])
            tried += candidates.shape[0]
            if sum(k.shape[0] for k in kept) >= per_frame:
                break
        points, point_rgb = torch.cat(kept)[:per_frame], torch.cat(colors)[:per_frame]
        hull_fraction = sum(k.shape[0] for k in kept) / tried
        if points.shape[0] < MIN_HULL_POINTS:
            points = center.float() + (torch.rand(per_frame, 3, generator=generator) * 2 - 1) * half
            point_rgb, hull_fraction = torch.full((per_frame, 3), 0.5), 1.0
        hull_volume = (2 * half) ** 3 * hull_fraction
        spacing = (hull_volume / points.shape[0]) ** (1 / 3)
        xyzt.append(torch.cat([points, torch.full((points.shape[0], 1), float(t))], 1))
        rgb.append(point_rgb)
        scale.append(torch.full((points.shape[0],), 0.5 * spacing))
    return InitPoints(torch.cat(xyzt), torch.cat(rgb).clamp(0, 1), torch.cat(scale))
