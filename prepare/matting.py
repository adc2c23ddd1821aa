"""Choosing and running a matting method: frames in, RGBA frames out.

- ``background``: a still camera and a backdrop (``prepare.background``); no model.
- ``rembg``: a rembg ONNX model on the user's disk (``prepare.rembg_models``).
- ``alpha``: the input's own alpha channel, unchanged.
- ``none``: opaque frames, for footage that is already clean.
- ``auto``: ``alpha`` where the frames have transparent pixels, else ``background``.
Frames are (T,H,W,4) uint8 RGBA (alpha 255 where the source has none).
"""
from pathlib import Path

import cv2
import numpy as np

from prepare import background
from prepare.masks import disk, track_object, unit_radius
from prepare.rembg_models import RembgModel
from utils.errors import UserError

METHODS = ("auto", "background", "rembg", "alpha", "none")


def has_transparency(frames: np.ndarray) -> bool:
    """Whether any frame has a pixel that is not fully opaque."""
    return bool((frames[..., 3] < 255).any())


def resolve_method(method: str, frames: np.ndarray, source: Path) -> str:
    """``auto`` -> ``alpha`` or ``background``; ``alpha`` on opaque frames is a mistake."""
    if method == "auto":
        return "alpha" if has_transparency(frames) else "background"
    if method == "alpha" and not has_transparency(frames):
        raise UserError(f"--matting alpha keeps the input's alpha, but the frames of {source} are opaque; "
                        "use --matting background or rembg")
    return method


def keep_object(alpha: np.ndarray, radius: int) -> np.ndarray:
    """(T,H,W) uint8 alpha with everything but the tracked object (``track_object`` on alpha >= 128,
    grown by ``radius`` to keep its soft edge) set to 0: specks and far blobs go."""
    kept = track_object(alpha >= 128, 4 * radius)
    grown = np.stack([cv2.dilate(k.astype(np.uint8), disk(radius)).astype(bool) for k in kept])
    return np.where(grown, alpha, 0).astype(np.uint8)


def matte(frames: np.ndarray, samples: np.ndarray, method: str, background_model: str = "auto",
          refine: str = "none", model_path: str | Path | None = None, device: str = "cpu", log=print) -> np.ndarray:
    """(T,H,W,4) uint8 frames -> (T,H,W,4) uint8 RGBA with the object's alpha, by ``method`` (resolved).

    samples: (K,H,W,3) uint8 frames spread over the clip, for the ``median`` backdrop.
    """
    if method == "alpha":
        return frames
    if method == "none":
        return np.concatenate([frames[..., :3], np.full(frames.shape[:3] + (1,), 255, np.uint8)], axis=3)
    if method == "background":
        return background.matte(frames[..., :3], samples, background_model, refine, log)
    model = RembgModel(model_path, device, log)
    alpha = np.stack([model.alpha(np.ascontiguousarray(frame[..., :3])) for frame in frames])
    alpha = keep_object(alpha, unit_radius(*frames.shape[1:3]))
    return np.concatenate([frames[..., :3], alpha[..., None]], axis=3)
