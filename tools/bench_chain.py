"""Time the whole chain as a user runs it: ``bash run.sh`` on a synthetic video, random weights.

    python -m tools.bench_chain --device cuda                 # full model, 16 frames, 50 steps, stage 6 on
    python -m tools.bench_chain --device cpu                  # the tiny model (CI size: add --frames 2 ...)

Every stage is a real process, as in run.sh; each runs through tools/stage_timer.py, which records
its wall time, its start-up (interpreter and imports), the time in the model loaders and CUDA's
peak allocation. The table gives one row per stage and the share of start-up and loading in the
whole run; on CUDA the issue's target (the chain with reconstruction in at most 90 s) is checked.
SyncDreamer and RIFE get seeded random weights (``CKPT=random``, ``RIFE_MODEL=random``): the
timing does not depend on the values.
"""
import argparse
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from tools.measure import print_targets
from tools.synthetic import make_video
from utils.cli import run_main
from utils.devices import resolve_device
from utils.errors import UserError
from utils.images import write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = {"tools.preflight": "preflight", "prepare_video.py": "prepare", "generate.py": "generate",
          "torch.distributed.run": "generate", "frame_interpolation.py": "interpolate",
          "concat_video.py": "assemble", "video_confidence.py": "confidence", "data_convertor.py": "convert",
          "reconstruct.py": "reconstruct"}
CHAIN_TARGET_S = 90.0


def timer_wrapper(folder: Path) -> Path:
    """An executable that run.sh takes for ``PYTHON``: every command goes through tools.stage_timer."""
    path = folder / "python"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tools.stage_timer "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def chain_env(root: Path, args, wrapper: Path, log: Path) -> dict:
    cpu = args.device == "cpu"
    return dict(os.environ, PYTHON=str(wrapper), STAGE_TIMER_LOG=str(log), FORCE="1",
                CFG=args.cfg or ("configs/tiny.yaml" if cpu else "configs/syncdreamer.yaml"),
                CKPT="random", RIFE_MODEL="random", SAMPLE_STEPS=str(args.sample_steps),
                CROP_SIZE=str(args.crop_size or (48 if cpu else 200)), RECON="1" if args.recon else "0",
                RECON_ITERATIONS=str(args.recon_iterations), RECON_RESOLUTION=str(args.recon_resolution),
                DATA_ROOT=str(root / "data"), OUTPUT_ROOT=str(root / "output"),
                RECON_DATA_ROOT=str(root / "recon_data"), RECON_OUT_ROOT=str(root / "recon_out"))


def stage_rows(log: Path) -> list[dict]:
    rows = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        name = next((STAGES[c] for c in entry["command"] if c in STAGES), " ".join(entry["command"]))
        row = dict(stage=name, wall_s=entry["wall_s"], startup_s=entry.get("startup_s"),
                   loading_s=entry.get("loading_s"), peak_gpu_gib=entry.get("peak_gpu_gib"))
        if row["startup_s"] is not None:
            row["compute_s"] = row["wall_s"] - row["startup_s"] - row["loading_s"]
        rows.append(row)
    return rows


def run_streaming(command: list[str], env: dict) -> tuple[int, str]:
    """Run ``command`` in the repo, printing run.sh's stage lines ("=== generate: 41 s") as they come,
    so a run stopped by a time limit still shows how far it got; returns the exit status and the
    output's last lines."""
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        for line in process.stdout:
            tail.append(line)
            if line.startswith("==="):
                print(line, end="", flush=True)
    return process.returncode, "".join(tail)


def run_chain(args) -> dict:
    """Run run.sh on a fresh synthetic video in a temporary folder; the per-stage rows and the total."""
    device = resolve_device(args.device)
    devices = "cpu" if device.type == "cpu" else str(device.index or 0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_video(root / "data" / "bench", num_frames=args.frames, size=args.size, seed=0)
        log = root / "stages.jsonl"
        env = chain_env(root, args, timer_wrapper(root), log)
        started = time.perf_counter()
        returncode, tail = run_streaming(["bash", "run.sh", "bench", "bench", devices, str(args.frames), "0"], env)
        total_s = time.perf_counter() - started
        if returncode != 0:
            raise UserError(f"run.sh failed (exit {returncode}): {tail.strip()[-600:]}")
        rows = stage_rows(log)
    known = [r for r in rows if r["startup_s"] is not None]
    return dict(device=str(device), frames=args.frames, data_frames=4 * args.frames - 3, cfg=env["CFG"],
                sample_steps=args.sample_steps, recon=args.recon, recon_iterations=args.recon_iterations,
                total_s=total_s, rows=rows, startup_s=sum(r["startup_s"] for r in known),
                loading_s=sum(r["loading_s"] for r in known))


def print_chain(result: dict) -> None:
    print(f"\nrun.sh on {result['frames']} frames ({result['data_frames']} data frames), {result['cfg']}, "
          f"{result['sample_steps']} DDIM steps, stage 6 {'on' if result['recon'] else 'off'}, {result['device']}")
    print(f"{'stage':12} {'wall s':>8} {'start-up s':>11} {'loading s':>10} {'compute s':>10} {'peak GPU GiB':>13}")
    for r in result["rows"]:
        parts = "".join(f" {r[k]:>{w}.2f}" if r.get(k) is not None else f" {'-':>{w}}"
                        for k, w in (("startup_s", 11), ("loading_s", 10), ("compute_s", 10), ("peak_gpu_gib", 13)))
        print(f"{r['stage']:12} {r['wall_s']:>8.2f}{parts}")
    total = result["total_s"]
    print(f"whole chain {total:.1f} s: process start-up {result['startup_s']:.1f} s "
          f"({result['startup_s'] / total:.0%}), model loading {result['loading_s']:.1f} s "
          f"({result['loading_s'] / total:.0%})")
    if result["device"].startswith("cuda") and result["recon"]:
        print_targets([(f"whole chain with reconstruction <= {CHAIN_TARGET_S:.0f} s", total <= CHAIN_TARGET_S,
                        f"{total:.1f} s")])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--cfg", default=None,
                        help="model config (default configs/syncdreamer.yaml on CUDA, configs/tiny.yaml on the CPU)")
    parser.add_argument("--frames", type=int, default=16, help="generated frames (default %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="synthetic video size in pixels (default %(default)s)")
    parser.add_argument("--crop_size", type=int, default=None, help="run.sh CROP_SIZE (default 200; 48 on the CPU)")
    parser.add_argument("--sample_steps", type=int, default=50, help="DDIM steps (default %(default)s)")
    parser.add_argument("--no-recon", dest="recon", action="store_false", help="leave stage 6 out")
    parser.add_argument("--recon_iterations", type=int, default=3000, help="stage 6 iterations (default %(default)s)")
    parser.add_argument("--recon_resolution", type=int, default=1, help="stage 6 downscale (default %(default)s)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for flag in ("frames", "sample_steps", "recon_iterations", "recon_resolution"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    result = run_chain(args)
    print_chain(result)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    run_main(main)
