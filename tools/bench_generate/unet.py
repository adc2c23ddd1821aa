"""UNet-only mode: one UNet forward, fp32 fast vs plain and each lower precision, timed in interleaved rounds."""
import statistics
from contextlib import nullcontext
from copy import deepcopy
from typing import Callable

import torch

from ldm.checkpoint import randomize_weights
from ldm.modules.attention import attention_backend
from ldm.models.syncdreamer import UNetWrapper, model_kwargs_from_config
from ldm.precision import PRECISIONS, store_for_autocast
from tools.bench_generate.workload import meta_model
from tools.measure import print_targets, timed


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
