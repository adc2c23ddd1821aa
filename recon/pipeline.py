"""Stage 6 end to end: load the converter's dataset, train (or resume) the 4D Gaussians, write the outputs."""
import dataclasses
from pathlib import Path
from typing import Callable, Sequence

from recon.backends import select_rasterizer
from recon.dataset import load_dataset
from recon.gaussians import Gaussians4D
from recon.render import render_outputs, split_label
from recon.trainer import CHECKPOINT_NAME, TrainConfig, load_checkpoint, train
from utils.devices import resolve_device
from utils.errors import UserError
from utils.images import write_json


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
    holdout: bool = True,
    rasterizer: str = "auto",
    ply_times: Sequence[float] | None = None,
    video_frames: int = 120,
    log: Callable[[str], None] = print,
) -> dict:
    """Reconstruct ``data`` (a data_convertor.py output) into ``output``; return the test metrics.
    ``holdout`` keeps the test views out of training where the data allow it; with ``render_only``
    the checkpoint's own training views decide which test views count as held out."""
    dev = resolve_device(device)
    raster = select_rasterizer(rasterizer, dev, warn=log)
    output = Path(output)
    state = load_checkpoint(output / CHECKPOINT_NAME) if render_only else None
    trained_on = None if state is None else state.get("train_views")
    dataset = load_dataset(data, confidence, resolution, holdout and trained_on is None, dev)
    if trained_on is not None:
        names = set(trained_on)
        dataset = dataclasses.replace(dataset, train=[view for view in dataset.train if view.name in names])
        if not dataset.train:
            raise UserError(f"{output / CHECKPOINT_NAME} was trained on views that {data} does not list; render it with its own --data")
    label = split_label(dataset.held_out)
    log(f"{data}: {len(dataset.train)} training / {len(dataset.test)} test views ({label}), {len(dataset.times)} times, "
        f"{dataset.width}x{dataset.height}, confidence {confidence}, {raster.__name__} on {dev}")
    if holdout and not render_only and not all(dataset.held_out):
        log("the test views cannot be held out (a frame would lose all its training views): "
            "test metrics are on views seen in training")
    if render_only:
        gaussians = Gaussians4D.from_state_dict(state["gaussians"], dev)
        log(f"rendering {output / CHECKPOINT_NAME} (iteration {state['iteration']}, {len(gaussians)} Gaussians)")
    else:
        if not resume and (output / CHECKPOINT_NAME).is_file():
            log(f"starting afresh over {output / CHECKPOINT_NAME} (pass --resume to continue it)")
        write_json(output / "config.json", {
            "data": str(data), "confidence": confidence, "resolution": resolution, "seed": seed,
            "holdout": holdout, "test_views": label, "train": dataclasses.asdict(config),
        })
        gaussians = train(dataset, output, config, raster, dev, seed, resume, log)
    return render_outputs(gaussians, dataset, output, raster, ply_times, video_frames, config.min_marginal, log)
