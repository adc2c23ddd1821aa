"""What every mode of the stage-1 benchmark builds: random-weight models, step inputs, one DDIM step,
its FLOP count, and the check that attention runs fused kernels."""
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ldm.checkpoint import randomize_weights
from ldm.modules.attention import attention_backend
from ldm.models.sampler import SyncDDIMSampler
from ldm.models.syncdreamer import build_model
from ldm.precision import PRECISIONS, store_for_autocast
from tools.measure import timed

GUIDANCE = {"decomposed": (2.0, 1.0), "cfg": 2.0}
FUSED_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")


def bench_model(cfg: dict, device: torch.device, seed: int) -> torch.nn.Module:
    """The model of ``cfg`` in fp32 on ``device``: constructor init on CUDA, seeded random weights on the CPU."""
    model = build_model(cfg, device=device)
    if device.type != "cuda":
        randomize_weights(model, seed)
    return model


def default_precision(device: torch.device) -> str:
    return "fp16" if device.type == "cuda" else "fp32"


def meta_model(cfg: dict) -> torch.nn.Module:
    """The model on the meta device (shapes only) with the DDPM schedule on the CPU, for the sampler."""
    model = build_model(cfg, device="meta")
    model._register_schedule()  # the sampler reads alphas_cumprod values; the rest stays shapes only
    return model


def step_inputs(model: torch.nn.Module, frames: int, device: torch.device, seed: int) -> dict:
    """Random conditions and noisy latents of ``frames`` frames, at the middle of a 50-step schedule."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    size, views = model.latent_size, model.view_num
    context_dim = model.cc_projection.out_features

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    return dict(x_t=randn(frames, views, 4, size, size), x_input=randn(frames, 4, size, size) * 0.18215,
                clip_embed=randn(frames, 1, context_dim), elevation=torch.zeros(frames, device=device),
                time_steps=torch.full((frames,), 501, dtype=torch.long, device=device), index=25)


def sampler_for(model, precision: str, **kwargs) -> SyncDDIMSampler:
    """A sampler at ``precision`` over ``model`` whose UNet weights are stored as generate.py stores them
    (in place: timings do not depend on how the random weights round)."""
    store_for_autocast(model.model, PRECISIONS[precision] or torch.float32)
    return SyncDDIMSampler(model, 50, autocast_dtype=PRECISIONS[precision], progress=False, **kwargs)


def run_step(sampler: SyncDDIMSampler, inputs: dict, cfg_scale, batch_view_num: int) -> torch.Tensor:
    """One synchronised DDIM step with smoothing, as generate.py runs it."""
    x_prev, _ = sampler.denoise_apply(inputs["x_t"], inputs["x_input"], inputs["clip_embed"], inputs["elevation"],
                                      inputs["time_steps"], inputs["index"], cfg_scale, batch_view_num,
                                      smooth_filter=True, is_cyc=0)
    return x_prev


def count_step_flops(cfg: dict, frames: int, cfg_scale) -> dict:
    """FLOPs of one DDIM step (any chunking: chunks change the batch, not the work), counted on meta for
    the original's computation (the plain path; the fast one folds some of it away)."""
    model = meta_model(cfg)
    sampler = SyncDDIMSampler(model, 50, progress=False)
    inputs = step_inputs(model, frames, torch.device("meta"), 0)
    with FlopCounterMode(display=False) as counter, attention_backend("plain"):
        run_step(sampler, inputs, cfg_scale, model.view_num)
    counts = counter.get_flop_counts()

    def flops_of(modules) -> int:
        return sum(sum(counts.get(type(m).__name__, {}).values()) for m in modules)

    return dict(flops_per_step=counter.get_total_flops(),
                volume_flops=flops_of(model.spatial_volume.children()), unet_flops=flops_of([model.model]))


def one_frame_fused_check(model, device: torch.device, precision: str, cfg_scale, seed: int) -> str:
    """fused_attention_check on one DDIM step of one frame, all views in one call."""
    sampler = sampler_for(model, precision)
    inputs = step_inputs(model, 1, device, seed)
    return fused_attention_check(lambda: run_step(sampler, inputs, cfg_scale, model.view_num))


def format_fused(check: str | None) -> str:
    if check is None:
        return "n/a (CPU kernels)"
    return "fused (runs without the math fallback)" if check == "ok" else f"NOT fused: {check}"


@contextmanager
def part_timers(model: torch.nn.Module, device: torch.device) -> Iterator[dict]:
    """Accumulate synchronised seconds spent in the spatial volume, the frustum volumes and the UNet.

    Wraps the three calls on the instances for the duration of the block (the syncs slow a GPU step a
    little, so the step time is measured on a step without them).
    """
    totals = {"volume": 0.0, "frustum": 0.0, "unet": 0.0}
    targets = [(model.spatial_volume, "construct_spatial_volume", "volume"),
               (model.spatial_volume, "construct_view_frustum_volume", "frustum"),
               (model.model, "forward", "unet")]

    def wrap(fn, part):
        def timed_call(*args, **kwargs):
            out, seconds, _ = timed(lambda: fn(*args, **kwargs), device)
            totals[part] += seconds
            return out
        return timed_call

    for owner, name, part in targets:
        setattr(owner, name, wrap(getattr(owner, name), part))
    try:
        yield totals
    finally:
        for owner, name, _ in targets:
            delattr(owner, name)  # back to the class's method


def fused_attention_check(step: Callable[[], object]) -> str:
    """"ok" when ``step`` runs with SDPA's math fallback disabled, else the error.

    A scaled_dot_product_attention call that no fused kernel (flash, memory-efficient, cuDNN) supports
    then raises, so "ok" shows that every SDPA call of the step is fused (meaningful on CUDA).
    """
    fused = [getattr(SDPBackend, name) for name in FUSED_BACKENDS if hasattr(SDPBackend, name)]
    try:
        with sdpa_kernel(fused):
            step()
    except RuntimeError as err:
        return str(err).strip().splitlines()[0][:160]
    return "ok"
