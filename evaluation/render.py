"""Render reconstruct.py outputs into the evaluation layout, at the protocol's four views.

World and cameras: a reconstruction lives in SyncDreamer's frame (z up, the input view at azimuth
0 and elevation ``input_elevation``, the object near the origin; the rig sits at radius 1.5 with
f = 280 at 256 px). Protocol view v is a camera at azimuth ``VIEW_AZIMUTHS_DEG[v]`` and the input
view's elevation, looking at the origin from the ground truth's distance with its field of view
(``--gt_distance``, ``--gt_fovy``; the defaults are Consistent4D's evaluation camera).

``align="alpha_box"`` then moves and scales each view's renders (one similarity for all frames of
the view, so the motion is kept) so the union of their alpha boxes matches the ground truth's,
where an object is its pixels that are not (nearly) white on both sides. Papers use this when the
two cameras' object scales differ; the details file records which alignment was used.

Frames: ground-truth frame j of F is rendered at time t0 + (t_end - t0) * j / (F - 1) of the
reconstruction's frame times, so 16 generated frames and their 61 interpolated data frames both
cover the same clip.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from evaluation.layout import list_objects, read_image, view_dir
from evaluation.protocol import GT_DISTANCE, GT_FOVY_DEG, NUM_VIEWS, VIEW_AZIMUTHS_DEG, VIEW_ELEVATION_DEG
from recon.backends import select_rasterizer
from recon.gaussians import Gaussians4D
from recon.rasterizer import Camera, Rasterizer
from recon.render import render_gaussians, to_uint8
from recon.trainer import CHECKPOINT_NAME, load_checkpoint
from utils.cameras import look_at_w2c
from utils.errors import UserError
from utils.images import list_frames, write_json, write_png

ALIGNMENTS = ("camera", "alpha_box")
WHITE_THRESHOLD = 230  # a pixel with every channel above this is background (faint haze is not object)


@dataclass(frozen=True)
class CameraSettings:
    distance: float = GT_DISTANCE
    fovy_deg: float = GT_FOVY_DEG
    input_elevation_deg: float = 0.0
    align: str = "camera"


def protocol_camera(azimuth_deg: float, settings: CameraSettings, size: int) -> Camera:
    """The camera of one protocol view for a ``size`` x ``size`` image (float32, CPU)."""
    azimuth = math.radians(azimuth_deg)
    elevation = math.radians(settings.input_elevation_deg + VIEW_ELEVATION_DEG)
    center = settings.distance * np.array([math.cos(elevation) * math.cos(azimuth),
                                           math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3] = torch.from_numpy(look_at_w2c(center))
    focal = size / 2 / math.tan(math.radians(settings.fovy_deg) / 2)
    K = torch.tensor([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], dtype=torch.float64)
    return Camera(w2c, K, size, size).to("cpu")


def recon_times(recon_dir: Path, state: dict) -> list[float]:
    """The reconstruction's frame times: stored in its checkpoint, or (in checkpoints written before
    they were) read from the dataset its ``config.json`` names."""
    if "frame_times" in state:
        return [float(t) for t in state["frame_times"]]
    config_path = recon_dir / "config.json"
    if not config_path.is_file():
        raise UserError(f"{recon_dir} has no config.json; pass a folder written by reconstruct.py")
    data = Path(json.loads(config_path.read_text())["data"])
    transforms = data / "transforms_train.json"
    if not transforms.is_file():
        raise UserError(f"{config_path} names the dataset {data}, which has no transforms_train.json; "
                        "run evaluate.py from the folder reconstruct.py ran in, or restore that dataset")
    frames = json.loads(transforms.read_text())["frames"]
    return sorted({float(f["time"]) for f in frames})


def frame_times(times: list[float], count: int) -> list[float]:
    """``count`` evenly spaced times from the first to the last of ``times``."""
    if count == 1:
        return [times[0]]
    return [times[0] + (times[-1] - times[0]) * j / (count - 1) for j in range(count)]


def alpha_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """(H,W) bool -> (x0, y0, x1, y1) pixel-edge box of the True pixels, or None."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def _union(boxes: list) -> tuple[float, float, float, float] | None:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def object_mask(image: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 over white -> (H,W) bool: the object's pixels, those not (nearly) white. One rule
    for both sides, so the boxes compare like with like (RGBA ground truth is composited first)."""
    return (image <= WHITE_THRESHOLD).any(axis=-1)


def align_to_box(images: list[np.ndarray], alphas: list[np.ndarray], source, target) -> list[np.ndarray]:
    """Move and scale (H,W,3) uint8 renders over white so box ``source`` lands on box ``target``
    (uniform scale from the larger side, centres matched)."""
    scale = max(target[2] - target[0], target[3] - target[1]) / max(source[2] - source[0], source[3] - source[1])
    src_c = ((source[0] + source[2]) / 2, (source[1] + source[3]) / 2)
    dst_c = ((target[0] + target[2]) / 2, (target[1] + target[3]) / 2)
    # PIL's affine maps output (x, y) to input (a x + b y + c, d x + e y + f).
    coeffs = (1 / scale, 0, src_c[0] - dst_c[0] / scale, 0, 1 / scale, src_c[1] - dst_c[1] / scale)
    out = []
    for image, alpha in zip(images, alphas):
        rgba = np.dstack([image, (alpha * 255).round().astype(np.uint8)])
        moved = np.asarray(Image.fromarray(rgba).transform(rgba.shape[1::-1], Image.AFFINE, coeffs, Image.BICUBIC))
        a = moved[..., 3:].astype(np.float64) / 255
        out.append(np.round(moved[..., :3] * a + 255 * (1 - a)).astype(np.uint8))
    return out


@torch.no_grad()
def render_view(gaussians: Gaussians4D, camera: Camera, times: list[float], rasterizer: Rasterizer,
                min_marginal: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(H,W,3) uint8 renders over white and (H,W) float alphas at each time."""
    background = torch.ones(3, device=gaussians.device)
    camera = camera.to(gaussians.device)
    images, alphas = [], []
    for t in times:
        out, _ = render_gaussians(gaussians, camera, t, rasterizer, background, min_marginal)
        images.append(to_uint8(out.image))
        alphas.append(out.alpha.clamp(0, 1).cpu().numpy())
    return images, alphas


def render_recon(recon_dir: str | Path, gt_root: str | Path, render_root: str | Path, settings: CameraSettings,
                 device: torch.device, rasterizer: str = "auto", log: Callable[[str], None] = print) -> str:
    """Render ``recon_dir`` (object name = its folder name) as ``render_root/<name>/eval_v/{frame}.png``
    for the ground truth's frames and image size; return the object name."""
    recon_dir, gt_root, render_root = Path(recon_dir), Path(gt_root), Path(render_root)
    name = recon_dir.name
    if name not in list_objects(gt_root, "ground-truth"):
        raise UserError(f"--recon {recon_dir}: the ground truth {gt_root} has no object {name}; "
                        "name the reconstruction folder after its ground-truth object")
    if settings.align not in ALIGNMENTS:
        raise UserError(f"--align {settings.align}: choose {' or '.join(ALIGNMENTS)}")
    checkpoint = recon_dir / CHECKPOINT_NAME
    state = load_checkpoint(checkpoint)
    times = recon_times(recon_dir, state)
    frame_counts = [len(list_frames(view_dir(gt_root, name, v))) for v in range(NUM_VIEWS)]
    record = {
        "recon": str(recon_dir), "checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns, "iteration": state["iteration"],
        "frame_times": [frame_times(times, count) for count in frame_counts], "azimuths_deg": list(VIEW_AZIMUTHS_DEG),
        "elevation_deg": settings.input_elevation_deg + VIEW_ELEVATION_DEG, "distance": settings.distance,
        "fovy_deg": settings.fovy_deg, "align": settings.align,
    }
    record_path = render_root / name / "render.json"
    if record_path.is_file() and json.loads(record_path.read_text()) == record:
        log(f"{render_root / name}: already rendered from {checkpoint} with these settings")
        return name
    gaussians = Gaussians4D.from_state_dict(state["gaussians"], device)
    min_marginal = state.get("config", {}).get("min_marginal", 0.05)
    raster = select_rasterizer(rasterizer, device, warn=log)
    for view, azimuth in enumerate(VIEW_AZIMUTHS_DEG[:NUM_VIEWS]):
        gt_frames = list_frames(view_dir(gt_root, name, view))
        size = read_image(gt_frames[0]).shape[0]
        images, alphas = render_view(gaussians, protocol_camera(azimuth, settings, size),
                                     record["frame_times"][view], raster, min_marginal)
        if settings.align == "alpha_box":
            source = _union([alpha_box(object_mask(image)) for image in images])
            target = _union([alpha_box(object_mask(read_image(p))) for p in gt_frames])
            if source is not None and target is not None:
                images = align_to_box(images, alphas, source, target)
        for path, image in zip(gt_frames, images):
            write_png(view_dir(render_root, name, view) / f"{path.stem}.png", image)
    write_json(record_path, record)
    log(f"rendered {recon_dir} at the 4 protocol views ({settings.align} alignment) -> {render_root / name}")
    return name
