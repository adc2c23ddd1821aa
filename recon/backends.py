"""Which rasteriser runs, and the adapter to gsplat's CUDA kernels.

Names (``reconstruct.py --rasterizer``):

* ``torch``: :func:`recon.fast_rasterizer.rasterize_fast`, pure PyTorch with a hand-written
  compositing backward; any device, the CPU default;
* ``reference``: :func:`recon.rasterizer.rasterize_reference`, the plain autograd path the others
  are tested against (slow; for checks);
* ``gsplat``: gsplat's tile-based CUDA kernels (CUDA only, gsplat >= 1.5, whose radii are (C,N,2));
* ``auto``: gsplat on CUDA when its kernels load, else ``torch``.

gsplat is a test dependency (its pure-PyTorch reference checks ours on any machine), so it is
usually installed; its CUDA kernels compile on first use and need the CUDA toolkit, which is only
tried on a CUDA device. CUDA users install the tested version with ``pip install -r requirements-cuda.txt``.
"""
import importlib.metadata
import re
from typing import Callable

import torch
from torch import Tensor

from recon.fast_rasterizer import rasterize_fast
from recon.rasterizer import EPS2D, NEAR_PLANE, Camera, Rasterizer, RenderOutput, rasterize_reference
from utils.errors import UserError

RASTERIZERS = ("auto", "torch", "reference", "gsplat")
GSPLAT_MIN_VERSION = (1, 5)
GSPLAT_INSTALL_HINT = "pip install -r requirements-cuda.txt"


def gsplat_version() -> tuple[int, int] | None:
    """(major, minor) of the installed gsplat, or None; read from the package metadata, so
    nothing is imported or compiled."""
    try:
        version = importlib.metadata.version("gsplat")
    except importlib.metadata.PackageNotFoundError:
        return None
    numbers = [int(part) for part in re.findall(r"\d+", version)[:2]]
    return (numbers + [0, 0])[0], (numbers + [0, 0])[1]


def require_gsplat_version() -> None:
    """Refuse a missing or too old gsplat with the command that installs the tested one."""
    version = gsplat_version()
    if version is None:
        raise UserError(f"gsplat is not installed; run `{GSPLAT_INSTALL_HINT}`")
    if version < GSPLAT_MIN_VERSION:
        raise UserError(
            f"gsplat {version[0]}.{version[1]} is installed, stage 6 needs gsplat >= "
            f"{GSPLAT_MIN_VERSION[0]}.{GSPLAT_MIN_VERSION[1]} (its per-axis (C,N,2) radii); run `{GSPLAT_INSTALL_HINT}`"
        )


def gsplat_kernels_load() -> bool:
    """Whether gsplat's CUDA kernels are usable here (this compiles them on first use)."""
    try:
        from gsplat.cuda._backend import _C
    except Exception:  # a failed compile surfaces as anything from OSError to RuntimeError
        return False
    return _C is not None


def rasterize_gsplat(
    means: Tensor, covariances: Tensor, colors: Tensor, opacities: Tensor, camera: Camera, background: Tensor
) -> RenderOutput:
    """The contract of :func:`recon.rasterizer.rasterize_reference`, through gsplat's CUDA kernels."""
    from gsplat import rasterization

    if means.shape[0] == 0:
        image = background.expand(camera.height, camera.width, 3).clone()
        return RenderOutput(image, image.new_zeros(camera.height, camera.width), means.new_zeros(0, 2).int(), means.new_zeros(0, 2))
    image, alpha, meta = rasterization(
        means, None, None, opacities, colors, camera.w2c[None], camera.K[None], camera.width, camera.height,
        near_plane=NEAR_PLANE, eps2d=EPS2D, packed=False, backgrounds=background[None],
        covars=covariances, rasterize_mode="classic",
    )
    means2d = meta["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    return RenderOutput(image[0], alpha[0, ..., 0], meta["radii"].reshape(-1, 2).int(), means2d)


def select_rasterizer(name: str, device: torch.device | str, warn: Callable[[str], None] = print) -> Rasterizer:
    """The rasteriser called ``name`` (one of :data:`RASTERIZERS`) for ``device``."""
    on_cuda = torch.device(device).type == "cuda"
    if name == "torch":
        return rasterize_fast
    if name == "reference":
        return rasterize_reference
    if name == "gsplat":
        if not on_cuda:
            raise UserError("--rasterizer gsplat needs --device cuda; use --rasterizer torch on the CPU")
        require_gsplat_version()
        if not gsplat_kernels_load():
            raise UserError("gsplat's CUDA kernels do not load (they compile on first use and need the CUDA toolkit, nvcc); "
                            "install the toolkit, or use --rasterizer torch")
        return rasterize_gsplat
    if name != "auto":
        raise UserError(f"unknown rasterizer '{name}'; use {', '.join(RASTERIZERS)}")
    if on_cuda:
        version = gsplat_version()
        if version is not None and version >= GSPLAT_MIN_VERSION and gsplat_kernels_load():
            return rasterize_gsplat
        warn(f"gsplat's CUDA kernels are not available (gsplat {version or 'not installed'}): using the pure-PyTorch "
             f"rasteriser; run `{GSPLAT_INSTALL_HINT}` with the CUDA toolkit present for CUDA speed")
    return rasterize_fast
