"""Export the 4D Gaussians at one time as a 3D Gaussian Splatting ``.ply``.

The file is the layout 3DGS writes and splat viewers read: binary little-endian float32 vertices
with x, y, z, nx, ny, nz (zeros), f_dc_0..2, f_rest_* (channel-major: all red coefficients, then
green, then blue), opacity (logit), scale_0..2 (log) and rot_0..3 (quaternion w, x, y, z).
The conditional covariance at time t is factored into scales and a rotation by eigen-decomposition,
its opacity includes the temporal marginal, and time-varying colour is evaluated at t.
"""
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.gaussians import Gaussians4D, inverse_sigmoid
from utils.images import atomic_path

MIN_OPACITY = 1.0 / 255.0
MIN_VARIANCE = 1e-12


def rotation_to_quaternion(rotation: Tensor) -> Tensor:
    """(N,3,3) proper rotations -> (N,4) unit quaternions (w,x,y,z), w >= 0."""
    m = rotation
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # The four ways to read q off R; the one with the largest denominator is the stable one.
    candidates = torch.stack([
        torch.stack([1 + trace, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
        torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], m[:, 1, 2] + m[:, 2, 1]], -1),
        torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1),
    ], 1)  # (N,4 candidates,4)
    best = torch.stack([1 + trace, 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
                        1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1).argmax(-1)
    q = torch.nn.functional.normalize(candidates[torch.arange(m.shape[0]), best], dim=-1)
    return q * torch.where(q[:, :1] < 0, -1.0, 1.0)


def covariance_to_scale_rotation(covariances: Tensor) -> tuple[Tensor, Tensor]:
    """(N,3,3) covariances -> (N,3) scales (standard deviations) and (N,4) quaternions."""
    variances, axes = torch.linalg.eigh(covariances)
    axes = axes * torch.where(torch.linalg.det(axes) < 0, -1.0, 1.0)[:, None, None]
    return variances.clamp_min(MIN_VARIANCE).sqrt(), rotation_to_quaternion(axes)


def ply_attributes(sh_coefficients: int) -> list[str]:
    rest = 3 * (sh_coefficients - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_gaussians_ply(path: str | Path, xyz: Tensor, sh: Tensor, opacities: Tensor, scales: Tensor, quaternions: Tensor) -> None:
    """Write (N,3) means, (N,K,3) SH coefficients, (N,) opacities in (0,1), (N,3) scales and (N,4)
    quaternions in the 3DGS layout, atomically."""
    n, k = sh.shape[:2]
    columns = [
        xyz, torch.zeros_like(xyz), sh[:, 0], sh[:, 1:].transpose(1, 2).reshape(n, 3 * (k - 1)),
        inverse_sigmoid(opacities.clamp(1e-6, 1 - 1e-6))[:, None], scales.log(), quaternions,
    ]
    data = torch.cat(columns, 1).detach().cpu().numpy().astype("<f4")
    names = ply_attributes(k)
    header = "\n".join(["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
                       + [f"property float {name}" for name in names] + ["end_header"]) + "\n"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(np.ascontiguousarray(data).tobytes())


@torch.no_grad()
def export_ply(gaussians: Gaussians4D, t: float, path: str | Path) -> int:
    """Write the Gaussians visible at time ``t`` (opacity >= 1/255) to ``path``; return their count."""
    index, means, covariances, opacities, delta = gaussians.condition(t, min_marginal=MIN_OPACITY)
    visible = opacities >= MIN_OPACITY
    index, means, covariances, opacities, delta = index[visible], means[visible], covariances[visible], opacities[visible], delta[visible]
    sh = gaussians.sh_at_time(-delta, index)
    scales, quaternions = covariance_to_scale_rotation(covariances)
    write_gaussians_ply(path, means, sh, opacities, scales, quaternions)
    return int(index.numel())


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Read a binary little-endian float32 vertex .ply (as written above) -> {attribute: (N,)}."""
    raw = Path(path).read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: not a binary little-endian .ply")
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    names = [line.split()[2] for line in header if line.startswith("property float")]
    data = np.frombuffer(raw[end:], dtype="<f4", count=count * len(names)).reshape(count, len(names))
    return {name: data[:, i] for i, name in enumerate(names)}
