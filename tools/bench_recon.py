"""Benchmark stage 6 on the synthetic dynamic scene: iterations per second and time to a PSNR.

    python -m tools.bench_recon                                  # CPU reference rasteriser, 32 px
    python -m tools.bench_recon --device cuda --size 256 --frames 16 --preset default   # gsplat

The scene (recon.synthetic) is rendered through the 16 true SyncDreamer cameras into a
converter-format dataset; training holds the test views (0, 5, 10, 15) out and the held-out PSNR
is measured every --eval_every iterations (evaluation time is not counted). --save_render writes
one held-out view as [ground truth | render] for the README.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recon.dataset import load_dataset
from recon.gaussians import Gaussians4D
from recon.pipeline import check_device
from recon.backends import RASTERIZERS, select_rasterizer
from recon.render import render_gaussians, to_uint8
from recon.synthetic import quick_config, write_dataset
from recon.trainer import TrainConfig, train
from utils.cli import run_main
from utils.images import write_json, write_png


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32, help="image size in px")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--preset", choices=["quick", "default"], default="quick",
                        help="quick: the short-run schedule of the tests; default: reconstruct.py's defaults")
    parser.add_argument("--num_points", type=int, default=None, help="initial Gaussians (preset's value by default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rasterizer", default="auto", choices=RASTERIZERS)
    parser.add_argument("--target_psnr", type=float, default=30.0)
    parser.add_argument("--eval_every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save_render", default=None, help="PNG of one held-out view: ground truth | render")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = check_device(args.device)
    rasterizer = select_rasterizer(args.rasterizer, device)
    if args.preset == "quick":
        config = quick_config(args.iterations, args.num_points or 500)
    else:
        config = TrainConfig(iterations=args.iterations, preview_every=0, checkpoint_every=0)
        if args.num_points:
            config.num_points = args.num_points

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        data = write_dataset(Path(tmp) / "data", size=args.size, num_frames=args.frames)
        dataset = load_dataset(data, "ssim", -1, holdout=True, device=device)
        print(f"synthetic dataset: {len(dataset.train)} training / {len(dataset.test)} held-out views at "
              f"{args.size}px in {time.perf_counter() - started:.1f}s; {rasterizer.__name__} on {device}")

        background = torch.ones(3, device=device)
        curve, paused = [], [0.0]
        start = time.perf_counter()

        def evaluate(iteration: int, gaussians: Gaussians4D) -> None:
            if iteration % args.eval_every and iteration != config.iterations:
                return
            _sync(device)
            t0 = time.perf_counter()
            with torch.no_grad():
                mse = [float(((render_gaussians(gaussians, v.camera, v.time, rasterizer, background,
                                                  config.min_marginal)[0].image.clamp(0, 1) - v.image) ** 2).mean())
                       for v in dataset.test]
            psnr = float(np.mean([-10 * np.log10(max(m, 1e-12)) for m in mse]))
            curve.append({"iteration": iteration, "seconds": t0 - start - paused[0], "psnr": psnr, "gaussians": len(gaussians)})
            paused[0] += time.perf_counter() - t0

        gaussians = train(dataset, Path(tmp) / "out", config, rasterizer, device, args.seed, log=lambda _: None, callback=evaluate)
        _sync(device)
        train_seconds = time.perf_counter() - start - paused[0]

        reached = next((c for c in curve if c["psnr"] >= args.target_psnr), None)
        result = {
            "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "rasterizer": rasterizer.__name__, "threads": torch.get_num_threads(), "size": args.size,
            "frames": args.frames, "train_views": len(dataset.train), "preset": args.preset,
            "iterations": config.iterations, "train_seconds": train_seconds,
            "iterations_per_second": config.iterations / train_seconds, "final_psnr": curve[-1]["psnr"],
            "target_psnr": args.target_psnr, "seconds_to_target": reached["seconds"] if reached else None,
            "iterations_to_target": reached["iteration"] if reached else None, "gaussians": len(gaussians), "curve": curve,
        }
        for c in curve:
            print(f"  iter {c['iteration']:6d}  {c['seconds']:8.2f}s  PSNR {c['psnr']:6.2f} dB  {c['gaussians']} Gaussians")
        target = f"{reached['seconds']:.2f}s (iteration {reached['iteration']})" if reached else "not reached"
        print(f"{result['iterations_per_second']:.1f} it/s over {config.iterations} iterations ({train_seconds:.2f}s); "
              f"held-out PSNR {result['final_psnr']:.2f} dB; time to {args.target_psnr:.0f} dB: {target}")
        if args.save_render:
            view = dataset.test[1]
            with torch.no_grad():
                out, _ = render_gaussians(gaussians, view.camera, view.time, rasterizer, background, config.min_marginal)
            write_png(args.save_render, np.concatenate([to_uint8(view.image), to_uint8(out.image)], 1))
            print(f"held-out view {view.name} (ground truth | render): {args.save_render}")
        if args.json:
            write_json(args.json, result)
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    run_main(main)
