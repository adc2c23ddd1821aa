"""Benchmark stage 6 on the synthetic dynamic scene: iterations per second, held-out PSNR, time to a PSNR.

    python -m tools.bench_recon                                      # CPU, 32 px, batch 1 and 4
    python -m tools.bench_recon --size 64 --frames 9 --iterations 1000 --preset default \\
        --batch_size 1 --threads 2 --rasterizer torch reference      # the CPU speed figure, with the plain path's
    python -m tools.bench_recon --device cuda --size 256 --frames 16 --preset default --batch_size 1   # gsplat

The scene (recon.synthetic) is rendered through the 16 true SyncDreamer cameras into a
converter-format dataset; training holds the test views (0, 5, 10, 15) out, and the PSNR is measured
on them (held out) every --eval_every iterations (evaluation time is not counted). Every pair of
--rasterizer and --batch_size values is one training run from the same start; the speed ratio is to
the first rasterizer's run at the same batch size. --save_render writes one held-out view as
[ground truth | render] for the README.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recon.backends import RASTERIZERS, select_rasterizer
from recon.dataset import ReconDataset, load_dataset
from recon.gaussians import Gaussians4D
from recon.rasterizer import Rasterizer
from recon.render import render_gaussians, split_label, to_uint8
from recon.synthetic import default_scene, quick_config, write_dataset
from recon.trainer import TrainConfig, train
from utils.cli import run_main
from utils.devices import resolve_device
from utils.images import write_json, write_png


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32, help="image size in px")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--preset", choices=["quick", "default"], default="quick",
                        help="quick: the short-run schedule of the tests; default: reconstruct.py's defaults")
    parser.add_argument("--num_points", type=int, default=None, help="initial Gaussians (preset's value by default)")
    parser.add_argument("--sh_degree_t", type=int, default=None, help="time harmonics of the colour (preset's value by default)")
    parser.add_argument("--color_change", type=float, default=0.0,
                        help="how far each colour of the scene moves towards the next one's over the clip (0: constant)")
    parser.add_argument("--batch_size", type=int, nargs="+", default=[1, 4], help="views per iteration; one run per value")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rasterizer", nargs="+", default=["auto"], choices=RASTERIZERS, help="one run per value")
    parser.add_argument("--target_psnr", type=float, default=30.0)
    parser.add_argument("--eval_every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save_render", default=None, help="PNG of one held-out view: ground truth | render (last run)")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args()


def make_config(args: argparse.Namespace, batch_size: int) -> TrainConfig:
    if args.preset == "quick":
        config = quick_config(args.iterations, args.num_points or 500)
    else:
        config = TrainConfig(iterations=args.iterations, preview_every=0, checkpoint_every=0)
        config.num_points = args.num_points or config.num_points
    config.batch_size = batch_size
    if args.sh_degree_t is not None:
        config.sh_degree_t = args.sh_degree_t
    return config


def held_out_psnr(gaussians: Gaussians4D, dataset: ReconDataset, rasterizer: Rasterizer, min_marginal: float) -> float:
    """Mean PSNR over the test views (of mean squared errors per view, as renders/test/metrics.json)."""
    background = torch.ones(3, device=gaussians.device)
    with torch.no_grad():
        mse = [float(((render_gaussians(gaussians, v.camera, v.time, rasterizer, background, min_marginal)[0].image.clamp(0, 1)
                       - v.image) ** 2).mean()) for v in dataset.test]
    return float(np.mean([-10 * np.log10(max(m, 1e-12)) for m in mse]))


def run_case(args, dataset: ReconDataset, rasterizer: Rasterizer, config: TrainConfig, out_dir: Path, device) -> dict:
    """Train once; the curve of held-out PSNR against training time (evaluation not counted)."""
    curve, paused, cpu_paused = [], [0.0], [0.0]
    start, cpu_start = time.perf_counter(), time.process_time()

    def evaluate(iteration: int, gaussians: Gaussians4D) -> None:
        if iteration % args.eval_every and iteration != config.iterations:
            return
        _sync(device)
        t0, cpu0 = time.perf_counter(), time.process_time()
        psnr = held_out_psnr(gaussians, dataset, rasterizer, config.min_marginal)
        curve.append({"iteration": iteration, "seconds": t0 - start - paused[0], "psnr": psnr, "gaussians": len(gaussians)})
        paused[0] += time.perf_counter() - t0
        cpu_paused[0] += time.process_time() - cpu0

    gaussians = train(dataset, out_dir, config, rasterizer, device, args.seed, log=lambda _: None, callback=evaluate)
    _sync(device)
    seconds = time.perf_counter() - start - paused[0]
    reached = next((c for c in curve if c["psnr"] >= args.target_psnr), None)
    return {
        "rasterizer": rasterizer.__name__, "batch_size": config.batch_size, "iterations": config.iterations,
        "train_seconds": seconds, "iterations_per_second": config.iterations / seconds,
        # CPU time of all threads: on a shared machine it shows how much of the wall time was ours.
        "train_cpu_seconds": time.process_time() - cpu_start - cpu_paused[0], "held_out_psnr": curve[-1]["psnr"],
        "seconds_to_target": reached["seconds"] if reached else None,
        "iterations_to_target": reached["iteration"] if reached else None, "gaussians": len(gaussians), "curve": curve,
        "model": gaussians,
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rasterizers = [select_rasterizer(name, device) for name in args.rasterizer]

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        data = write_dataset(Path(tmp) / "data", size=args.size, num_frames=args.frames,
                             scene=default_scene(args.frames, args.color_change))
        dataset = load_dataset(data, "ssim", -1, holdout=True, device=device)
        print(f"synthetic dataset: {len(dataset.train)} training / {len(dataset.test)} test views "
              f"({split_label(dataset.held_out)}) at {args.size}px in {time.perf_counter() - started:.1f}s; "
              f"{torch.get_num_threads()} threads on {device}")

        runs = []
        for batch_size in args.batch_size:
            for rasterizer in rasterizers:
                config = make_config(args, batch_size)
                run = run_case(args, dataset, rasterizer, config, Path(tmp) / f"out{len(runs)}", device)
                first = next(r for r in runs + [run] if r["batch_size"] == batch_size)
                run["speed_vs_first_rasterizer"] = run["iterations_per_second"] / first["iterations_per_second"]
                runs.append(run)
                for c in run["curve"]:
                    print(f"  iter {c['iteration']:6d}  {c['seconds']:8.2f}s  held-out PSNR {c['psnr']:6.2f} dB  {c['gaussians']} Gaussians")
                target = f"{run['seconds_to_target']:.2f}s (iteration {run['iterations_to_target']})" if run["seconds_to_target"] else "not reached"
                print(f"{run['rasterizer']}, batch {batch_size}: {run['iterations_per_second']:.2f} it/s over {config.iterations} "
                      f"iterations ({run['train_seconds']:.1f}s, CPU {run['train_cpu_seconds']:.1f}s, "
                      f"{run['speed_vs_first_rasterizer']:.2f}x the first rasterizer); "
                      f"held-out PSNR {run['held_out_psnr']:.2f} dB; time to {args.target_psnr:.0f} dB: {target}")

        if args.save_render:
            view, last = dataset.test[1], runs[-1]
            with torch.no_grad():
                out, _ = render_gaussians(last["model"], view.camera, view.time, rasterizers[-1], torch.ones(3, device=device))
            write_png(args.save_render, np.concatenate([to_uint8(view.image), to_uint8(out.image)], 1))
            print(f"held-out view {view.name} (ground truth | render): {args.save_render}")
        summary = {
            "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "threads": torch.get_num_threads(), "size": args.size, "frames": args.frames, "preset": args.preset,
            "train_views": len(dataset.train), "color_change": args.color_change,
            "runs": [{k: v for k, v in run.items() if k != "model"} for run in runs],
        }
        if args.json:
            write_json(args.json, summary)
        for run in summary["runs"]:
            print(json.dumps({k: v for k, v in run.items() if k != "curve"}))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    run_main(main)
