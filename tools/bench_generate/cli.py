"""The stage-1 benchmark's command line: ``python -m tools.bench_generate [--unet-only | --drift] ...``."""
import argparse
import os
import platform

import torch

from ldm.compile import COMPILE_MODES, check_compile
from ldm.models.syncdreamer import load_config
from ldm.precision import PRECISIONS
from tools import bench_generate
from tools.bench_generate.drift import bench_drift, print_drift
from tools.bench_generate.workload import GUIDANCE
from tools.bench_generate.steps import bench_steps, print_steps
from tools.bench_generate.unet import bench_unet, print_unet
from tools.measure import device_name
from utils.devices import resolve_device
from utils.errors import UserError
from utils.images import write_json

H100_DENSE_BF16_TFLOPS = 989.5  # H100 SXM tensor cores, dense fp16/bf16


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=bench_generate.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--compile", choices=list(COMPILE_MODES), default="off",
                   help="add a row with the first row's settings and the step networks compiled in this mode "
                        "(its first step, the compile, timed apart; default off)")
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
    device = resolve_device(args.device)
    check_compile(args.compile, device)
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

