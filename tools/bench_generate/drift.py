"""Drift mode: whole samples of one model in fp32 and in each lower precision, same seed."""
import tempfile
from copy import deepcopy
from pathlib import Path

import torch

from ldm.checkpoint import randomize_weights
from ldm.data import prepare_inputs
from ldm.models.sampler import SyncDDIMSampler
from ldm.models.syncdreamer import build_model
from ldm.precision import PRECISIONS, store_for_autocast
from tools.bench_generate.workload import GUIDANCE, format_fused, one_frame_fused_check
from tools.measure import timed
from tools.synthetic import make_video


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
