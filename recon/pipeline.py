"""Stage 6 end to end: load the converter's dataset, train (or resume) the 4D Gaussians, write the outputs."""
import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import torch

from recon.dataset import load_dataset
from recon.gaussians import Gaussians4D
from recon.rasterizer import select_rasterizer
from recon.render import render_outputs
from recon.trainer import CHECKPOINT_NAME, TrainConfig, load_checkpoint, train
from utils.errors import UserError
from utils.images import write_json


def check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device '{device}' is not a device; use cpu or cuda (cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available to PyTorch here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: only cpu and cuda are supported")
    return dev


def reconstruct(
    data: str | Path,
    output: str | Path,
    config: TrainConfig,
    confidence: str = "ssim",
    resolution: int = -1,
    device: str = "cpu",
    seed: int = 0,
    resume: bool = False,
    render_only: bool = False,
    holdout: bool = False,
    rasterizer: str = "auto",
    ply_times: Sequence[float] | None = None,
    video_frames: int = 120,
    log: Callable[[str], None] = print,
) -> dict:
    """Reconstruct ``data`` (a data_convertor.py output) into ``output``; return the test metrics."""
    dev = check_device(device)
    raster = select_rasterizer(rasterizer, dev, warn=log)
    dataset = load_dataset(data, confidence, resolution, holdout, dev)
    output = Path(output)
    log(f"{data}: {len(dataset.train)} training / {len(dataset.test)} test views, {len(dataset.times)} times, "
        f"{dataset.width}x{dataset.height}, confidence {confidence}, {raster.__name__} on {dev}")
    if render_only:
        state = load_checkpoint(output / CHECKPOINT_NAME)
        gaussians = Gaussians4D.from_state_dict(state["gaussians"], dev)
        log(f"rendering {output / CHECKPOINT_NAME} (iteration {state['iteration']}, {len(gaussians)} Gaussians)")
    else:
        if not resume and (output / CHECKPOINT_NAME).is_file():
            log(f"starting afresh over {output / CHECKPOINT_NAME} (pass --resume to continue it)")
        write_json(output / "config.json", {
            "data": str(data), "confidence": confidence, "resolution": resolution, "seed": seed,
            "holdout": holdout, "train": dataclasses.asdict(config),
        })
        gaussians = train(dataset, output, config, raster, dev, seed, resume, log)
    return render_outputs(gaussians, dataset, output, raster, ply_times, video_frames, config.min_marginal, log)
