"""Synthetic input videos: a textured blob that moves and deforms on a transparent background.

Tests and the demo use these instead of real data, so nothing outside the repo is needed.
Same seed, same frames (bit for bit). ``backdrop_video`` puts the blob in front of a backdrop,
as a camera would film it, and keeps its true mask: stage 0's matting is measured against it.

    python -m tools.synthetic data/synthetic --frames 16 --size 256 --seed 0
    python -m tools.synthetic clip.mp4 --frames 16 --size 128 --backdrop noisy
"""
import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image

from utils.cli import run_main
from utils.errors import UserError
from utils.images import write_png


def render_frame(t: float, size: int, rng_params: dict) -> np.ndarray:
    """(size,size,4) uint8 RGBA frame at phase ``t`` in [0,1)."""
    coords = (np.arange(size) + 0.5) / size
    y, x = np.meshgrid(coords, coords, indexing="ij")
    angle = 2 * math.pi * t
    cx = 0.5 + 0.12 * math.cos(angle + rng_params["phase"])
    cy = 0.5 + 0.08 * math.sin(2 * angle)
    # Deform: the radii breathe and the blob's outline wobbles with a few lobes.
    rx = 0.22 * (1 + 0.15 * math.sin(angle))
    ry = 0.28 * (1 - 0.12 * math.sin(angle))
    theta = np.arctan2(y - cy, x - cx)
    wobble = 1 + 0.08 * np.sin(rng_params["lobes"] * theta + 3 * angle)
    dist = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) / wobble
    # One-pixel soft edge, like a matted video.
    alpha = np.clip((1 - dist) * size * min(rx, ry), 0, 1)

    u, v = (x - cx) / rx, (y - cy) / ry
    stripes = 0.5 + 0.5 * np.sin(rng_params["freq"] * (u * math.cos(angle) + v * math.sin(angle)))
    checker = ((np.floor(u * 4 + 8) + np.floor(v * 4 + 8)) % 2).astype(np.float64)
    base, accent = rng_params["base"], rng_params["accent"]
    mix = (0.7 * stripes + 0.3 * checker)[..., None]
    rgb = base * (1 - mix) + accent * mix
    shade = np.clip(1.1 - 0.5 * dist, 0.4, 1.0)[..., None]
    rgba = np.concatenate([rgb * shade, alpha[..., None]], axis=-1)
    rgba[alpha <= 0, :3] = 0
    return np.round(rgba * 255).astype(np.uint8)


def _params(rng: np.random.Generator) -> dict:
    return {
        "phase": rng.uniform(0, 2 * math.pi),
        "lobes": int(rng.integers(3, 6)),
        "freq": rng.uniform(6, 12),
        "base": rng.uniform(0.2, 0.9, size=3),
        "accent": rng.uniform(0.2, 0.9, size=3),
    }


BACKDROPS = ("plain", "noisy", "textured")


def _backdrop(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H,W,3) float backdrop in [0,1]: a plain grey, or a smooth colour field (``textured``)."""
    if kind == "textured":
        coarse = rng.integers(40, 216, size=(4, 6, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC)) / 255.0
    return np.full((height, width, 3), 0.85)


def film(objects: np.ndarray, backdrop: str = "plain", noise: float = 4.0,
         rng: np.random.Generator | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T,H,W,4) uint8 RGBA object frames, filmed in front of a backdrop by a still camera.

    ``noisy`` adds Gaussian noise of ``noise`` grey levels to every frame (sensor noise) over the
    plain grey; ``textured`` is a smooth colour field. Returns (frames (T,H,W,3) uint8 RGB,
    masks (T,H,W) bool: the true object, alpha >= 0.5).
    """
    if backdrop not in BACKDROPS:
        raise UserError(f"--backdrop must be one of {', '.join(BACKDROPS)}, got {backdrop!r}")
    rng = np.random.default_rng(rng)
    back = _backdrop(backdrop, *objects.shape[1:3], rng)
    frames = []
    for rgba in objects.astype(np.float64) / 255:
        rgb = rgba[..., :3] * rgba[..., 3:] + back * (1 - rgba[..., 3:])
        if backdrop == "noisy":
            rgb = rgb + rng.normal(0, noise / 255, rgb.shape)
        frames.append(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    return np.stack(frames), objects[..., 3] >= 128


def backdrop_video(num_frames: int, height: int, width: int | None = None, backdrop: str = "plain",
                   noise: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The blob (``render_frame`` at ``height`` px) filmed in front of a backdrop (see ``film``).

    In a frame wider than ``height`` the blob also travels from the left edge to the right one.
    """
    width = width or height
    rng = np.random.default_rng(seed)
    params = _params(rng)
    objects = np.zeros((num_frames, height, width, 4), np.uint8)
    for i in range(num_frames):
        x = round((width - height) * i / max(num_frames - 1, 1))
        objects[i, :, x:x + height] = render_frame(i / num_frames, height, params)
    return film(objects, backdrop, noise, rng)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10) -> Path:
    """Write (T,H,W,3) uint8 frames as a video file (mp4, gif, ...; the format follows the suffix)."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, frames, fps=fps, macro_block_size=1)
    return path


def make_video(out_dir: str | Path, num_frames: int = 8, size: int = 256, seed: int = 0) -> list[Path]:
    """Write ``num_frames`` RGBA PNGs ``0.png, 1.png, ...`` into ``out_dir``; return their paths."""
    if num_frames < 1:
        raise UserError(f"--frames must be at least 1, got {num_frames}")
    if size < 16:
        raise UserError(f"--size must be at least 16 pixels, got {size}")
    params = _params(np.random.default_rng(seed))
    out_dir = Path(out_dir)
    paths = []
    for i in range(num_frames):
        path = out_dir / f"{i}.png"
        write_png(path, render_frame(i / num_frames, size, params))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to write 0.png, 1.png, ... into, or a video file "
                        "(.mp4, .gif, ...) of the blob in front of --backdrop")
    parser.add_argument("--frames", type=int, default=16, help="number of frames (default 16)")
    parser.add_argument("--size", type=int, default=256, help="frame width and height in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for shape, colours and motion (default 0)")
    parser.add_argument("--backdrop", choices=BACKDROPS, default="plain", help="video files only (default plain)")
    args = parser.parse_args()
    if Path(args.out_dir).suffix:
        frames, _ = backdrop_video(args.frames, args.size, backdrop=args.backdrop, seed=args.seed)
        write_video(args.out_dir, frames)
        print(f"wrote {args.frames} frames of {args.size}x{args.size} in front of a {args.backdrop} backdrop "
              f"to {args.out_dir}")
        return
    paths = make_video(args.out_dir, args.frames, args.size, args.seed)
    print(f"wrote {len(paths)} RGBA frames of {args.size}x{args.size} to {args.out_dir}")


if __name__ == "__main__":
    run_main(main)
