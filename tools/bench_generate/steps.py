"""Steps mode: seconds per synchronised DDIM step per setting, its split, memory, TFLOP/s and the floor."""
import statistics
import time

import torch

from ldm.compile import compile_step_networks
from ldm.modules.attention import attention_backend
from ldm.models.sampler import SyncDDIMSampler, make_ddim_timesteps
from ldm.oom import is_out_of_memory
from ldm.pipeline import frames_per_call
from tools.bench_generate.workload import (GUIDANCE, bench_model, count_step_flops, default_precision, format_fused, one_frame_fused_check,
                                        part_timers, run_step, sampler_for, step_inputs)
from tools.measure import GIB, free_memory, peak_memory_gib, print_targets, reset_peak_memory, timed

NUM_DDPM_TIMESTEPS = 1000


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


def compiled_row(model, inputs: dict, device: torch.device, reference: dict, cfg_scale, mode: str,
                 repeats: int) -> dict:
    """``reference``'s setting with the step networks compiled (in place: call it last). The first step,
    which traces and generates code, is timed apart from the steady steps."""
    compile_step_networks(model, mode)
    sampler = sampler_for(model, reference["precision"], batch_frame_num=reference["batch_frame_num"])
    with attention_backend(reference["attention"]):
        _, first_s, _ = timed(lambda: run_step(sampler, inputs, cfg_scale, reference["batch_view_num"]), device)
    row = time_row(model, inputs, device, reference["precision"], reference["batch_view_num"],
                   reference["batch_frame_num"], cfg_scale, 0, repeats, False, reference["attention"])
    return row | dict(path="compiled", compile_mode=mode, first_step_s=first_s)


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


def report_row(row: dict) -> dict:
    """Print one finished row at once (a run cut short by a time limit keeps what it measured); return it."""
    figures = (f"{row['step_s']:.3f} s/step" if row["status"] == "ok" else row["status"])
    print(f"row: {row['path']} {row['precision']} {row['batch_frame_num']} x {row['batch_view_num']}: {figures}, "
          f"peak {row['peak_mem_gib']:.2f} GiB", flush=True)
    return row


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
                rows.append(report_row(add_projections(row, flops, ddim_steps, args.peak_tflops)))
    plain_ratio = None
    if not args.no_plain:
        reference = rows[0]
        plain = time_row(model, inputs, device, reference["precision"], reference["batch_view_num"],
                         reference["batch_frame_num"], cfg_scale, args.warmup, args.steps_to_time, False,
                         attention="plain")
        rows.append(report_row(add_projections(plain, flops, ddim_steps, args.peak_tflops)))
        if plain["status"] == "ok" and reference["status"] == "ok":
            plain_ratio = plain["step_s"] / reference["step_s"]
    profile = profile_step(model, inputs, device, rows[0], cfg_scale, args.profile) if args.profile else None
    if args.compile != "off" and rows[0]["status"] == "ok":
        rows.append(report_row(add_projections(compiled_row(model, inputs, device, rows[0], cfg_scale, args.compile,
                                                            args.steps_to_time), flops, ddim_steps, args.peak_tflops)))
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


def compiled_summary(row: dict, reference: dict) -> str:
    """Whether compiling paid: its first step against the steps it saves over ``reference``."""
    head = (f"compiled ({row['compile_mode']}): first step {row['first_step_s']:.1f} s (tracing and code generation), "
            f"then {row['step_s']:.3f} s/step")
    saved = reference["step_s"] - row["step_s"]
    if saved <= 0:
        return head + ": no faster than the first row"
    return head + (f", {reference['step_s'] / row['step_s']:.2f}x the first row's speed; the compile pays back "
                   f"after {row['first_step_s'] / saved:.0f} steps")


def print_steps(result: dict) -> None:
    projected = f"{result['ddim_steps']} steps s"
    header = (f"{'path':8} {'prec':4} {'frames x views/call':>19} {'s/step':>8} {projected:>12} "
              f"{'volume s':>9} {'frustum s':>9} {'unet s':>8} {'other s':>8} {'TFLOP/s':>8} {'x floor':>8} "
              f"{'peak GiB':>9}")
    print(f"\n{result['frames']} frames x {result['views']} views, {result['guidance']} guidance on "
          f"{result['device_name']}")
    print(header)
    for r in result["rows"]:
        per_call = f"{r['batch_frame_num']} x {r['batch_view_num']}"
        if r["status"] != "ok":
            print(f"{r['path']:8} {r['precision']:4} {per_call:>19} {r['status']:>8} "
                  f"{'':>12} {'':>9} {'':>9} {'':>8} {'':>8} {'':>8} {'':>8} {r['peak_mem_gib']:>9.2f}")
            continue
        split = "".join(f" {r[k]:>{w}.3f}" if k in r else f" {'-':>{w}}"
                        for k, w in (("volume_s", 9), ("frustum_s", 9), ("unet_s", 8), ("other_s", 8)))
        print(f"{r['path']:8} {r['precision']:4} {per_call:>19} {r['step_s']:>8.3f} "
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
    for r in result["rows"]:
        if r["path"] == "compiled" and r["status"] == "ok":
            print(compiled_summary(r, result["rows"][0]))
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
