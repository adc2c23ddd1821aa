"""Differentiable Gaussian rasterisation, the plain PyTorch reference: cameras, EWA projection,
(pixel, Gaussian) pairs and compositing with autograd.

Every rasteriser (this one, :mod:`recon.fast_rasterizer`, gsplat through :mod:`recon.backends`)
takes 3D Gaussians already sliced at a time (means (N,3), covariances (N,3,3), colours (N,3),
opacities (N,)) and one pinhole camera, and returns an (H,W,3) image over a background colour.
The reference follows the rules of gsplat's "classic" 3DGS rasteriser so the two agree (tested):

* EWA projection with the Jacobian evaluated at a mean clamped to 1.3x the field of view, plus a
  0.3 px^2 dilation of the 2D covariance;
* per pixel (centre at +0.5), alpha = min(0.999, opacity * exp(-sigma)); alphas under 1/255 are
  skipped and a pixel stops before the Gaussian that would take its transmittance to 1e-4;
* front-to-back compositing in camera-depth order, background times the final transmittance.

The reference lists every (pixel, Gaussian) pair inside each Gaussian's screen box and composites
them with autograd: the plain path that the faster ones are tested against.
"""
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

EPS2D = 0.3
NEAR_PLANE = 0.01
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
FOV_CLAMP_MARGIN = 0.3  # the Jacobian is evaluated at means clamped to the FOV plus 30 %
MAX_EXTENT_SIGMAS = 3.33


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``w2c`` (4,4) world-to-camera in OpenCV axes (x right, y down, z forward),
    ``K`` (3,3) intrinsics in pixels for a ``width`` x ``height`` image."""

    w2c: Tensor
    K: Tensor
    width: int
    height: int

    @property
    def center(self) -> Tensor:
        """(3,) camera centre in world coordinates, -R^T t."""
        rotation, translation = self.w2c[:3, :3], self.w2c[:3, 3]
        return -rotation.T @ translation

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "Camera":
        return Camera(self.w2c.to(device, dtype), self.K.to(device, dtype), self.width, self.height)


@dataclass
class RenderOutput:
    """``image`` (H,W,3), ``alpha`` (H,W) accumulated opacity, ``radii`` (N,2) screen extents in
    pixels (0 where a Gaussian is not drawn) and ``means2d``: the projected means, kept for their
    gradient (densification reads it after ``backward``)."""

    image: Tensor
    alpha: Tensor
    radii: Tensor
    means2d: Tensor

    def screen_gradient(self) -> Tensor:
        """(N,2) d loss / d projected mean in pixels (zeros before backward)."""
        grad = self.means2d.grad
        if grad is None:
            return torch.zeros(self.radii.shape, device=self.radii.device)
        return grad.reshape(-1, 2)


@dataclass
class Projection:
    """Per Gaussian: ``means2d`` (N,2) px, ``conics`` (N,3) upper triangle of the inverse 2D
    covariance (a, b, c), ``depths`` (N,), ``radii`` (N,2) int and ``visible`` (N,) bool."""

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    visible: Tensor


def project_points(points: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
    """(N,3) world points -> (N,2) pixel coordinates and (N,) camera depths."""
    cam = points @ camera.w2c[:3, :3].T + camera.w2c[:3, 3]
    depth = cam[:, 2]
    uv = cam[:, :2] / depth.clamp_min(NEAR_PLANE)[:, None] * camera.K.diagonal()[:2] + camera.K[:2, 2]
    return uv, depth


def project_gaussians(means: Tensor, covariances: Tensor, opacities: Tensor, camera: Camera) -> Projection:
    """EWA-project (N,3) means and (N,3,3) covariances to the image of ``camera``."""
    rotation, translation = camera.w2c[:3, :3], camera.w2c[:3, 3]
    cam = means @ rotation.T + translation
    fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
    tx, ty, tz = cam.unbind(-1)
    # The affine approximation degrades far off-axis; evaluating it at a clamped point keeps
    # Gaussians that straddle the image border from blowing up (as 3DGS and gsplat do).
    margin_x, margin_y = FOV_CLAMP_MARGIN * 0.5 * camera.width / fx, FOV_CLAMP_MARGIN * 0.5 * camera.height / fy
    jx = tz * torch.clamp(tx / tz, -(cx / fx + margin_x), (camera.width - cx) / fx + margin_x)
    jy = tz * torch.clamp(ty / tz, -(cy / fy + margin_y), (camera.height - cy) / fy + margin_y)
    # The Jacobian J = [[fx/tz, 0, -fx jx/tz^2], [0, fy/tz, -fy jy/tz^2]] times the camera rotation,
    # written out: cov2d = (J R) Sigma (J R)^T takes two batched products instead of four.
    jr = torch.stack([
        (fx / tz)[:, None] * rotation[0] - (fx * jx / tz**2)[:, None] * rotation[2],
        (fy / tz)[:, None] * rotation[1] - (fy * jy / tz**2)[:, None] * rotation[2],
    ], 1)
    cov2d = jr @ covariances @ jr.transpose(1, 2) + EPS2D * torch.eye(2, device=means.device, dtype=means.dtype)
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], -1)

    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = a * c - b * b
    conics = torch.stack([c, -b, a], -1) / det.clamp_min(1e-10)[:, None]
    with torch.no_grad():
        # Opacity-aware extent: beyond it alpha < 1/255, so nothing outside is drawn.
        extent = torch.sqrt(2.0 * torch.log(opacities.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp_max(MAX_EXTENT_SIGMAS)
        radii = torch.ceil(extent[:, None] * torch.stack([a, c], -1).clamp_min(0).sqrt())
        on_image = (
            (means2d[:, 0] + radii[:, 0] > 0) & (means2d[:, 0] - radii[:, 0] < camera.width)
            & (means2d[:, 1] + radii[:, 1] > 0) & (means2d[:, 1] - radii[:, 1] < camera.height)
        )
        visible = (tz > NEAR_PLANE) & (det > 0) & (opacities >= ALPHA_THRESHOLD) & (radii > 0).any(-1) & on_image
        radii = torch.where(visible[:, None], radii, torch.zeros_like(radii)).int()
    return Projection(means2d, conics, tz, radii, visible)


def pixel_pairs(means2d: Tensor, radii: Tensor, ids: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Every (pixel, Gaussian) pair whose pixel lies in the screen box of a Gaussian in (M,) ``ids``,
    Gaussian by Gaussian in the order of ``ids``: (K,) flat pixel indices and (K,) Gaussian indices.
    Outside its box a Gaussian's alpha is under 1/255."""
    with torch.no_grad():
        center = means2d.detach().index_select(0, ids)
        extent = radii.index_select(0, ids)
        # int32 arithmetic: the pair count is far below 2^31 and its division is cheaper.
        x0 = torch.floor(center[:, 0] - extent[:, 0]).clamp(0, width).int()
        x1 = torch.ceil(center[:, 0] + extent[:, 0]).clamp(0, width).int()
        y0 = torch.floor(center[:, 1] - extent[:, 1]).clamp(0, height).int()
        y1 = torch.ceil(center[:, 1] + extent[:, 1]).clamp(0, height).int()
        box_w = x1 - x0
        counts = (box_w * (y1 - y0)).long()
        box = torch.repeat_interleave(torch.arange(ids.numel(), device=ids.device), counts)
        starts = (torch.cumsum(counts, 0) - counts).int()
        local = torch.arange(box.numel(), device=ids.device, dtype=torch.int32) - starts.index_select(0, box)
        box_w = box_w.index_select(0, box)
        row = local // box_w
        col = local - row * box_w
        pixel = (y0.index_select(0, box) + row).long() * width + (x0.index_select(0, box) + col)
    return pixel, ids.index_select(0, box)


def segment_exclusive_cumsum(values: Tensor, first: Tensor) -> Tensor:
    """Exclusive cumulative sum of (K,) ``values`` within runs; ``first`` (K,) is each entry's run start.
    Accumulated in float64 so long pair lists do not lose precision."""
    total = torch.cumsum(values.double(), 0) - values.double()
    return (total - total[first]).to(values.dtype)


def rasterize_reference(
    means: Tensor, covariances: Tensor, colors: Tensor, opacities: Tensor, camera: Camera, background: Tensor
) -> RenderOutput:
    """Render (N,3) means, (N,3,3) covariances, (N,3) colours, (N,) opacities -> (H,W,3), in PyTorch.

    Works on the list of (pixel, Gaussian) pairs inside each Gaussian's screen box, sorted by pixel
    then depth; transmittance is the exponential of a per-pixel running sum of log(1 - alpha)."""
    proj = project_gaussians(means, covariances, opacities, camera)
    if proj.means2d.requires_grad:
        proj.means2d.retain_grad()
    height, width = camera.height, camera.width
    ids = torch.nonzero(proj.visible).squeeze(1)
    pixel, gauss = pixel_pairs(proj.means2d, proj.radii, ids, width, height)
    with torch.no_grad():
        depth_rank = torch.empty_like(proj.depths, dtype=torch.long)
        depth_rank[torch.argsort(proj.depths, stable=True)] = torch.arange(proj.depths.numel(), device=means.device)
        order = torch.argsort(pixel * proj.depths.numel() + depth_rank[gauss])
        pixel, gauss = pixel[order], gauss[order]
        new_run = torch.ones_like(pixel, dtype=torch.bool)
        new_run[1:] = pixel[1:] != pixel[:-1]
        run_id = torch.cumsum(new_run, 0) - 1
        first = torch.nonzero(new_run).squeeze(1)[run_id]

    centers = torch.stack([pixel % width, pixel // width], -1).to(means.dtype) + 0.5
    delta = centers - proj.means2d[gauss]
    a, b, c = proj.conics[gauss].unbind(-1)
    sigma = 0.5 * (a * delta[:, 0] ** 2 + c * delta[:, 1] ** 2) + b * delta[:, 0] * delta[:, 1]
    alpha = torch.clamp_max(opacities[gauss] * torch.exp(-sigma), MAX_ALPHA)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        # A pixel is finished before the Gaussian that would bring its transmittance to 1e-4.
        log_after = segment_exclusive_cumsum(torch.log1p(-alpha), first) + torch.log1p(-alpha)
        drawn = (log_after > torch.log(torch.tensor(MIN_TRANSMITTANCE))).to(alpha.dtype)
    alpha = alpha * drawn
    log_keep = torch.log1p(-alpha)
    transmittance = torch.exp(segment_exclusive_cumsum(log_keep, first))
    pixels = height * width
    image = torch.zeros(pixels, 3, device=means.device, dtype=means.dtype).index_add(0, pixel, (alpha * transmittance)[:, None] * colors[gauss])
    final_t = torch.exp(torch.zeros(pixels, device=means.device, dtype=means.dtype).index_add(0, pixel, log_keep))
    image = image + final_t[:, None] * background
    return RenderOutput(image.reshape(height, width, 3), (1.0 - final_t).reshape(height, width), proj.radii, proj.means2d)


Rasterizer = Callable[[Tensor, Tensor, Tensor, Tensor, Camera, Tensor], RenderOutput]
