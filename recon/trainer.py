"""Training loop: 4D Gaussians fitted to the converter's views with the confidence-weighted loss.

Per iteration, ``batch_size`` training views are taken in a shuffled order (reshuffled each pass),
each is rendered at its own time, and the mean loss is back-propagated. Densification follows
the 3DGS schedule (:mod:`recon.densify`); the xyz learning rate decays exponentially from
``position_lr_init`` to ``position_lr_final``, both scaled by the scene extent (as 3DGS); the
Gaussians' times keep a constant rate (4DGS). A checkpoint (``checkpoint.pt``) holds everything
needed to resume bit for bit: Gaussians, Adam state, densification statistics and the random
generator with the pending view order.
"""
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from recon.dataset import ReconDataset, View
from recon.densify import Densifier, DensifyConfig, reset_opacity
from recon.gaussians import Gaussians4D
from recon.init import init_points
from recon.loss import reconstruction_loss
from recon.rasterizer import Rasterizer
from recon.render import render_gaussians, to_uint8
from utils.errors import UserError
from utils.safe_load import UnsafeCheckpointError, safe_torch_load
from utils.images import atomic_path, write_png

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1
WHITE = (1.0, 1.0, 1.0)
LOSS_EMA = 0.4
BAR_UPDATE_EVERY = 10


@dataclass
class TrainConfig:
    """Optimisation options (4DGS / 3DGS names and learning rates)."""

    iterations: int = 3000
    position_lr_init: float = 0.00016
    position_lr_final: float = 0.0000016
    position_t_lr_init: float = -1.0  # -1: the same as position_lr_init
    feature_lr: float = 0.0025
    opacity_lr: float = 0.05
    scaling_lr: float = 0.005
    rotation_lr: float = 0.001
    lambda_dssim: float = 0.2
    sh_degree: int = 3
    sh_degree_t: int = 0
    sh_increase_interval: int = 1000
    batch_size: int = 1
    num_points: int = 20000
    init_opacity: float = 0.1
    init_time_scale: float = 2.0  # temporal std of the initial Gaussians, in frame spacings
    min_marginal: float = 0.05
    preview_every: int = 500
    checkpoint_every: int = 1000
    densify: DensifyConfig = field(default_factory=DensifyConfig)


def make_optimizer(gaussians: Gaussians4D, config: TrainConfig, extent: float) -> torch.optim.Adam:
    p = gaussians.params
    t_lr = config.position_lr_init if config.position_t_lr_init < 0 else config.position_t_lr_init
    groups = [
        ("xyz", p["xyz"], config.position_lr_init * extent),
        ("t", p["t"], t_lr * extent),
        ("sh_dc", p["sh_dc"], config.feature_lr),
        ("sh_rest", p["sh_rest"], config.feature_lr / 20.0),
        ("opacity", p["opacity"], config.opacity_lr),
        ("scales", p["scales"], config.scaling_lr),
        ("rot_l", p["rot_l"], config.rotation_lr),
        ("rot_r", p["rot_r"], config.rotation_lr),
    ]
    # The fused kernel updates all groups in one pass: 5x faster on the CPU than the per-tensor loop.
    return torch.optim.Adam([{"params": [param], "lr": lr, "name": name} for name, param, lr in groups], lr=0.0, eps=1e-15,
                            fused=True)


def position_lr(iteration: int, config: TrainConfig, extent: float) -> float:
    """Log-linear decay from position_lr_init to position_lr_final over the run, times the extent."""
    progress = min(max(iteration / max(config.iterations, 1), 0.0), 1.0)
    if config.position_lr_init <= 0 or config.position_lr_final <= 0:
        return config.position_lr_init * extent
    log_lr = math.log(config.position_lr_init) * (1 - progress) + math.log(config.position_lr_final) * progress
    return math.exp(log_lr) * extent


def initial_gaussians(dataset: ReconDataset, config: TrainConfig, generator: torch.Generator, device) -> Gaussians4D:
    """Visual-hull points per frame time (see :mod:`recon.init`) as isotropic 4D Gaussians."""
    frames: dict[float, list] = {}
    for view in dataset.train:
        conf = None if view.confidence is None else view.confidence.cpu()
        frames.setdefault(view.time, []).append((view.image.cpu(), conf, view.camera.to("cpu")))
    points = init_points(frames, config.num_points, torch.tensor(WHITE), generator)
    times = dataset.times
    spacing = min((b - a for a, b in zip(times, times[1:])), default=1.0)
    duration = max(times[-1] - times[0], spacing)
    time_scale = torch.full((points.xyzt.shape[0],), config.init_time_scale * spacing)
    return Gaussians4D.from_points(
        points.xyzt.to(device), points.rgb.to(device), points.spatial_scale.to(device), time_scale.to(device),
        config.sh_degree, config.sh_degree_t, duration, config.init_opacity,
    )


class ViewSampler:
    """Training views in a fresh random order each pass (a shuffling data loader, resumable)."""

    def __init__(self, count: int, generator: torch.Generator):
        self.count, self.generator, self.pending = count, generator, []

    def next(self) -> int:
        if not self.pending:
            self.pending = torch.randperm(self.count, generator=self.generator).tolist()
        return self.pending.pop()


def backward_batch(
    gaussians: Gaussians4D, views: list[View], rasterizer: Rasterizer, background: Tensor, config: TrainConfig
) -> tuple[float, list[tuple[Tensor, Tensor, Tensor]]]:
    """Render each view at its time and back-propagate its loss / len(views) (gradients add up to
    the batch mean). Returns the mean loss and, per view, what the densifier records: the indices
    of the Gaussians drawn (M,), their (M,2) screen-space gradients and (M,2) radii."""
    total, seen = 0.0, []
    for view in views:
        out, sliced = render_gaussians(gaussians, view.camera, view.time, rasterizer, background, config.min_marginal)
        loss, _, _ = reconstruction_loss(out.image, view.image, view.confidence, config.lambda_dssim)
        (loss / len(views)).backward()
        total += loss.item() / len(views)
        seen.append((sliced.index, out.screen_gradient(), out.radii))
    return total, seen


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint at {path}; run without --resume to start training")
    try:
        state = safe_torch_load(path)
    except UnsafeCheckpointError as err:
        raise UserError(f"checkpoint {err}") from None
    except Exception as err:  # a truncated or foreign file: say which
        raise UserError(f"cannot read checkpoint {path} ({type(err).__name__}); delete it and train again") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise UserError(f"{path} is not a reconstruct.py checkpoint (version {CHECKPOINT_VERSION}); delete it and train again")
    return state


def _preview(out_dir: Path, iteration: int, view: View, gaussians, rasterizer, background, min_marginal) -> None:
    with torch.no_grad():
        out, _ = render_gaussians(gaussians, view.camera, view.time, rasterizer, background, min_marginal)
    write_png(out_dir / "previews" / f"iter_{iteration:06d}.png", np.concatenate([to_uint8(view.image), to_uint8(out.image)], 1))


def train(
    dataset: ReconDataset,
    out_dir: str | Path,
    config: TrainConfig,
    rasterizer: Rasterizer,
    device: torch.device | str,
    seed: int = 0,
    resume: bool = False,
    log: Callable[[str], None] = print,
    callback: Callable[[int, Gaussians4D], None] | None = None,
) -> Gaussians4D:
    """Fit 4D Gaussians to ``dataset.train``; write previews and ``checkpoint.pt`` under ``out_dir``.
    ``callback(iteration, gaussians)`` runs after every iteration (benchmarks evaluate there)."""
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    background = torch.tensor(WHITE, device=device)
    extent = dataset.extent
    generator = torch.Generator().manual_seed(seed)
    sampler = ViewSampler(len(dataset.train), generator)
    if resume:
        state = load_checkpoint(ckpt_path)
        gaussians = Gaussians4D.from_state_dict(state["gaussians"], device)
        start = state["iteration"]
        log(f"resuming from {ckpt_path} at iteration {start} ({len(gaussians)} Gaussians)")
    else:
        gaussians = initial_gaussians(dataset, config, generator, device)
        start = 0
    optimizer = make_optimizer(gaussians, config, extent)
    densifier = Densifier(len(gaussians), device)
    if resume:
        optimizer.load_state_dict(state["optimizer"])
        densifier.load_state_dict(state["densifier"])
        generator.set_state(state["generator"])
        sampler.pending = list(state["pending_views"])

    def checkpoint(iteration: int) -> None:
        save_checkpoint(ckpt_path, {
            "version": CHECKPOINT_VERSION,
            "iteration": iteration,
            "gaussians": gaussians.state_dict(),
            "optimizer": optimizer.state_dict(),
            "densifier": densifier.state_dict(),
            "generator": generator.get_state(),
            "pending_views": list(sampler.pending),
            "train_views": [view.name for view in dataset.train],
            "frame_times": list(dataset.times),  # so the folder renders without its dataset (evaluate.py --recon)
            "config": dataclasses.asdict(config),
            "seed": seed,
        })

    dcfg = config.densify
    preview_view = (dataset.test or dataset.train)[0]
    bar = tqdm(total=config.iterations, initial=start, desc="reconstruct", disable=None)
    ema_loss, started = None, time.perf_counter()
    for iteration in range(start + 1, config.iterations + 1):
        for group in optimizer.param_groups:
            if group["name"] == "xyz":
                group["lr"] = position_lr(iteration, config, extent)
        if iteration % config.sh_increase_interval == 0:
            gaussians.oneup_sh_degree()

        batch = [dataset.train[sampler.next()] for _ in range(config.batch_size)]
        total, seen = backward_batch(gaussians, batch, rasterizer, background, config)
        if iteration < dcfg.densify_until_iter:
            densifier.add_batch(seen, dataset.width, dataset.height, 1.0 / len(batch))

        with torch.no_grad():
            if iteration < dcfg.densify_until_iter:
                if iteration > dcfg.densify_from_iter and iteration % dcfg.densification_interval == 0:
                    densifier.densify_and_prune(
                        gaussians, optimizer, dcfg, extent, iteration > dcfg.opacity_reset_interval, generator
                    )
                reset_due = iteration % dcfg.opacity_reset_interval == 0 or (
                    dcfg.white_background and iteration == dcfg.densify_from_iter)
                # A reset needs the rest of the run to recover (no effect on the 30k 3DGS schedule).
                if reset_due and 2 * iteration <= config.iterations:
                    reset_opacity(gaussians, optimizer)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        ema_loss = total if ema_loss is None else LOSS_EMA * total + (1 - LOSS_EMA) * ema_loss
        if iteration % BAR_UPDATE_EVERY == 0 or iteration == config.iterations:
            bar.set_postfix(loss=f"{ema_loss:.4f}", gaussians=len(gaussians))
            bar.update(iteration - bar.n)
        if config.preview_every > 0 and iteration % config.preview_every == 0:
            _preview(out_dir, iteration, preview_view, gaussians, rasterizer, background, config.min_marginal)
        if config.checkpoint_every > 0 and iteration % config.checkpoint_every == 0:
            checkpoint(iteration)
        if callback is not None:
            callback(iteration, gaussians)
    bar.close()
    done = config.iterations - start
    if done > 0:
        elapsed = time.perf_counter() - started
        checkpoint(config.iterations)
        log(f"trained {done} iterations in {elapsed:.1f}s ({done / elapsed:.1f} it/s); {len(gaussians)} Gaussians")
    return gaussians
