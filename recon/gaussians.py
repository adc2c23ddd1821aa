"""4D Gaussians of "Real-time Photorealistic Dynamic Scene Representation and Rendering with 4D
Gaussian Splatting" (Yang et al., ICLR 2024).

Each Gaussian lives in space-time (x, y, z, t): a 4D mean, four scales and a 4D rotation. Every
rotation of R^4 is v -> q_l v q_r for a left and a right unit quaternion, so the rotation is stored
as two quaternions. Its covariance is Sigma = R S S^T R^T. Rendering at time t uses the conditional
3D Gaussian

    mean(t) = mu_xyz + Sigma_xt / Sigma_tt * (t - mu_t)
    cov(t)  = Sigma_xyz - Sigma_xt Sigma_xt^T / Sigma_tt

whose opacity is scaled by the temporal marginal exp(-(t - mu_t)^2 / (2 Sigma_tt)). Colour is
view-dependent spherical harmonics; with ``sh_degree_t`` > 0 each coefficient also varies in time
through cos(2 pi n (mu_t - t) / T), n = 1..sh_degree_t (the paper's 4D spherindrical harmonics).
"""
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
    -0.4570457994644658, 1.445305721320277, -0.5900435899266435,
)
MAX_SH_DEGREE = 3
PARAM_NAMES = ("xyz", "t", "scales", "rot_l", "rot_r", "opacity", "sh_dc", "sh_rest")


def _left_factor(q: Tensor) -> Tensor:
    """(N,4) unit quaternions (w,x,y,z) -> (N,4,4) matrix of v -> q v, taking (w,x,y,z) 4-vectors
    to (x,y,z,w) ones: its rows are in the (x, y, z, t) order the Gaussians use."""
    w, x, y, z = q.unbind(-1)
    rows = [x, w, -z, y, y, z, w, -x, z, -y, x, w, w, -x, -y, -z]
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 4, 4)


def _right_factor(q: Tensor) -> Tensor:
    """(N,4) unit quaternions (w,x,y,z) -> (N,4,4) matrix of v -> v q, taking (x,y,z,w) 4-vectors
    to (w,x,y,z) ones: its columns are in the (x, y, z, t) order."""
    w, x, y, z = q.unbind(-1)
    rows = [-x, -y, -z, w, w, z, -y, x, -z, w, x, y, y, -x, w, z]
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 4, 4)


def rotation_4d(rot_l: Tensor, rot_r: Tensor) -> Tensor:
    """(N,4), (N,4) quaternions (normalised here) -> (N,4,4) rotation v -> q_l v q_r of (x, y, z, t)
    vectors. The quaternion's real part is the time axis."""
    rot_l = nn.functional.normalize(rot_l, dim=-1)
    rot_r = nn.functional.normalize(rot_r, dim=-1)
    return _left_factor(rot_l) @ _right_factor(rot_r)


def time_variances(scales: Tensor, rot_l: Tensor, rot_r: Tensor) -> Tensor:
    """(N,4) scales and quaternions -> (N,) Sigma_tt, from the time row of the rotation alone."""
    w, x, y, z = nn.functional.normalize(rot_l, dim=-1).unbind(-1)
    time_row = torch.einsum("nk,nkj->nj", torch.stack([w, -x, -y, -z], -1), _right_factor(nn.functional.normalize(rot_r, dim=-1)))
    return ((time_row * scales) ** 2).sum(-1)


def covariance_4d(scales: Tensor, rot_l: Tensor, rot_r: Tensor) -> Tensor:
    """(N,4) positive scales and the two (N,4) quaternions -> (N,4,4) covariance R S S^T R^T."""
    factor = rotation_4d(rot_l, rot_r) * scales[:, None, :]
    return factor @ factor.transpose(1, 2)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Real spherical harmonics up to ``degree`` (<= 3) at (N,3) unit directions -> (N,(degree+1)^2),
    in the basis and order of 3D Gaussian Splatting (so exported coefficients mean the same there)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree > 0:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree > 1:
        xx, yy, zz = x * x, y * y, z * z
        out += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * x * z, SH_C2[4] * (xx - yy)]
    if degree > 2:
        out += [
            SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z, SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, -1)


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """Colour in [0,1] -> the degree-0 coefficient that renders it (colour = C0 * dc + 0.5)."""
    return (rgb - 0.5) / SH_C0


def inverse_sigmoid(x: Tensor) -> Tensor:
    return torch.log(x / (1 - x))


@dataclass
class Slice3D:
    """The 3D Gaussians seen at one time: ``means`` (M,3), ``covariances`` (M,3,3), ``opacities``
    (M,) already scaled by the temporal marginal, ``colors`` (M,3) and ``index`` (M,): which of the
    4D Gaussians they come from."""

    means: Tensor
    covariances: Tensor
    opacities: Tensor
    colors: Tensor
    index: Tensor


class Gaussians4D:
    """N 4D Gaussians held as raw (pre-activation) parameters:

    ``xyz`` (N,3) and ``t`` (N,1) the mean; ``scales`` (N,4) log; ``rot_l``/``rot_r`` (N,4) quaternions (w,x,y,z);
    ``opacity`` (N,) logit; ``sh_dc`` (N,1,3) and ``sh_rest`` (N,K-1,3) colour coefficients, K =
    (sh_degree+1)^2 * (sh_degree_t+1), ordered time harmonic n major, spatial index minor.
    ``time_duration`` is the period T of the colour's time basis.
    """

    def __init__(self, params: dict[str, Tensor], sh_degree: int, sh_degree_t: int, time_duration: float):
        if not 0 <= sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"sh_degree must be 0..{MAX_SH_DEGREE}, got {sh_degree}")
        self.params = {name: nn.Parameter(params[name].detach().clone()) for name in PARAM_NAMES}
        self.sh_degree = sh_degree
        self.sh_degree_t = sh_degree_t
        self.time_duration = float(time_duration)
        self.active_sh_degree = 0
        self.active_sh_degree_t = 0

    @classmethod
    def from_points(
        cls,
        xyzt: Tensor,
        rgb: Tensor,
        spatial_scale: Tensor,
        time_scale: Tensor,
        sh_degree: int,
        sh_degree_t: int,
        time_duration: float,
        opacity: float = 0.1,
    ) -> "Gaussians4D":
        """Isotropic, axis-aligned Gaussians at (N,4) points with (N,3) colours and (N,) scales."""
        n = xyzt.shape[0]
        coeffs = (sh_degree + 1) ** 2 * (sh_degree_t + 1)
        identity = torch.zeros(n, 4, dtype=xyzt.dtype, device=xyzt.device)
        identity[:, 0] = 1.0
        log_scales = torch.cat([spatial_scale.log()[:, None].expand(n, 3), time_scale.log()[:, None]], 1)
        params = {
            "xyz": xyzt[:, :3],
            "t": xyzt[:, 3:],
            "scales": log_scales,
            "rot_l": identity,
            "rot_r": identity.clone(),
            "opacity": inverse_sigmoid(torch.full((n,), opacity, dtype=xyzt.dtype, device=xyzt.device)),
            "sh_dc": rgb_to_sh(rgb)[:, None, :],
            "sh_rest": torch.zeros(n, coeffs - 1, 3, dtype=xyzt.dtype, device=xyzt.device),
        }
        return cls(params, sh_degree, sh_degree_t, time_duration)

    def __len__(self) -> int:
        return self.params["xyz"].shape[0]

    @property
    def device(self) -> torch.device:
        return self.params["xyz"].device

    def oneup_sh_degree(self) -> None:
        """Open the next spatial colour degree and the next time harmonic together. 4DGS opens the
        time harmonics only after spatial degree 3, which its 30k-iteration runs reach at 3000; in
        our 3000-iteration default that would be the last iteration, so time-varying colour would
        never train."""
        self.active_sh_degree = min(self.active_sh_degree + 1, self.sh_degree)
        self.active_sh_degree_t = min(self.active_sh_degree_t + 1, self.sh_degree_t)

    def sh_at_time(self, delta_t: Tensor, index: Tensor, degree: int | None = None) -> Tensor:
        """(M,) mu_t - t of the Gaussians ``index`` (M,) -> (M,(degree+1)^2,3) spatial SH
        coefficients up to ``degree`` (default: all), with the time harmonics up to the active
        time degree folded in. Only the coefficients in use are gathered."""
        degree = self.sh_degree if degree is None else degree
        per_harmonic, used = (self.sh_degree + 1) ** 2, (degree + 1) ** 2
        columns = [n * per_harmonic + k for n in range(self.active_sh_degree_t + 1) for k in range(used)]
        rest = torch.tensor(columns[1:], dtype=torch.long, device=index.device) - 1  # sh_rest lacks the first
        coeffs = torch.cat([self.params["sh_dc"].index_select(0, index),
                            self.params["sh_rest"].index_select(1, rest).index_select(0, index)], 1)
        coeffs = coeffs.reshape(index.numel(), self.active_sh_degree_t + 1, used, 3)
        harmonics = torch.arange(self.active_sh_degree_t + 1, device=coeffs.device, dtype=coeffs.dtype)
        weights = torch.cos(2 * math.pi * harmonics[None] * delta_t[:, None] / self.time_duration)
        return torch.einsum("mn,mnkc->mkc", weights, coeffs)

    def condition(self, t: float, min_marginal: float = 0.05) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The conditional 3D Gaussians at time ``t`` whose temporal marginal exceeds
        ``min_marginal`` (fainter ones are skipped, as in 4DGS): ``index`` (M,), means (M,3),
        covariances (M,3,3), opacities (M,) scaled by the marginal, and ``t - mu_t`` (M,).
        The selection needs only Sigma_tt; the full covariances are built for the M kept."""
        p = self.params
        with torch.no_grad():
            variance_t = time_variances(p["scales"].exp(), p["rot_l"], p["rot_r"])
            index = torch.nonzero(torch.exp(-0.5 * (t - p["t"][:, 0]) ** 2 / variance_t) > min_marginal).squeeze(1)
        cov = covariance_4d(p["scales"][index].exp(), p["rot_l"][index], p["rot_r"][index])
        cov_tt = cov[:, 3, 3]
        delta = t - p["t"][index, 0]
        marginal = torch.exp(-0.5 * delta**2 / cov_tt)
        cov_xt = cov[:, :3, 3]
        means = p["xyz"][index] + cov_xt / cov_tt[:, None] * delta[:, None]
        covariances = cov[:, :3, :3] - cov_xt[:, :, None] * cov_xt[:, None, :] / cov_tt[:, None, None]
        opacities = torch.sigmoid(p["opacity"][index]) * marginal
        return index, means, covariances, opacities, delta

    def slice(self, t: float, camera_center: Tensor, min_marginal: float = 0.05) -> Slice3D:
        """:meth:`condition` at time ``t``, coloured for a camera at (3,) ``camera_center``."""
        index, means, covariances, opacities, delta = self.condition(t, min_marginal)
        # The colour's direction and time inputs are not optimised through (as in 4DGS).
        dirs = nn.functional.normalize(means.detach() - camera_center, dim=-1)
        degree = self.active_sh_degree
        coeffs = self.sh_at_time(-delta.detach(), index, degree)
        colors = torch.clamp_min(torch.einsum("mk,mkc->mc", sh_basis(degree, dirs), coeffs) + 0.5, 0.0)
        return Slice3D(means, covariances, opacities, colors, index)

    def state_dict(self) -> dict:
        return {
            "params": {name: param.detach().clone() for name, param in self.params.items()},
            "sh_degree": self.sh_degree,
            "sh_degree_t": self.sh_degree_t,
            "time_duration": self.time_duration,
            "active_sh_degree": self.active_sh_degree,
            "active_sh_degree_t": self.active_sh_degree_t,
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str = "cpu") -> "Gaussians4D":
        params = {name: tensor.to(device) for name, tensor in state["params"].items()}
        gaussians = cls(params, state["sh_degree"], state["sh_degree_t"], state["time_duration"])
        gaussians.active_sh_degree = state["active_sh_degree"]
        gaussians.active_sh_degree_t = state["active_sh_degree_t"]
        return gaussians
