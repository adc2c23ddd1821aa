"""The rasterisers against independent code: the projection against gsplat's pure-PyTorch
reference (``gsplat.cuda._torch_impl``, which runs on the CPU without compiling anything), the
reference rasteriser against per-pixel compositing written out longhand on gsplat's projection,
the fast path against the reference, and gsplat's CUDA kernels against the reference where CUDA
and a compiled gsplat exist."""
import importlib.metadata
import sys

import pytest
import torch
from gsplat.cuda import _torch_impl as gsplat_torch

from recon import backends
from recon.backends import rasterize_gsplat, require_gsplat_version, select_rasterizer
from recon.fast_rasterizer import rasterize_fast
from recon.rasterizer import ALPHA_THRESHOLD, MAX_ALPHA, MIN_TRANSMITTANCE, project_gaussians, rasterize_reference
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


def _gsplat_projection(means, covariances, camera):
    """gsplat's pure-PyTorch EWA projection: (N,2) means2d, (N,3) conics, (N,) depths, (N,2) radii."""
    radii, means2d, depths, conics, _ = gsplat_torch._fully_fused_projection(
        means, covariances, camera.w2c[None], camera.K[None], camera.width, camera.height, eps2d=0.3, near_plane=0.01,
    )
    return means2d[0], conics[0], depths[0], radii[0]


def _longhand(means, factor, colors, logits, camera):
    """Front-to-back compositing pixel by pixel, on gsplat's projection: independent of our code."""
    covariances = factor @ factor.transpose(1, 2) + 1e-4 * torch.eye(3, dtype=means.dtype)
    opacities = torch.sigmoid(logits)
    means2d, conics, depths, radii = _gsplat_projection(means, covariances, camera)
    order = sorted((i for i in range(means.shape[0]) if radii[i].any()), key=lambda i: float(depths[i].detach()))
    background = torch.tensor([1.0, 0.9, 0.8], dtype=means.dtype)
    pixels = []
    for y in range(camera.height):
        for x in range(camera.width):
            transmittance, color = torch.ones((), dtype=means.dtype), torch.zeros(3, dtype=means.dtype)
            for i in order:
                dx, dy = x + 0.5 - means2d[i, 0], y + 0.5 - means2d[i, 1]
                a, b, c = conics[i]
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


def test_reference_matches_longhand_compositing_on_gsplat_projection():
    """Float64: the whole chain agrees to rounding."""
    camera = true_cameras(12)[3].to("cpu", torch.float64)
    leaves = _scene(14, seed=1, dtype=torch.float64)
    image, grads = _image_and_grads(lambda *a: _render(rasterize_reference, *a, camera).image, leaves)
    expected, expected_grads = _image_and_grads(lambda *a: _longhand(*a, camera), leaves)
    assert ((expected - 1).abs() > 0.05).any()
    torch.testing.assert_close(image, expected, atol=1e-12, rtol=0)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-8)


def test_projection_matches_gsplat_pure_pytorch_reference():
    camera = true_cameras(64)[5].to("cpu", torch.float64)
    means, factor, _, _ = (x.detach() for x in _scene(300, seed=4, dtype=torch.float64))
    covariances = factor @ factor.transpose(1, 2) + 1e-4 * torch.eye(3, dtype=torch.float64)
    opaque = torch.ones(300, dtype=torch.float64)
    ours = project_gaussians(means, covariances, opaque, camera)
    means2d, conics, depths, radii = _gsplat_projection(means, covariances, camera)
    assert ours.visible.sum() > 250
    torch.testing.assert_close(ours.means2d, means2d, rtol=1e-9, atol=0)
    torch.testing.assert_close(ours.conics, conics, rtol=1e-9, atol=0)
    torch.testing.assert_close(ours.depths, depths, rtol=1e-12, atol=0)
    # Ours stops at alpha 1/255: sqrt(2 ln 255) = 3.329 sigmas for an opaque Gaussian, gsplat's 3.33.
    gap = radii - ours.radii
    assert gap.min() >= 0 and gap.max() <= 1 and (gap == 0).float().mean() > 0.9
    half = project_gaussians(means, covariances, opaque / 2, camera)
    assert (half.radii <= ours.radii).all() and (half.radii < ours.radii).any()  # fainter: smaller boxes


def test_importing_gsplat_reference_compiles_nothing():
    """The test dependency is pure Python: gsplat's CUDA backend (the module that compiles) stays unloaded."""
    assert gsplat_torch.__name__ in sys.modules
    assert "gsplat.cuda._backend" not in sys.modules


@pytest.mark.parametrize("dtype, atol, grad_rtol", [(torch.float64, 1e-10, 1e-9), (torch.float32, 2e-6, 2e-4)])
def test_fast_path_matches_reference_image_and_gradients(dtype, atol, grad_rtol):
    """Image, alpha, radii and the gradients of every input (means2d included, which densification
    reads) agree with the plain autograd path."""
    camera = true_cameras(24)[3].to("cpu", dtype)
    leaves = _scene(400, seed=5, dtype=dtype)
    background = torch.tensor([1.0, 0.9, 0.8], dtype=dtype, requires_grad=True)
    results = []
    for rasterizer in (rasterize_reference, rasterize_fast):
        means, factor, colors, logits = leaves
        covariances = factor @ factor.transpose(1, 2) + 1e-4 * torch.eye(3, dtype=dtype)
        out = rasterizer(means, covariances, colors, torch.sigmoid(logits), camera, background)
        weights = torch.linspace(-1, 1, out.image.numel(), dtype=dtype).reshape(out.image.shape)
        loss = (out.image * weights).sum() + (out.alpha * weights[..., 0]).sum()
        grads = torch.autograd.grad(loss, [*leaves, background, out.means2d])
        results.append((out.image.detach(), out.alpha.detach(), out.radii, grads))
    (image, alpha, radii, grads), (fast_image, fast_alpha, fast_radii, fast_grads) = results
    assert ((image - 1).abs() > 0.1).float().mean() > 0.3  # a busy image, not the background
    torch.testing.assert_close(fast_image, image, atol=atol, rtol=0)
    torch.testing.assert_close(fast_alpha, alpha, atol=atol, rtol=0)
    assert torch.equal(fast_radii, radii)
    for name, got, want in zip(["means", "covariance factor", "colors", "opacity", "background", "means2d"], fast_grads, grads):
        assert (got - want).abs().max() <= grad_rtol * want.abs().max(), name


@pytest.mark.parametrize("rasterizer", [rasterize_reference, rasterize_fast])
def test_an_empty_scene_draws_the_background(rasterizer):
    camera = true_cameras(8)[0]
    out = rasterizer(torch.zeros(0, 3), torch.zeros(0, 3, 3), torch.zeros(0, 3), torch.zeros(0), camera, torch.ones(3))
    assert torch.equal(out.image, torch.ones(8, 8, 3)) and torch.equal(out.alpha, torch.zeros(8, 8))


def test_gsplat_on_cpu_is_refused():
    with pytest.raises(UserError, match="--device cuda"):
        select_rasterizer("gsplat", "cpu")


def test_cpu_rasterizer_names():
    assert select_rasterizer("auto", "cpu") is rasterize_fast
    assert select_rasterizer("torch", "cpu") is rasterize_fast
    assert select_rasterizer("reference", "cpu") is rasterize_reference
    with pytest.raises(UserError, match="unknown rasterizer 'fast'"):
        select_rasterizer("fast", "cpu")


@pytest.mark.parametrize("version, message", [("1.4.0", "gsplat 1.4 is installed, stage 6 needs gsplat >= 1.5"),
                                              (None, "gsplat is not installed")])
def test_old_or_missing_gsplat_is_refused_with_the_install_command(monkeypatch, version, message):
    def fake_version(name):
        if version is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return version
    monkeypatch.setattr(backends.importlib.metadata, "version", fake_version)
    with pytest.raises(UserError, match=message + ".*pip install -r requirements-cuda.txt"):
        require_gsplat_version()
    monkeypatch.setattr(backends.importlib.metadata, "version", lambda name: "1.5.3")
    require_gsplat_version()


def _gsplat_ready() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device: the gsplat fast path only runs on CUDA"
    if not backends.gsplat_kernels_load():
        return "gsplat's CUDA kernels do not load here (they need the CUDA toolkit to compile)"
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
