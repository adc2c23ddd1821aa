"""Adaptive density control of 3D Gaussian Splatting, applied to 4D Gaussians as 4DGS does.

Every ``densification_interval`` iterations between ``densify_from_iter`` and
``densify_until_iter``, Gaussians whose average screen-space gradient (in NDC units, as the
3DGS threshold 2e-4 expects) is large are cloned when small (max spatial scale <=
``percent_dense`` x scene extent) and split in two when large (positions drawn from the 4D
Gaussian itself, all four scales / 1.6). Nearly transparent Gaussians are pruned, and once an
opacity reset has happened also those larger than 10 % of the scene. Every
``opacity_reset_interval`` iterations (and, on a white background, at ``densify_from_iter``)
opacities are clamped to 0.01 so that floaters must earn their opacity back; the trainer skips
resets in the second half of a run, which could not recover from them. The Adam moments follow
every change of the set.

The gradient statistic of one iteration is, per Gaussian, the mean over the batch's views that
see it of the norm of its unscaled screen-space gradient, counted once (4DGS's batch rule; with one
view per batch it is the 3DGS statistic). There is no screen-size pruning: 3DGS and 4DGS zero their
screen-radius record while densifying, just before the prune that would read it, so theirs never fires.
"""
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recon.gaussians import Gaussians4D, inverse_sigmoid, rotation_4d

SPLIT_COUNT = 2
SPLIT_SCALE_DIVISOR = 0.8 * SPLIT_COUNT
RESET_OPACITY = 0.01
BIG_WORLD_FRACTION = 0.1


@dataclass
class DensifyConfig:
    """The densification schedule and thresholds (3DGS names; iteration numbers are 1-based)."""

    densify_from_iter: int = 500
    densify_until_iter: int = 2500
    densification_interval: int = 100
    opacity_reset_interval: int = 3000
    densify_grad_threshold: float = 0.0002
    percent_dense: float = 0.01
    thresh_opa_prune: float = 0.005
    white_background: bool = True


def _replace(gaussians: Gaussians4D, optimizer: torch.optim.Optimizer, name: str, value: Tensor, moments) -> None:
    """Swap parameter ``name`` for ``value``; ``moments(old_moment)`` gives its new Adam moments."""
    for group in optimizer.param_groups:
        if group["name"] != name:
            continue
        old = group["params"][0]
        state = optimizer.state.pop(old, None)
        new = nn.Parameter(value.detach().contiguous())
        group["params"][0] = new
        if state:
            state["exp_avg"] = moments(state["exp_avg"])
            state["exp_avg_sq"] = moments(state["exp_avg_sq"])
            optimizer.state[new] = state
        gaussians.params[name] = new
        return
    raise KeyError(f"no optimizer group named {name}")


def keep_gaussians(gaussians: Gaussians4D, optimizer: torch.optim.Optimizer, keep: Tensor) -> None:
    """Keep only the Gaussians where (N,) bool ``keep`` is set."""
    for name, param in list(gaussians.params.items()):
        _replace(gaussians, optimizer, name, param[keep], lambda moment: moment[keep])


def append_gaussians(gaussians: Gaussians4D, optimizer: torch.optim.Optimizer, new: dict[str, Tensor]) -> None:
    """Append Gaussians given as raw parameters (same names and trailing shapes); their moments start at 0."""
    for name, param in list(gaussians.params.items()):
        extra = new[name].detach()
        _replace(
            gaussians, optimizer, name, torch.cat([param.detach(), extra]),
            lambda moment, extra=extra: torch.cat([moment, torch.zeros_like(extra)]),
        )


def reset_opacity(gaussians: Gaussians4D, optimizer: torch.optim.Optimizer) -> None:
    """Clamp every opacity to at most 0.01 and forget its Adam moments."""
    opacity = torch.sigmoid(gaussians.params["opacity"].detach()).clamp_max(RESET_OPACITY)
    _replace(gaussians, optimizer, "opacity", inverse_sigmoid(opacity), torch.zeros_like)


class Densifier:
    """Accumulates per-Gaussian screen-space gradient statistics and applies density control."""

    def __init__(self, count: int, device: torch.device | str):
        self.grad_accum = torch.zeros(count, device=device)
        self.denom = torch.zeros(count, device=device)

    def add_batch(self, views: list[tuple[Tensor, Tensor, Tensor]], width: int, height: int, loss_scale: float) -> None:
        """Record one iteration. Each view is (``index`` (M,) the Gaussians it drew, their (M,2)
        pixel-space gradients of the back-propagated loss, their (M,2) radii, 0 = not visible);
        the loss of each view was multiplied by ``loss_scale`` (1 / batch size) before backward."""
        grad_sum = torch.zeros_like(self.grad_accum)
        seen = torch.zeros_like(self.denom)
        ndc_scale = torch.tensor([0.5 * width, 0.5 * height], device=grad_sum.device) / loss_scale
        for index, screen_grad, radii in views:
            visible = radii.max(-1).values > 0
            ids = index[visible]
            grad_norm = (screen_grad[visible] * ndc_scale).norm(dim=-1)
            grad_sum.index_add_(0, ids, grad_norm)
            seen.index_add_(0, ids, torch.ones_like(grad_norm))
        hit = seen > 0
        self.grad_accum += torch.where(hit, grad_sum / seen.clamp_min(1), grad_sum)
        self.denom += hit

    def _reset(self, count: int) -> None:
        device = self.grad_accum.device
        self.grad_accum = torch.zeros(count, device=device)
        self.denom = torch.zeros(count, device=device)

    @torch.no_grad()
    def densify_and_prune(
        self,
        gaussians: Gaussians4D,
        optimizer: torch.optim.Optimizer,
        config: DensifyConfig,
        extent: float,
        prune_big: bool,
        generator: torch.Generator,
    ) -> None:
        """Clone, split, then prune; ``prune_big`` also prunes Gaussians larger than 10 % of ``extent``."""
        grads = torch.nan_to_num(self.grad_accum / self.denom, nan=0.0)
        p = gaussians.params
        max_scale = p["scales"].exp()[:, :3].max(-1).values
        large_grad = grads >= config.densify_grad_threshold
        small = max_scale <= config.percent_dense * extent

        clone = large_grad & small
        split = large_grad & ~small
        count = len(gaussians)
        new = {name: param[clone] for name, param in p.items()}
        split_new = self._split(gaussians, split, generator)
        new = {name: torch.cat([new[name], split_new[name]]) for name in new}
        append_gaussians(gaussians, optimizer, new)

        opacities = torch.sigmoid(gaussians.params["opacity"])
        prune = opacities < config.thresh_opa_prune
        prune[:count] |= split  # the split originals are replaced by their children
        if prune_big:
            prune |= gaussians.params["scales"].exp()[:, :3].max(-1).values > BIG_WORLD_FRACTION * extent
        keep_gaussians(gaussians, optimizer, ~prune)
        self._reset(len(gaussians))

    @staticmethod
    def _split(gaussians: Gaussians4D, selected: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Two children per selected Gaussian, placed by sampling the parent's 4D distribution."""
        p = {name: param[selected].repeat_interleave(SPLIT_COUNT, 0) for name, param in gaussians.params.items()}
        scales = p["scales"].exp()
        noise = torch.randn(scales.shape, generator=generator, device="cpu").to(scales.device) * scales
        offsets = (rotation_4d(p["rot_l"], p["rot_r"]) @ noise[:, :, None]).squeeze(-1)
        p["xyz"] = p["xyz"] + offsets[:, :3]
        p["t"] = p["t"] + offsets[:, 3:]
        p["scales"] = (scales / SPLIT_SCALE_DIVISOR).log()
        return p

    def state_dict(self) -> dict:
        return {"grad_accum": self.grad_accum, "denom": self.denom}

    def load_state_dict(self, state: dict) -> None:
        device = self.grad_accum.device
        self.grad_accum, self.denom = (state[k].to(device) for k in ("grad_accum", "denom"))
