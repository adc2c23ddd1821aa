"""Stage 1 as a library call: RGBA frames -> output/{i}.png, one strip of V generated views per frame.

``generate_frames`` checks every argument first (cheap), prepares the frames, loads the model once,
reseeds right before sampling (so the images do not depend on how the model was built: the fixtures'
convention) and writes the strips atomically.
"""
import os
import sys
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ldm.checkpoint import load_checkpoint, randomize_weights
from ldm.compile import check_compile, compile_step_networks
from ldm.data import CROP_MODES, prepare_frames, select_frames
from ldm.distributed import distributed_session, split_frames
from ldm.models.sampler import SyncDDIMSampler, check_guidance, make_ddim_timesteps
from ldm.models.syncdreamer import build_model, load_config
from ldm.modules.attention import BACKENDS as ATTENTION_BACKENDS, attention_backend
from ldm.oom import explain_out_of_memory
from ldm.precision import PRECISIONS, resolve_precision, store_for_autocast
from utils.devices import default_device, resolve_devices
from utils.errors import UserError
from utils.images import join_views, write_png

RANDOM_CKPT = "random"
RANDOM_WEIGHTS_SEED = 0
SAMPLERS = ("ddim",)
NUM_DDPM_TIMESTEPS = 1000
# On CUDA the UNet gets at most this many frame-views per call (x2 / x3 under guidance). Measured on an
# H200 with the full model, 16 frames x 16 views, decomposed guidance: 64 per call peaks at 17 GiB and
# takes 1.35 s/step; all 256 at once peaks at 54 GiB and takes 1.44 s/step. The result does not depend
# on the chunking (up to float rounding). On the CPU all frames go in one call, as the original.
CUDA_FRAME_VIEWS_PER_CALL = 64

RANDOM_WEIGHTS_WARNING = (
    "WARNING: --ckpt random: the model has seeded RANDOM weights, not a trained checkpoint. "
    "The images are noise from an untrained model; use them only to test the pipeline."
)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def quiet_unless(speak: bool) -> Iterator[None]:
    """Silence stdout (progress notes) unless ``speak``: of a torchrun job only rank 0 talks."""
    if speak:
        yield
        return
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        yield


def model_image_size(config: dict, cfg_path: str | os.PathLike) -> int:
    try:
        return int(config["model"]["params"]["image_size"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{cfg_path} has no model.params.image_size; is it a SyncDreamer config?") from None


def load_model(cfg: str | os.PathLike, ckpt: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build the model a config file describes and load ``ckpt`` strictly (or seeded random weights for
    ``ckpt="random"``, with a loud warning); returns it on ``device`` in eval mode."""
    return model_from_config(load_config(cfg), ckpt, device)


def model_from_config(config: dict, ckpt: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """load_model for an already-read config dict. The model is built on ``device`` directly (the
    constructors' init is fast there) and the weights are copied onto it."""
    model = build_model(config, device=device)
    if str(ckpt) == RANDOM_CKPT:
        warn(RANDOM_WEIGHTS_WARNING)
        randomize_weights(model, RANDOM_WEIGHTS_SEED)
    else:
        print(f"loading model from {ckpt} ...")
        load_checkpoint(model, ckpt)
    return model.eval()


def check_arguments(input: str | os.PathLike, cfg: str | os.PathLike, ckpt: str | os.PathLike,
                    crop_size: int, cfg_scale, batch_view_num: int, sampler: str, sample_steps: int,
                    is_cyc: int, frame_num: int, crop_mode: str) -> None:
    """Every check that needs neither the frames nor the model, so mistakes fail in a second."""
    if not Path(input).exists():
        raise UserError(f"--input {input} does not exist; pass a folder of RGBA PNG frames (or one PNG)")
    if not Path(cfg).is_file():
        raise UserError(f"--cfg {cfg} does not exist; use configs/syncdreamer.yaml or configs/tiny.yaml")
    if str(ckpt) != RANDOM_CKPT and not Path(ckpt).is_file():
        raise UserError(f"--ckpt {ckpt} does not exist; download syncdreamer-pretrain.ckpt as described in "
                        f"ckpt/README.md and put it there (or pass --ckpt {RANDOM_CKPT} to test with random weights)")
    if crop_size != -1 and crop_size < 1:
        raise UserError(f"--crop_size must be -1 (no crop) or a positive size in pixels, got {crop_size}")
    try:
        check_guidance(cfg_scale)
    except ValueError:
        raise UserError(f"--cfg_scales needs two values (image, volume) with --decomposed_sampling, "
                        f"got {cfg_scale}") from None
    if batch_view_num < 1:
        raise UserError(f"--batch_view_num must be at least 1, got {batch_view_num}")
    if sampler not in SAMPLERS:
        raise UserError(f"--sampler {sampler!r} is not supported; use ddim")
    if not 1 <= sample_steps <= NUM_DDPM_TIMESTEPS:
        raise UserError(f"--sample_steps must be in 1..{NUM_DDPM_TIMESTEPS}, got {sample_steps}")
    if is_cyc not in (0, 1):
        raise UserError(f"--is_cyc must be 0 or 1, got {is_cyc}")
    if frame_num < 1:
        raise UserError(f"--frame_num must be at least 1, got {frame_num}")
    if crop_mode not in CROP_MODES:
        raise UserError(f"--crop_mode must be one of {', '.join(CROP_MODES)}, got {crop_mode!r}")


def frames_per_call(device: torch.device, batch_view_num: int) -> int | None:
    """Frames per UNet call: all (None) on the CPU, else enough for CUDA_FRAME_VIEWS_PER_CALL frame-views."""
    if device.type == "cpu":
        return None
    return max(1, CUDA_FRAME_VIEWS_PER_CALL // batch_view_num)


def to_strips(images: torch.Tensor) -> np.ndarray:
    """(F,V,3,H,W) in [-1,1] -> (F,H,V*W,3) uint8: clamp, (x+1)/2*255, truncate (as the original)."""
    pixels = ((images.clamp(-1.0, 1.0) + 1) * 0.5 * 255).to(torch.uint8)
    views = pixels.permute(0, 1, 3, 4, 2).cpu().numpy()  # F,V,H,W,3
    return np.stack([join_views(frame_views) for frame_views in views])


def write_strips(strips: np.ndarray, output: str | os.PathLike) -> list[Path]:
    """Write strip i to output/{i}.png (atomic)."""
    paths = [Path(output) / f"{i}.png" for i in range(len(strips))]
    for path, strip in zip(paths, strips):
        write_png(path, strip)
    return paths


def generate_frames(input: str | os.PathLike, output: str | os.PathLike, elevation: float,
                    cfg: str | os.PathLike = "configs/syncdreamer.yaml",
                    ckpt: str | os.PathLike = "ckpt/syncdreamer-pretrain.ckpt",
                    crop_size: int = -1, cfg_scale: float | Sequence[float] = 2.0, batch_view_num: int = 16,
                    seed: int = 6033, sampler: str = "ddim", sample_steps: int = 50, smooth_filter: bool = False,
                    is_cyc: int = 0, frame_num: int = 1, devices: Sequence[str | torch.device] | None = None,
                    crop_mode: str = "per_frame", precision: str | None = None,
                    batch_frame_num: int | None = None, attention: str = "auto", compile: str = "off",
                    progress: bool = True) -> list[Path]:
    """Generate V views for each of ``frame_num`` frames of ``input``; returns the written output/{i}.png.

    cfg_scale: a number for classifier-free guidance, [image, volume] for decomposed guidance.
    devices: frames are split over these (default: every visible GPU, else the CPU); under torchrun
    (WORLD_SIZE > 1) each process takes one of them (its LOCAL_RANK-th GPU, or the CPU), the processes
    share the frames and rank 0 writes the outputs (see ldm.distributed). precision: fp16 / bf16 / fp32
    autocast for the UNet (default fp16 on CUDA, fp32 on the CPU). attention: the attention backend
    (ldm.modules.attention; "auto": the fast path on CUDA, the original's exact computation on the CPU).
    compile: torch.compile mode for the networks of every step ("off", default; see ldm.compile).
    batch_frame_num: frames per UNet call (default: frames_per_call). Each UNet call takes
    batch_frame_num x batch_view_num frame-views (x2 / x3 under guidance): the peak memory follows that
    product, the images do not. Running out of memory raises a UserError that names the settings to lower.
    With fewer frames than frame_num, all frames are used and a warning says so (as the original).
    """
    check_arguments(input, cfg, ckpt, crop_size, cfg_scale, batch_view_num, sampler, sample_steps,
                    is_cyc, frame_num, crop_mode)
    if batch_frame_num is not None and batch_frame_num < 1:
        raise UserError(f"--batch_frame_num must be at least 1, got {batch_frame_num}")
    if attention not in ATTENTION_BACKENDS:
        raise UserError(f"--attention must be one of {', '.join(ATTENTION_BACKENDS)}, got {attention!r}")
    devices = resolve_devices(default_device()) if devices is None else [torch.device(d) for d in devices]
    check_compile(compile, devices[0])
    with distributed_session(devices) as session, quiet_unless(session.is_main):
        device = session.devices[0]
        precision = resolve_precision(precision, device)
        config = load_config(cfg)
        image_size = model_image_size(config, cfg)

        files = select_frames(input, frame_num)[:frame_num]
        if len(files) < frame_num:
            warn(f"warning: {input} has only {len(files)} frame(s); generating {len(files)} instead of "
                 f"--frame_num {frame_num}")
        print(f"total frames:{len(files)} ({', '.join(f.name for f in files)})")
        batch = prepare_frames(files, elevation, crop_size, image_size, crop_mode)
        num_steps = len(make_ddim_timesteps(sample_steps, "uniform", NUM_DDPM_TIMESTEPS))
        if num_steps != sample_steps:
            print(f"note: --sample_steps {sample_steps} runs {num_steps} DDIM steps (the original's uniform grid)")
        guidance = check_guidance(cfg_scale)
        if isinstance(guidance, float):
            print(f"Classifier-Free Guidance (CFG) Sampling, unconditional scale {guidance:.1f}")
        else:
            print(f"Decomposed Guidance (DG) Sampling, unconditional scales {list(guidance)}")
        if session.distributed:
            idle = max(session.world_size - len(files), 0)
            print(f"{session.world_size} processes share the {len(files)} frame(s)"
                  + (f"; {idle} process(es) without a frame wait" if idle else ""))

        group = session.frame_group(len(files))  # a collective: every process calls it, with frames or not
        if session.has_frames(len(files)):
            frames_per_device = len(split_frames(len(files), session.world_size * len(session.devices))[0])
            frames_per_unet = min(batch_frame_num or frames_per_call(device, batch_view_num) or len(files),
                                  frames_per_device)
            views = config["model"]["params"].get("view_num")
            with explain_out_of_memory(device, frames_per_device, views, batch_view_num, frames_per_unet,
                                       precision), attention_backend(attention):
                model = model_from_config(config, ckpt, device)
                autocast_dtype = PRECISIONS[precision]
                if autocast_dtype is not None:
                    store_for_autocast(model.model, autocast_dtype)  # the sampler runs it under autocast
                ddim = SyncDDIMSampler(model, sample_steps, devices=session.devices[:len(files)],
                                       autocast_dtype=autocast_dtype, batch_frame_num=frames_per_unet,
                                       process_group=group, progress=progress and session.is_main)
                for replica in {id(r): r for _, r in ddim.replicas}.values():  # devices may share one model
                    compile_step_networks(replica, compile)
                torch.manual_seed(seed)
                images = model.sample(ddim, batch, guidance, batch_view_num, smooth_filter=smooth_filter,
                                      is_cyc=is_cyc)
        paths = [Path(output) / f"{i}.png" for i in range(len(files))]
        if session.is_main:
            write_strips(to_strips(images), output)
            print(f"wrote {len(paths)} frame(s) of {images.shape[1]} views to {output}")
            if str(ckpt) == RANDOM_CKPT:
                warn(RANDOM_WEIGHTS_WARNING)
        session.barrier()  # the other processes end once rank 0 has written the outputs
    return paths
