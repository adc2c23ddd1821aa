"""Benchmark stages 2 and 4: the original's per-pair / per-view pattern against our batched runs.

    python -m tools.bench_interp                       # CPU, 5 frames of 256 x 4096 (4 pairs)
    python -m tools.bench_interp --device cuda --frames 9

Interpolation: the original's run.sh starts a fresh Python process per frame pair
(``frame_interpolation.py --img A B --cycle2``). Its stand-in is a fresh process per pair running
our pair mode with the original's kernels (``plain_kernels``); our pair-mode script per pair is
timed too. Batch mode (``--root_path --num_frame``) does every pair in one process. All run as
subprocesses on the same synthetic strips, so all pay start-up and model loading.

Confidence: ``confidence_maps_per_view`` with the original's kernels (its loop: one view and one
pair per network call) against ``confidence_maps`` (views of several frames per call), in this
process, on the first --conf_frames strips.

Every comparison counts the output values that differ. The machine's load average is printed:
other processes on a small CPU slow everything down, one call spread over both cores most.
"""
import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rife.model import load_flownet
from utils.devices import resolve_device
from tools.synthetic import make_video
from utils.cli import run_main
from confidence.maps import confidence_maps, confidence_maps_per_view
from utils.images import read_rgb, read_rgba, write_png

NUM_VIEWS = 16
REPO_ROOT = Path(__file__).resolve().parent.parent


def synthetic_strips(num_frames: int, size: int) -> list[np.ndarray]:
    """Stand-ins for generate.py output: (size, 16*size, 3) uint8 strips of tools.synthetic's moving
    object on white, view v shifted sideways by a view-dependent amount (as the confidence fixture)."""
    strips = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in make_video(tmp, num_frames, size=size, seed=0):
            rgba = read_rgba(path).astype(np.float32) / 255
            view = np.round((rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:]) * 255).astype(np.uint8)
            shifts = [(6 * v - 45) * size // 256 for v in range(NUM_VIEWS)]
            strips.append(np.concatenate([np.roll(view, s, axis=1) for s in shifts], axis=1))
    return strips


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def script(*args: str) -> list[str]:
    return [sys.executable, "frame_interpolation.py", *args]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(commands: list[list[str]]) -> tuple[float, float]:
    """(wall, CPU) seconds to run the commands one after another (from the repo root)."""
    start, cpu = time.perf_counter(), children_cpu()
    for command in commands:
        subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)
    return time.perf_counter() - start, children_cpu() - cpu


def differing(folder_a: Path, folder_b: Path) -> tuple[int, int, int]:
    """(files, values differing, largest difference) over the PNGs of folder_a vs the same names in folder_b."""
    files = sorted(folder_a.rglob("*.png"))
    count, largest = 0, 0
    for path in files:
        a = read_rgb(path).astype(np.int16)
        b = read_rgb(folder_b / path.relative_to(folder_a)).astype(np.int16)
        count += int(np.count_nonzero(a != b))
        largest = max(largest, int(np.abs(a - b).max()))
    return len(files), count, largest


# A fresh process per pair that runs our pair mode with the original's kernels (plain_kernels):
# the stand-in for the original's per-pair process.
ORIGINAL_PAIR_PROCESS = (
    "import sys; from rife.model import load_flownet; from rife.interpolate import interpolate_pair; "
    "interpolate_pair(load_flownet(sys.argv[1], sys.argv[2], plain_kernels=True), *sys.argv[3:6], cycle2=True)"
)


def bench_interpolation(root: Path, num_frames: int, model: str, device: torch.device) -> None:
    pairs = range(num_frames - 1)
    frame = [str(root / f"{i}.png") for i in range(num_frames)]
    original, original_cpu = timed_run([
        [sys.executable, "-c", ORIGINAL_PAIR_PROCESS, model, str(device), frame[i], frame[i + 1],
         str(root / "original" / f"{i}_{i + 1}")] for i in pairs])
    pair_mode, pair_mode_cpu = timed_run([
        script("--img", frame[i], frame[i + 1], "--cycle2", "--save_path", str(root / "pair_mode" / f"{i}_{i + 1}"),
               "--model", model, "--device", str(device)) for i in pairs])
    batch, batch_cpu = timed_run([script("--root_path", str(root), "--num_frame", str(num_frames), "--cycle2",
                                         "--model", model, "--device", str(device))])
    height, width = read_rgb(frame[0]).shape[:2]
    print(f"interpolation, {len(pairs)} pairs of {width}x{height} strips (--cycle2), wall s (CPU s):")
    for name, wall, cpu in (("a process per pair, original kernels", original, original_cpu),
                            ("a process per pair, our pair mode", pair_mode, pair_mode_cpu),
                            ("batch mode, one process", batch, batch_cpu)):
        print(f"  {name:38s} {wall:7.1f} ({cpu:6.1f})  {wall / len(pairs):5.1f} s per pair")
    print(f"  speed-up of batch mode: {original / batch:.2f}x over the original pattern "
          f"({original_cpu / batch_cpu:.2f}x CPU), {pair_mode / batch:.2f}x over our pair mode")
    for other in ("original", "pair_mode"):
        files, diff, largest = differing(root / "interp", root / other)
        print(f"  outputs vs {other}: {files} PNGs, {diff} values differ (max {largest})")


def bench_confidence(strips: list[np.ndarray], model: str, device: torch.device) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    per_view = list(confidence_maps_per_view(strips, load_flownet(model, device, plain_kernels=True)))
    one_by_one, one_by_one_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    batched = list(confidence_maps(strips, load_flownet(model, device)))
    fast, fast_cpu = time.perf_counter() - start, time.process_time() - cpu
    diff = sum(int(np.count_nonzero(a[i] != b[i])) for a, b in zip(per_view, batched) for i in (1, 2))
    print(f"confidence maps, {len(strips)} frames x {NUM_VIEWS} views, model loading included, wall s (CPU s):")
    print(f"  one view per call, original kernels    {one_by_one:7.1f} ({one_by_one_cpu:6.1f})")
    print(f"  batched views and frames               {fast:7.1f} ({fast_cpu:6.1f})")
    print(f"  speed-up {one_by_one / fast:.2f}x ({one_by_one_cpu / fast_cpu:.2f}x CPU); outputs: {diff} values differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=5, help="strips to interpolate (frames - 1 pairs)")
    parser.add_argument("--conf_frames", type=int, default=6, help="strips for the confidence maps")
    parser.add_argument("--size", type=int, default=256, help="view size; strips are size x 16*size")
    parser.add_argument("--model", default="random",
                        help="folder holding flownet.pkl; the default seeded random weights time the same")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--skip", choices=["interp", "confidence"], help="run only the other benchmark")
    args = parser.parse_args()

    device = resolve_device(args.device)
    load_flownet(args.model, device)  # fails early if the weights are missing
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    strips = synthetic_strips(max(args.frames, args.conf_frames), args.size)
    if args.skip != "interp":
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.frames):
                write_png(Path(tmp) / f"{i}.png", strips[i])
            bench_interpolation(Path(tmp), args.frames, args.model, device)
    if args.skip != "confidence":
        bench_confidence(strips[:args.conf_frames], args.model, device)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    run_main(main)
