"""Stage 0's matting against known masks: mean / worst-frame IoU and time per frame.

Clips are filmed in front of plain, lightly noisy (4 grey levels) and textured backdrops, written
as real mp4 and gif files and run through ``prepare_video`` (decode, matte, write). The object is
the synthetic blob (crossing the frame on the textured backdrop, so the median backdrop can be
seen), or, with ``--objects``, a folder of RGBA frames such as a Consistent4D video.

    python -m tools.bench_matting --frames 16 --height 128
    python -m tools.bench_matting --objects ../shared/data/walking_white_faced_egret --height 360
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from prepare.frames import fit_max_side, open_source, read_frames
from prepare.pipeline import prepare_video
from tools.synthetic import backdrop_video, film, write_video
from utils.cli import run_main
from utils.images import read_rgba

BACKDROPS = ("plain", "noisy", "textured")
FORMATS = (".mp4", ".gif")
REFINES = ("none", "grabcut")


def load_objects(folder: Path, frames: int, height: int) -> np.ndarray:
    """(T,H,W,4) uint8: ``frames`` evenly spaced RGBA frames of ``folder``, scaled to ``height``."""
    source = open_source(folder)
    chosen = [int(round(x)) for x in np.linspace(0, source.num_frames - 1, min(frames, source.num_frames))]
    decoded = read_frames(source, chosen)
    return np.stack([fit_max_side(decoded[i], height * decoded[i].shape[1] // decoded[i].shape[0]) for i in chosen])


def clip(backdrop: str, frames: int, height: int, objects: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if objects is not None:
        return film(objects, backdrop, rng=0)
    width = 3 * height if backdrop == "textured" else height  # the blob must leave its pixels for the median
    return backdrop_video(frames, height, width, backdrop, seed=0)


def measure(video: Path, masks: np.ndarray, refine: str, work: Path) -> tuple[float, float, float]:
    """(mean IoU, worst frame's IoU, seconds per frame) of ``--matting background`` on ``video``."""
    out = work / f"out_{video.stem}_{video.suffix[1:]}_{refine}"
    start = time.perf_counter()
    checks = prepare_video(video, out, num_frames=len(masks), matting="background", refine=refine, max_side=None,
                           log=lambda _: None)
    seconds = (time.perf_counter() - start) / len(masks)
    ious = []
    for c in checks:
        found = read_rgba(out / f"{c.index}.png")[..., 3] >= 128
        truth = masks[c.source_index]
        ious.append((found & truth).sum() / (found | truth).sum())
    return float(np.mean(ious)), float(np.min(ious)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--objects", type=Path, default=None, help="folder of RGBA frames to film instead of the blob")
    args = parser.parse_args()
    objects = load_objects(args.objects, args.frames, args.height) if args.objects else None
    print("| backdrop | file | refine | mean IoU | worst frame | s / frame |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for backdrop in BACKDROPS:
            frames, masks = clip(backdrop, args.frames, args.height, objects)
            for suffix in FORMATS:
                video = write_video(work / f"{backdrop}{suffix}", frames)
                for refine in REFINES:
                    mean, worst, seconds = measure(video, masks, refine, work)
                    print(f"| {backdrop} | {suffix[1:]} | {refine} | {mean:.3f} | {worst:.3f} | {seconds:.3f} |")


if __name__ == "__main__":
    run_main(main)
