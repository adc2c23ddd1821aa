"""4D Gaussian algebra: rotations from two quaternions, the conditional slice, colour."""
import math

import numpy as np
import torch
from gsplat.cuda import _torch_impl as gsplat_torch

from recon.gaussians import Gaussians4D, rgb_to_sh, rotation_4d, sh_basis


def _random_quaternions(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def test_rotation_4d_is_a_proper_rotation():
    rot = rotation_4d(_random_quaternions(64, 0), _random_quaternions(64, 1))
    eye = torch.eye(4, dtype=torch.float64).expand(64, 4, 4)
    assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(64, dtype=torch.float64), atol=1e-12)


def test_rotation_4d_with_conjugate_quaternions_is_the_spatial_rotation():
    q = _random_quaternions(8, 2)
    conj = q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    rot = rotation_4d(q, conj).numpy()
    for r, quat in zip(rot, q.numpy()):
        np.testing.assert_allclose(r[:3, :3], _quaternion_to_matrix(quat), atol=1e-12)
        np.testing.assert_allclose(r[3], [0, 0, 0, 1], atol=1e-12)


def _gaussians(n: int, sh_degree: int = 0, sh_degree_t: int = 0, seed: int = 3) -> Gaussians4D:
    g = torch.Generator().manual_seed(seed)
    coeffs = (sh_degree + 1) ** 2 * (sh_degree_t + 1)
    params = {
        "xyz": torch.randn(n, 3, generator=g) * 0.2,
        "t": torch.rand(n, 1, generator=g) * 0.1,
        "scales": torch.randn(n, 4, generator=g) * 0.3 - 2.5,
        "rot_l": torch.randn(n, 4, generator=g),
        "rot_r": torch.randn(n, 4, generator=g),
        "opacity": torch.randn(n, generator=g),
        "sh_dc": torch.randn(n, 1, 3, generator=g),
        "sh_rest": torch.randn(n, coeffs - 1, 3, generator=g),
    }
    return Gaussians4D(params, sh_degree, sh_degree_t, time_duration=0.5)


def test_slice_is_the_conditional_gaussian():
    """Checked against the textbook form: conditional covariance = inverse of the xyz block of the
    4D precision matrix; mean = mu + Sigma_xt / Sigma_tt (t - mu_t); marginal of N(mu_t, Sigma_tt)."""
    gaussians = _gaussians(16)
    t = 0.05
    with torch.no_grad():
        index, means, covs, opacities, _ = gaussians.condition(t, min_marginal=0.0)
    assert index.tolist() == list(range(16))
    p = {k: v.detach().double().numpy() for k, v in gaussians.params.items()}
    rot = rotation_4d(torch.from_numpy(p["rot_l"]), torch.from_numpy(p["rot_r"])).numpy()
    for i in range(16):
        sigma = rot[i] @ np.diag(np.exp(2 * p["scales"][i])) @ rot[i].T
        precision = np.linalg.inv(sigma)
        np.testing.assert_allclose(covs[i].double().numpy(), np.linalg.inv(precision[:3, :3]), rtol=2e-3, atol=1e-9)
        dt = t - p["t"][i, 0]
        np.testing.assert_allclose(means[i].double().numpy(), p["xyz"][i] + sigma[:3, 3] / sigma[3, 3] * dt, atol=1e-6)
        marginal = math.exp(-0.5 * dt * dt / sigma[3, 3])
        np.testing.assert_allclose(float(opacities[i]), marginal / (1 + math.exp(-p["opacity"][i])), rtol=1e-4)


def test_slice_skips_gaussians_far_in_time():
    gaussians = _gaussians(32)
    index = gaussians.condition(10.0, min_marginal=0.05)[0]
    assert index.numel() == 0


def test_degree_zero_colour_is_the_initial_rgb():
    rgb = torch.tensor([[0.1, 0.5, 0.9], [1.0, 0.0, 0.3]])
    gaussians = Gaussians4D.from_points(
        torch.zeros(2, 4), rgb, torch.full((2,), 0.05), torch.full((2,), 0.1), sh_degree=3, sh_degree_t=0, time_duration=1.0
    )
    sliced = gaussians.slice(0.0, torch.tensor([2.0, 0.0, 0.0]))
    torch.testing.assert_close(sliced.colors, rgb, atol=1e-6, rtol=0)


def test_sh_basis_matches_gsplat_pure_pytorch_reference():
    """Every basis function, sign and order as gsplat (and 3DGS) evaluate them."""
    dirs = torch.nn.functional.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=-1)
    for degree in range(4):
        expected = gsplat_torch._eval_sh_bases_fast((degree + 1) ** 2, dirs)
        torch.testing.assert_close(sh_basis(degree, dirs), expected, atol=1e-13, rtol=0)


def test_slice_colours_match_gsplat_spherical_harmonics_with_time_harmonics():
    """Colour at time t = SH(view direction) of the coefficients of harmonic 0 plus
    cos(2 pi (mu_t - t) / T) times SH of those of harmonic 1, + 0.5, clamped at 0 (4DGS's 4D
    spherindrical harmonics, the 3DGS colour offset), with gsplat evaluating every SH sum."""
    gaussians = _gaussians(40, sh_degree=3, sh_degree_t=1)
    gaussians.active_sh_degree, gaussians.active_sh_degree_t = 3, 1
    camera_center = torch.tensor([1.2, -0.4, 0.5])
    t = 0.07
    with torch.no_grad():
        sliced = gaussians.slice(t, camera_center, min_marginal=0.0)
        coeffs = torch.cat([gaussians.params["sh_dc"], gaussians.params["sh_rest"]], 1)[sliced.index]
        dirs = sliced.means - camera_center
        constant = gsplat_torch._spherical_harmonics(3, dirs, coeffs[:, :16])
        varying = gsplat_torch._spherical_harmonics(3, dirs, coeffs[:, 16:])
        phase = torch.cos(2 * math.pi * (gaussians.params["t"][sliced.index, 0] - t) / gaussians.time_duration)
        expected = (constant + phase[:, None] * varying + 0.5).clamp_min(0)
    assert (expected > 0).all(-1).any() and (expected == 0).any()
    torch.testing.assert_close(sliced.colors, expected, atol=1e-5, rtol=0)


def test_time_harmonics_open_with_the_spatial_degrees():
    """Both colour degrees rise at each step, so --sh_degree_t takes effect from the first step
    (4DGS opens it only after spatial degree 3)."""
    gaussians = _gaussians(2, sh_degree=3, sh_degree_t=2)
    steps = []
    for _ in range(4):
        gaussians.oneup_sh_degree()
        steps.append((gaussians.active_sh_degree, gaussians.active_sh_degree_t))
    assert steps == [(1, 1), (2, 2), (3, 2), (3, 2)]


def test_time_harmonic_changes_colour_with_time():
    gaussians = Gaussians4D.from_points(
        torch.zeros(1, 4), torch.full((1, 3), 0.5), torch.full((1,), 0.05), torch.full((1,), 10.0),
        sh_degree=0, sh_degree_t=1, time_duration=1.0,
    )
    gaussians.params["sh_rest"].data[0, 0] = rgb_to_sh(torch.tensor([0.7, 0.5, 0.5])) - rgb_to_sh(torch.tensor([0.5, 0.5, 0.5]))
    center = torch.tensor([2.0, 0.0, 0.0])
    assert torch.allclose(gaussians.slice(0.0, center).colors, torch.full((1, 3), 0.5))  # time degree not active yet
    gaussians.oneup_sh_degree()
    assert gaussians.active_sh_degree_t == 1
    at_0 = gaussians.slice(0.0, center).colors[0]
    at_half = gaussians.slice(0.5, center).colors[0]
    torch.testing.assert_close(at_0, torch.tensor([0.7, 0.5, 0.5]), atol=1e-6, rtol=0)  # cos(0) = 1
    torch.testing.assert_close(at_half, torch.tensor([0.3, 0.5, 0.5]), atol=1e-6, rtol=0)  # cos(pi) = -1
