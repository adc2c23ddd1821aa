"""Input preparation for stage 1: RGBA video frames -> model inputs, exactly as the original.

Per frame: crop to the alpha bounding box, scale so the longer side is ``crop_size`` (PIL bicubic,
which works in premultiplied alpha), paste centred on a transparent ``image_size`` square, composite
on white and map to [-1, 1]. ``crop_size=-1`` skips the crop: the whole frame is padded to a square
and resized to ``image_size``.

``crop_mode="shared_scale"`` (ours) uses one scale for every frame, set by the largest bounding box,
so the object keeps its size across frames instead of being blown up to ``crop_size`` in each.
"""
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from utils.errors import UserError
from utils.images import list_frames, read_rgb, read_rgba

CROP_MODES = ("per_frame", "shared_scale")


def select_frames(path: str | os.PathLike, frame_num: int) -> list[Path]:
    """The frames the original uses: a single file, or every (count // frame_num)-th frame in numeric order.

    The stride rounds down, so this can return more than ``frame_num`` frames (the caller truncates).
    """
    if frame_num < 1:
        raise UserError(f"--frame_num must be at least 1, got {frame_num}")
    path = Path(path)
    if path.suffix.lower() == ".png":
        if not path.is_file():
            raise UserError(f"input image {path} does not exist; pass a PNG frame or a folder of frames")
        return [path]
    frames = list_frames(path)
    return frames[::max(len(frames) // frame_num, 1)]


def read_frame(path: Path, need_alpha: bool) -> Image.Image:
    """The frame as a PIL RGBA image; without an alpha channel it is opaque, unless alpha is needed."""
    try:
        return Image.fromarray(read_rgba(path), "RGBA")
    except UserError:
        if need_alpha:
            raise
    rgb = read_rgb(path)
    return Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), "RGBA")


def alpha_bbox(image: Image.Image, path: Path) -> tuple[int, int, int, int]:
    """(min_x, min_y, max_x, max_y) of the pixels with alpha > 0.

    Like the original, the box is given to PIL's crop as is, so the last row and column are left out.
    A one-pixel-wide object keeps one pixel (the original crashed on an empty crop).
    """
    ys, xs = np.nonzero(np.asarray(image)[:, :, 3])
    if len(xs) == 0:
        raise UserError(f"{path} is fully transparent; the alpha channel must mask the object "
                        "(or pass --crop_size -1 to use whole frames)")
    min_x, min_y, max_x, max_y = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    return min_x, min_y, max(max_x, min_x + 1), max(max_y, min_y + 1)


def scale_image(image: Image.Image, scale: float) -> Image.Image:
    """Resize by ``scale`` with int() truncation of the new size, PIL bicubic (the original's rounding)."""
    width, height = max(int(scale * image.width), 1), max(int(scale * image.height), 1)
    return image.resize((width, height), resample=Image.BICUBIC)


def pad_centred(image: Image.Image, size: int) -> Image.Image:
    """Paste ``image`` at ((size - w) // 2, (size - h) // 2) on a transparent-black size x size canvas."""
    canvas = Image.new(image.mode, (size, size), 0)
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas


def to_model_input(image: Image.Image) -> np.ndarray:
    """RGBA image -> (H,W,3) float32 in [-1,1], composited on white (rgb * a + 1 - a)."""
    rgba = np.asarray(image).astype(np.float32) / 255.0
    alpha = rgba[:, :, 3:]
    rgb = rgba[:, :, :3] * alpha + 1 - alpha
    return rgb * 2.0 - 1.0


def prepare_frames(files: Sequence[Path], elevation: float, crop_size: int = -1, image_size: int = 256,
                   crop_mode: str = "per_frame") -> dict[str, torch.Tensor]:
    """Prepare the given frames. Returns {input_image (F,S,S,3) float32 in [-1,1], input_elevation (F,1) rad}.

    elevation: input view elevation in degrees; crop_size: longer side of the object in pixels, or -1
    for no crop; image_size: S; crop_mode: "per_frame" (the original) or "shared_scale".
    """
    if crop_mode not in CROP_MODES:
        raise UserError(f"--crop_mode must be one of {', '.join(CROP_MODES)}, got {crop_mode!r}")
    if crop_size != -1 and not 1 <= crop_size <= image_size:
        raise UserError(f"--crop_size must be -1 (no crop) or 1..{image_size} (the model's image size), "
                        f"got {crop_size}")
    images = [read_frame(f, need_alpha=crop_size != -1) for f in files]
    if crop_size == -1:
        prepared = [pad_centred(im, max(im.width, im.height)).resize((image_size, image_size),
                                                                     resample=Image.BICUBIC)
                    for im in images]
    else:
        crops = [im.crop(alpha_bbox(im, f)) for im, f in zip(images, files)]
        if crop_mode == "shared_scale":
            largest = max(max(c.width, c.height) for c in crops)
            scales = [crop_size / largest] * len(crops)
        else:
            scales = [crop_size / max(c.width, c.height) for c in crops]
        prepared = [pad_centred(scale_image(c, s), image_size) for c, s in zip(crops, scales)]

    input_image = torch.from_numpy(np.stack([to_model_input(im) for im in prepared]))
    radians = np.asarray([np.deg2rad(elevation)], np.float32)
    input_elevation = torch.from_numpy(radians).unsqueeze(0).repeat(len(files), 1)
    return {"input_image": input_image, "input_elevation": input_elevation}


def prepare_inputs(path: str | os.PathLike, elevation: float, crop_size: int = -1, image_size: int = 256,
                   frame_num: int = 16, crop_mode: str = "per_frame") -> dict[str, torch.Tensor]:
    """The original's prepare_inputs: select_frames then prepare_frames (see both)."""
    return prepare_frames(select_frames(path, frame_num), elevation, crop_size, image_size, crop_mode)
