"""The PyTorch reference rasteriser against per-pixel compositing written out longhand, and the
gsplat fast path against the reference (image and gradients) where CUDA and gsplat exist."""
import pytest
import torch

from recon.rasterizer import (
    ALPHA_THRESHOLD, MAX_ALPHA, MIN_TRANSMITTANCE, project_gaussians, rasterize_gsplat, rasterize_reference,
    select_rasterizer,
)
from recon.synthetic import true_cameras
from utils.errors import UserError


def _scene(n: int, seed: int, device: str = "cpu", dtype=torch.float32):
    """Leaves: means (n,3), a covariance factor (n,3,3), colours (n,3), opacity logits (n,)."""
    g = torch.Generator().manual_seed(seed)
    leaves = [
        (torch.rand(n, 3, generator=g) - 0.5) * 0.6,
        torch.randn(n, 3, 3, generator=g) * 0.06,
        torch.rand(n, 3, generator=g),
        torch.randn(n, generator=g) + 1.0,
    ]
    return [x.to(device, dtype).requires_grad_() for x in leaves]


def _render(rasterizer, means, factor, colors, logits, camera):
    covariances = factor @ factor.transpose(1, 2) + 1e-4 * torch.eye(3, device=means.device, dtype=means.dtype)
    background = torch.tensor([1.0, 0.9, 0.8], device=means.device, dtype=means.dtype)
    return rasterizer(means, covariances, colors, torch.sigmoid(logits), camera, background)


def _longhand(means, factor, colors, logits, camera):
    """Front-to-back compositing pixel by pixel, with the reference's projection."""
    covariances = factor @ factor.transpose(1, 2) + 1e-4 * torch.eye(3, dtype=means.dtype)
    opacities = torch.sigmoid(logits)
    proj = project_gaussians(means, covariances, opacities, camera)
    order = sorted((i for i in range(means.shape[0]) if proj.visible[i]), key=lambda i: float(proj.depths[i].detach()))
    background = torch.tensor([1.0, 0.9, 0.8], dtype=means.dtype)
    pixels = []
    for y in range(camera.height):
        for x in range(camera.width):
            transmittance, color = torch.ones((), dtype=means.dtype), torch.zeros(3, dtype=means.dtype)
            for i in order:
                dx, dy = x + 0.5 - proj.means2d[i, 0], y + 0.5 - proj.means2d[i, 1]
                a, b, c = proj.conics[i]
                sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                alpha = torch.clamp_max(opacities[i] * torch.exp(-sigma), MAX_ALPHA)
                if sigma < 0 or alpha < ALPHA_THRESHOLD:
                    continue
                if transmittance * (1 - alpha) <= MIN_TRANSMITTANCE:
                    break
                color = color + alpha * transmittance * colors[i]
                transmittance = transmittance * (1 - alpha)
            pixels.append(color + transmittance * background)
    return torch.stack(pixels).reshape(camera.height, camera.width, 3)


def _image_and_grads(fn, leaves):
    image = fn(*leaves)
    weights = torch.linspace(0, 1, image.numel(), device=image.device, dtype=image.dtype).reshape(image.shape)
    grads = torch.autograd.grad((image * weights).sum(), leaves)
    return image.detach(), grads


def test_reference_matches_longhand_compositing():
    camera = true_cameras(12)[3].to("cpu", torch.float64)
    leaves = _scene(14, seed=1, dtype=torch.float64)
    image, grads = _image_and_grads(lambda *a: _render(rasterize_reference, *a, camera).image, leaves)
    expected, expected_grads = _image_and_grads(lambda *a: _longhand(*a, camera), leaves)
    torch.testing.assert_close(image, expected, atol=1e-12, rtol=0)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-8)


def test_reference_draws_background_for_an_empty_scene():
    camera = true_cameras(8)[0]
    out = rasterize_reference(torch.zeros(0, 3), torch.zeros(0, 3, 3), torch.zeros(0, 3), torch.zeros(0), camera, torch.ones(3))
    assert torch.equal(out.image, torch.ones(8, 8, 3))


def test_gsplat_on_cpu_is_refused():
    with pytest.raises(UserError, match="--device cuda"):
        select_rasterizer("gsplat", "cpu")


def _gsplat_ready() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device: the gsplat fast path only runs on CUDA"
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return "gsplat is not installed (pip install gsplat)"
    return None


@pytest.mark.skipif(_gsplat_ready() is not None, reason=_gsplat_ready() or "")
def test_gsplat_matches_reference_image_and_gradients():
    camera = true_cameras(64)[5].to("cuda")
    leaves = _scene(300, seed=2, device="cuda")
    ref_image, ref_grads = _image_and_grads(lambda *a: _render(rasterize_reference, *a, camera).image, leaves)
    gs_image, gs_grads = _image_and_grads(lambda *a: _render(rasterize_gsplat, *a, camera).image, leaves)
    assert (ref_image - gs_image).abs().max() < 1e-4
    for name, got, want in zip(["means", "covariance factor", "colors", "opacity"], gs_grads, ref_grads):
        scale = want.abs().max()
        assert (got - want).abs().max() <= 2e-3 * scale, name
    ref = _render(rasterize_reference, *leaves, camera)
    gs = _render(rasterize_gsplat, *leaves, camera)
    assert (ref.radii - gs.radii).abs().max() <= 1  # ceil() of float32 extents may differ at integers
