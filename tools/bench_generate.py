"""Benchmark stage 1 (SyncDreamer with Efficient4D's synchronised DDIM) with random weights: no checkpoint.

Three modes, each printing one table and, with --json, writing the numbers:

* steps (default): the model of --cfg on --device, --frames frames x the config's views. One row per
  precision x --batch_view_num x --batch_frame_num (frames per UNet call default to generate.py's
  choice): seconds per DDIM step after warm-up, the projection to --sample_steps steps, peak memory
  (CUDA max_memory_allocated; CPU: the process's peak RSS), the spatial-volume / frustum-volume / UNet /
  other split (synchronised timers, one extra step), TFLOP/s and the ratio to the compute floor (FLOPs
  counted once on the meta device; floor = those FLOPs at --peak_tflops). A PLAIN row (softmax attention
  written out) with the first row's settings gives the plain/fast ratio. VAE encoding + CLIP ("prepare")
  and decoding of all views are timed once; --profile N prints the top operators of one step.
* --unet-only: the config's UNet alone, one forward of --unet_batch views: the fp32 fast path (fused
  attention, folded depth attention) vs the plain path (speed-up, max difference) and each lower
  --precision under autocast, weights stored as generate.py stores them (speed-up, drift); the
  variants are timed in interleaved rounds, so a changing machine load hits them alike.
* --drift: whole samples of the tiny model in fp32 and in each other --precision, same seed: the
  max difference of the final images; on CUDA also whether every attention call runs a fused kernel.

    python -m tools.bench_generate --device cuda --precision fp16 bf16 --batch_view_num 16 4 --json b.json
    python -m tools.bench_generate --unet-only --device cpu --precision bf16
    python -m tools.bench_generate --drift --device cpu --precision fp16 bf16

Random weights: on CUDA the model is built directly on the GPU with the constructors' init (fast; the
timing does not depend on the values); on the CPU with ldm.checkpoint.randomize_weights.
"""
import argparse
import gc
import os
import platform
import resource
import statistics
import tempfile
import time
from contextlib import contextmanager, nullcontext
from copy import deepcopy
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ldm.checkpoint import randomize_weights
from ldm.data import prepare_inputs
from ldm.modules.attention import attention_backend
from ldm.models.sampler import SyncDDIMSampler, make_ddim_timesteps
from ldm.models.syncdreamer import UNetWrapper, build_model, load_config, model_kwargs_from_config
from ldm.oom import is_out_of_memory
from ldm.pipeline import frames_per_call
from ldm.precision import PRECISIONS, store_for_autocast
from tools.synthetic import make_video
from utils.cli import run_main
from utils.errors import UserError
from utils.images import write_json

GUIDANCE = {"decomposed": (2.0, 1.0), "cfg": 2.0}
H100_DENSE_BF16_TFLOPS = 989.5  # H100 SXM tensor cores, dense fp16/bf16
NUM_DDPM_TIMESTEPS = 1000
GIB = 2 ** 30
FUSED_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")


# ---------------------------------------------------------------- measuring


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float, float]:
    """(fn(), wall seconds, process CPU seconds), synchronised with the device."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float:
    """CUDA: peak allocated since the last reset; CPU: the process's peak resident set (never reset)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # ru_maxrss is in KiB on Linux


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / GIB:.0f} GiB)"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {torch.get_num_threads()} torch threads"


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


# ---------------------------------------------------------------- models and inputs


def bench_model(cfg: dict, device: torch.device, seed: int) -> torch.nn.Module:
    """The model of ``cfg`` in fp32 on ``device``: constructor init on CUDA, seeded random weights on the CPU."""
    model = build_model(cfg, device=device)
    if device.type != "cuda":
        randomize_weights(model, seed)
    return model


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


# ---------------------------------------------------------------- steps mode


def time_row(model, inputs: dict, device: torch.device, precision: str, batch_view_num: int,
             batch_frame_num: int, cfg_scale, warmup: int, repeats: int, breakdown: bool,
             attention: str = "sdpa") -> dict:
    """Seconds per step, the volume/frustum/UNet split and peak memory of one setting."""
    row = dict(path="plain" if attention == "plain" else "fast", attention=attention, precision=precision,
               batch_view_num=batch_view_num, batch_frame_num=batch_frame_num)
    sampler = sampler_for(model, precision, batch_frame_num=batch_frame_num)
    free_memory(device)
    reset_peak_memory(device)
    try:
        with attention_backend(attention):
            step = lambda: run_step(sampler, inputs, cfg_scale, batch_view_num)  # noqa: E731
            for _ in range(warmup):
                step()
            walls, cpus = [], []
            for _ in range(repeats):
                _, wall, cpu = timed(step, device)
                walls.append(wall)
                cpus.append(cpu)
            if breakdown:
                with part_timers(model, device) as parts:
                    _, wall, _ = timed(step, device)
                row.update({f"{k}_s": v for k, v in parts.items()})
                row["other_s"] = wall - sum(parts.values())  # smoothing, embeddings, DDIM update, copies
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        del err
        free_memory(device)
        return row | dict(status="out of memory", peak_mem_gib=peak_memory_gib(device))
    row.update(status="ok", step_s=statistics.median(walls), step_s_all=walls,
               cpu_s=statistics.median(cpus), peak_mem_gib=peak_memory_gib(device))
    return row


def profile_step(model, inputs: dict, device: torch.device, row: dict, cfg_scale, top: int) -> dict:
    """torch.profiler table of one step with ``row``'s settings: where the time goes, operator by operator."""
    sampler = sampler_for(model, row["precision"], batch_frame_num=row["batch_frame_num"])
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with attention_backend(row["attention"]), torch.profiler.profile(activities=activities) as prof:
        timed(lambda: run_step(sampler, inputs, cfg_scale, row["batch_view_num"]), device)
    by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return dict(by=by, table=prof.key_averages().table(sort_by=f"self_{by}", row_limit=top, max_name_column_width=60))


def add_projections(row: dict, flops: dict, ddim_steps: int, peak_tflops: float) -> dict:
    if row["status"] != "ok":
        return row
    step = row["step_s"]
    row["projected_s"] = step * ddim_steps
    row["tflops"] = flops["flops_per_step"] / step / 1e12
    row["floor_ratio"] = step / (flops["flops_per_step"] / (peak_tflops * 1e12))
    return row


def one_off_costs(model, frames: int, device: torch.device, seed: int) -> dict:
    """Seconds to encode the input frames (VAE + CLIP, once per run) and decode every view (once per run)."""
    g = torch.Generator().manual_seed(seed)
    size = model.image_size
    batch = dict(input_image=(torch.rand(frames, size, size, 3, generator=g) * 2 - 1).to(device),
                 input_elevation=torch.zeros(frames, 1, device=device))
    sampler = SyncDDIMSampler(model, 50, progress=False)
    latents = torch.randn(frames, model.view_num, 4, model.latent_size, model.latent_size, generator=g).to(device)
    _, prepare_s, _ = timed(lambda: model.prepare(batch), device)
    _, decode_s, _ = timed(lambda: sampler.decode(latents), device)
    return dict(prepare_s=prepare_s, decode_s=decode_s)


def bench_steps(args, cfg: dict, device: torch.device) -> dict:
    frames = args.frames or 16
    cfg_scale = GUIDANCE[args.guidance]
    sample_steps = args.sample_steps or 50
    ddim_steps = len(make_ddim_timesteps(sample_steps, "uniform", NUM_DDPM_TIMESTEPS))
    flops = count_step_flops(cfg, frames, cfg_scale)
    started = time.perf_counter()
    model = bench_model(cfg, device, args.seed)
    build_s = time.perf_counter() - started
    weights_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / GIB
    views = model.view_num
    chunks = args.batch_view_num or [views]
    precisions = args.precision or [default_precision(device)]
    inputs = step_inputs(model, frames, device, args.seed)

    rows = []
    for precision in precisions:
        for chunk in chunks:
            for frames_per_unet in args.batch_frame_num or [frames_per_call(device, chunk) or frames]:
                row = time_row(model, inputs, device, precision, chunk, min(frames_per_unet, frames), cfg_scale,
                               args.warmup, args.steps_to_time, not args.no_breakdown)
                rows.append(add_projections(row, flops, ddim_steps, args.peak_tflops))
    plain_ratio = None
    if not args.no_plain:
        reference = rows[0]
        plain = time_row(model, inputs, device, reference["precision"], reference["batch_view_num"],
                         reference["batch_frame_num"], cfg_scale, args.warmup, args.steps_to_time, False,
                         attention="plain")
        rows.append(add_projections(plain, flops, ddim_steps, args.peak_tflops))
        if plain["status"] == "ok" and reference["status"] == "ok":
            plain_ratio = plain["step_s"] / reference["step_s"]
    profile = profile_step(model, inputs, device, rows[0], cfg_scale, args.profile) if args.profile else None
    costs = {} if args.no_decode else one_off_costs(model, frames, device, args.seed)
    fused = ({p: one_frame_fused_check(model, device, p, cfg_scale, args.seed) for p in precisions}
             if device.type == "cuda" else None)
    floor_s = flops["flops_per_step"] * ddim_steps / (args.peak_tflops * 1e12)
    result = dict(mode="steps", frames=frames, views=views, guidance=args.guidance, sample_steps=sample_steps,
                  ddim_steps=ddim_steps, total_pflop=flops["flops_per_step"] * ddim_steps / 1e15, floor_s=floor_s,
                  peak_tflops=args.peak_tflops, build_s=build_s, weights_gib=weights_gib, plain_ratio=plain_ratio,
                  fused_attention=fused, profile=profile,
                  **flops, **costs, rows=rows)
    best = min((r for r in rows if r["status"] == "ok" and r["path"] == "fast"), key=lambda r: r["step_s"],
               default=None)
    if best is not None and costs:
        result["projected_total_s"] = best["projected_s"] + costs["prepare_s"] + costs["decode_s"]
    return result


def print_steps(result: dict) -> None:
    projected = f"{result['ddim_steps']} steps s"
    header = (f"{'path':5} {'prec':4} {'frames x views/call':>19} {'s/step':>8} {projected:>12} "
              f"{'volume s':>9} {'frustum s':>9} {'unet s':>8} {'other s':>8} {'TFLOP/s':>8} {'x floor':>8} "
              f"{'peak GiB':>9}")
    print(f"\n{result['frames']} frames x {result['views']} views, {result['guidance']} guidance on "
          f"{result['device_name']}")
    print(header)
    for r in result["rows"]:
        per_call = f"{r['batch_frame_num']} x {r['batch_view_num']}"
        if r["status"] != "ok":
            print(f"{r['path']:5} {r['precision']:4} {per_call:>19} {r['status']:>8} "
                  f"{'':>12} {'':>9} {'':>9} {'':>8} {'':>8} {'':>8} {'':>8} {r['peak_mem_gib']:>9.2f}")
            continue
        split = "".join(f" {r[k]:>{w}.3f}" if k in r else f" {'-':>{w}}"
                        for k, w in (("volume_s", 9), ("frustum_s", 9), ("unet_s", 8), ("other_s", 8)))
        print(f"{r['path']:5} {r['precision']:4} {per_call:>19} {r['step_s']:>8.3f} "
              f"{r['projected_s']:>12.1f}{split} {r['tflops']:>8.3g} {r['floor_ratio']:>8.3g} "
              f"{r['peak_mem_gib']:>9.2f}")
    print(f"FLOPs per step {result['flops_per_step'] / 1e12:.3g} T (volume {result['volume_flops'] / 1e12:.3g} T, "
          f"UNet {result['unet_flops'] / 1e12:.3g} T); {result['ddim_steps']} steps = "
          f"{result['total_pflop']:.3g} PFLOP "
          f"= {result['floor_s']:.3g} s at {result['peak_tflops']:.0f} TFLOP/s (the floor; 'x floor' = time / floor)")
    if result["plain_ratio"] is not None:
        print(f"plain / fast (the first row's precision and frames x views per call): {result['plain_ratio']:.2f}x")
    if "decode_s" in result:
        print(f"once per run: prepare (VAE encode + CLIP) {result['prepare_s']:.2f} s, decode all views "
              f"{result['decode_s']:.2f} s")
    if result["profile"]:
        print(f"profile of one step, the first row's settings (top operators by self {result['profile']['by']}):")
        print(result["profile"]["table"])
    for precision, check in (result["fused_attention"] or {}).items():
        print(f"attention with {precision}: {format_fused(check)}")
    if "projected_total_s" in result:
        print(f"projected generate time, best row: {result['projected_total_s']:.1f} s")
    best = min((r for r in result["rows"] if r["status"] == "ok" and r["path"] == "fast"),
               key=lambda r: r["step_s"], default=None)
    if result["device"].startswith("cuda") and best is not None:
        total = result.get("projected_total_s", best["projected_s"])
        fits = [r for r in result["rows"] if r["status"] == "ok" and r["path"] == "fast" and r["peak_mem_gib"] < 24]
        print_targets([("generate time < 60 s (best row)", total < 60, f"{total:.1f} s"),
                       ("peak memory < 24 GiB (some fast row)", bool(fits),
                        f"{min(r['peak_mem_gib'] for r in result['rows'] if r['status'] == 'ok'):.1f} GiB")])
    print(f"weights {result['weights_gib']:.2f} GiB (fp32), built in {result['build_s']:.1f} s; peak memory: "
          f"{'CUDA max allocated' if result['device'].startswith('cuda') else 'process peak RSS'}")


def print_targets(checks: list[tuple[str, bool, str]]) -> None:
    """The issue's targets: one line each, met or not."""
    for name, met, value in checks:
        print(f"target {name}: {value} ({'met' if met else 'NOT met'})")


# ---------------------------------------------------------------- UNet-only mode


def frustum_shapes(cfg: dict, batch: int) -> dict:
    """{width: (batch,d,D,w,w)} shapes of the frustum features the UNet reads, from a meta forward."""
    model = meta_model(cfg)
    t_embed = torch.zeros(1, model.time_embed_dim, device="meta")
    v_embed = torch.zeros(1, model.view_num, model.viewpoint_dim, device="meta")
    spatial = model.spatial_volume
    volume = torch.zeros(1, spatial.frustum_volume_feats.conv0.in_channels, *(3 * [spatial.spatial_volume_size]),
                         device="meta")
    targets = torch.zeros(1, batch, dtype=torch.long, device="meta")
    feats, _ = spatial.construct_view_frustum_volume(volume, t_embed, v_embed, model.poses, model.Ks, targets)
    return {width: tuple(f.shape) for width, f in feats.items()}


def bench_unet(args, cfg: dict, device: torch.device) -> dict:
    """One UNet forward of a batch of views: fp32 fast vs plain, and each lower precision (autocast)."""
    batch = args.unet_batch
    kwargs = model_kwargs_from_config(cfg)
    size = kwargs["image_size"] // 8
    with torch.device(device):
        unet = UNetWrapper(kwargs["unet_config"])
    unet = randomize_weights(unet.eval().requires_grad_(False), args.seed)
    g = torch.Generator().manual_seed(args.seed)
    context_dim = kwargs["unet_config"]["context_dim"]
    inputs = [torch.randn(batch, 4, size, size, generator=g), torch.full((batch,), 501),
              torch.randn(batch, 1, context_dim, generator=g),
              {w: torch.randn(*s, generator=g) for w, s in frustum_shapes(cfg, batch).items()},
              torch.randn(batch, 4, size, size, generator=g) * 0.18215]
    inputs = [({k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device)) for x in inputs]

    def forward_of(attention: str, precision: str) -> Callable[[], torch.Tensor]:
        amp = PRECISIONS[precision]
        net = unet if amp is None else store_for_autocast(deepcopy(unet), amp)  # as generate.py stores it

        def forward():
            with attention_backend(attention), (torch.autocast(device.type, dtype=amp) if amp else nullcontext()):
                return net(*inputs).float()
        return forward

    variants = [("fast fp32", "sdpa", "fp32"), ("plain fp32", "plain", "fp32")]
    variants += [(f"fast {p}", "sdpa", p) for p in (args.precision or ["bf16"]) if p != "fp32"]
    forwards = [forward_of(attention, precision) for _, attention, precision in variants]
    for forward in forwards:
        for _ in range(args.warmup):
            forward()
    # Rounds that time every variant once each: a change of machine load hits all variants alike.
    timings = [[timed(forward, device) for forward in forwards] for _ in range(args.steps_to_time)]
    rows = []
    for i, (name, attention, precision) in enumerate(variants):
        walls, cpus = [t[i][1] for t in timings], [t[i][2] for t in timings]
        rows.append(dict(name=name, attention=attention, precision=precision, forward_s=statistics.median(walls),
                         forward_s_all=walls, cpu_s=statistics.median(cpus), output=timings[-1][i][0]))
    reference, plain = rows[0]["output"], rows[1]["output"]
    scale = plain.abs().max().item()
    for row in rows:
        out = row.pop("output")
        row["speedup_vs_plain"] = rows[1]["forward_s"] / row["forward_s"]
        row["speedup_vs_fast_fp32"] = rows[0]["forward_s"] / row["forward_s"]
        row["max_abs_diff_vs_fp32"] = (out - (plain if row is rows[0] else reference)).abs().max().item()
        row["max_rel_diff_vs_fp32"] = row["max_abs_diff_vs_fp32"] / scale
    return dict(mode="unet-only", batch=batch, latent_size=size, output_max_abs=scale,
                parameters=sum(p.numel() for p in unet.parameters()), rows=rows)


def print_unet(result: dict) -> None:
    print(f"\nUNet forward, {result['batch']} views at {result['latent_size']}x{result['latent_size']} "
          f"({result['parameters'] / 1e6:.0f} M parameters) on {result['device_name']}")
    print(f"{'variant':11} {'wall s':>8} {'cpu s':>8} {'vs plain':>9} {'vs fast32':>9} {'max|diff|':>10} "
          f"{'rel':>9}")
    for r in result["rows"]:
        print(f"{r['name']:11} {r['forward_s']:>8.3f} {r['cpu_s']:>8.2f} {r['speedup_vs_plain']:>8.2f}x "
              f"{r['speedup_vs_fast_fp32']:>8.2f}x {r['max_abs_diff_vs_fp32']:>10.2e} "
              f"{r['max_rel_diff_vs_fp32']:>9.2e}")
    print("max|diff|: 'fast fp32' against 'plain fp32'; every other row against 'fast fp32' "
          f"(output max |value| {result['output_max_abs']:.3g})")
    fast, plain = result["rows"][:2]
    checks = [("fp32 fast / plain speed-up >= 1.2x", fast["speedup_vs_plain"] >= 1.2,
               f"{fast['speedup_vs_plain']:.2f}x"),
              ("fp32 fast vs plain max|diff| <= 1e-4", fast["max_abs_diff_vs_fp32"] <= 1e-4,
               f"{fast['max_abs_diff_vs_fp32']:.1e}")]
    checks += [(f"{r['precision']} speed-up over plain >= 2x", r["speedup_vs_plain"] >= 2,
                f"{r['speedup_vs_plain']:.2f}x") for r in result["rows"][2:]]
    print_targets(checks)


# ---------------------------------------------------------------- drift mode


def bench_drift(args, cfg: dict, device: torch.device) -> dict:
    """Whole samples (synthetic video, smoothing on) in fp32 and each other precision, same seed."""
    frames, sample_steps = args.frames or 3, args.sample_steps or 10
    cfg_scale = GUIDANCE[args.guidance]
    model = build_model(cfg, device=device)
    randomize_weights(model, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        make_video(Path(tmp), num_frames=frames, size=model.image_size, seed=args.seed)
        batch = prepare_inputs(tmp, 0.0, crop_size=model.image_size * 3 // 4, image_size=model.image_size,
                               frame_num=frames)

    def sample(precision: str) -> tuple[torch.Tensor, float]:
        stored = deepcopy(model)  # weights stored as generate.py stores them, from the float32 ones
        store_for_autocast(stored.model, PRECISIONS[precision] or torch.float32)
        sampler = SyncDDIMSampler(stored, sample_steps, autocast_dtype=PRECISIONS[precision], progress=False)
        torch.manual_seed(args.seed)
        images, seconds, _ = timed(lambda: stored.sample(sampler, batch, cfg_scale, model.view_num,
                                                        smooth_filter=True, is_cyc=0), device)
        return images.float().cpu(), seconds

    reference, rows = None, []
    for precision in ["fp32"] + [p for p in (args.precision or ["fp16", "bf16"]) if p != "fp32"]:
        row = dict(precision=precision)
        try:
            images, row["sample_s"] = sample(precision)
        except RuntimeError as err:  # e.g. an autocast dtype this device has no kernels for
            rows.append(row | dict(status=f"unsupported: {str(err).splitlines()[0][:160]}"))
            continue
        reference = images if reference is None else reference
        diff = (images - reference).abs()
        levels = (((images + 1) * 127.5).to(torch.uint8).int() - ((reference + 1) * 127.5).to(torch.uint8).int()).abs()
        rows.append(row | dict(status="ok", max_abs_diff=diff.max().item(), mean_abs_diff=diff.mean().item(),
                               max_uint8_diff=int(levels.max())))
        if device.type == "cuda":
            rows[-1]["fused_attention"] = one_frame_fused_check(model, device, precision, cfg_scale, args.seed)
    return dict(mode="drift", frames=frames, sample_steps=sample_steps, guidance=args.guidance,
                image_range="[-1, 1]", rows=rows)


def print_drift(result: dict) -> None:
    print(f"\nsample drift against fp32: {result['frames']} frames, {result['sample_steps']} steps, "
          f"{result['guidance']} guidance on {result['device_name']} (images in [-1, 1])")
    print(f"{'prec':5} {'sample s':>9} {'max|diff|':>10} {'mean|diff|':>11} {'uint8':>6}  fused attention")
    for r in result["rows"]:
        if r["status"] != "ok":
            print(f"{r['precision']:5} {r['status']}")
            continue
        print(f"{r['precision']:5} {r['sample_s']:>9.2f} {r['max_abs_diff']:>10.2e} {r['mean_abs_diff']:>11.2e} "
              f"{r['max_uint8_diff']:>6}  {format_fused(r.get('fused_attention'))}")


# ---------------------------------------------------------------- CLI


def default_precision(device: torch.device) -> str:
    return "fp16" if device.type == "cuda" else "fp32"


def check_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is visible; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: only cpu and cuda are supported")
    return device


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--unet-only", action="store_true", help="time one UNet forward (fast / plain / precisions)")
    mode.add_argument("--drift", action="store_true", help="precision drift of whole samples (tiny model default)")
    p.add_argument("--cfg", default=None,
                   help="model config (default configs/syncdreamer.yaml; configs/tiny.yaml with --drift)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--frames", type=int, default=None, help="frames (default 16; 3 with --drift)")
    p.add_argument("--batch_view_num", "--views-chunk", type=int, nargs="+", default=None,
                   help="views per UNet call, one row each (default: all views)")
    p.add_argument("--batch_frame_num", type=int, nargs="+", default=None,
                   help="frames per UNet call, one row each (default: as generate.py, see "
                        "ldm.pipeline.frames_per_call)")
    p.add_argument("--precision", nargs="+", choices=list(PRECISIONS), default=None,
                   help="UNet autocast precision(s) (default fp16 on CUDA, fp32 on the CPU; --unet-only and "
                        "--drift compare these with fp32)")
    p.add_argument("--guidance", choices=list(GUIDANCE), default="decomposed",
                   help="decomposed (scales 2, 1: 3 UNet batches) or cfg (scale 2: 2 batches)")
    p.add_argument("--steps-to-time", "--steps_to_time", dest="steps_to_time", type=int, default=2,
                   help="timed repetitions after the warm-up; the median is reported (default %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed repetitions first (default %(default)s)")
    p.add_argument("--sample_steps", type=int, default=None,
                   help="DDIM steps: the projection in steps mode (default 50), the samples with --drift (10)")
    p.add_argument("--unet_batch", type=int, default=4, help="views per forward with --unet-only (default 4)")
    p.add_argument("--peak_tflops", type=float, default=H100_DENSE_BF16_TFLOPS,
                   help="device peak for the compute floor (default: H100 dense bf16, %(default)s)")
    p.add_argument("--no-plain", dest="no_plain", action="store_true", help="skip the plain-attention row")
    p.add_argument("--no-breakdown", dest="no_breakdown", action="store_true",
                   help="skip the extra step that times volume / frustum / UNet")
    p.add_argument("--no-decode", dest="no_decode", action="store_true",
                   help="skip timing prepare (VAE encode + CLIP) and decoding")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also profile one step (the first row's settings) and print the top N operators")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


def check_args(args) -> None:
    for flag in ("frames", "sample_steps", "unet_batch", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag} must be at least 1, got {value}")
    for flag in ("batch_view_num", "batch_frame_num"):
        values = getattr(args, flag)
        if values and min(values) < 1:
            raise UserError(f"--{flag} values must be at least 1, got {values}")
    if args.steps_to_time < 1 or args.warmup < 0:
        raise UserError("--steps-to-time must be at least 1 and --warmup at least 0")
    if args.peak_tflops <= 0:
        raise UserError(f"--peak_tflops must be positive, got {args.peak_tflops}")


def run_benchmark(args) -> dict:
    """Run the mode ``args`` asks for; returns the JSON-ready result (with the environment)."""
    check_args(args)
    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg_path = args.cfg or ("configs/tiny.yaml" if args.drift else "configs/syncdreamer.yaml")
    cfg = load_config(cfg_path)
    bench = bench_drift if args.drift else bench_unet if args.unet_only else bench_steps
    environment = dict(device=str(device), device_name=device_name(device), torch=torch.__version__,
                       python=platform.python_version(), cfg=str(cfg_path), load_average=os.getloadavg()[0])
    with torch.no_grad():
        return environment | bench(args, cfg, device)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    result = run_benchmark(args)
    {"steps": print_steps, "unet-only": print_unet, "drift": print_drift}[result["mode"]](result)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    run_main(main)
