"""Image I/O shared by the stages: frame listing in numeric order, PNG read/write, view strips.

A *strip* is one frame's views side by side: (H, V*H, C) with V views of H x H pixels.
Every write is atomic (temp file in the same folder, then rename), so an interrupted run
never leaves a half-written PNG or JSON behind.
"""
import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from utils.errors import UserError

IMAGE_SUFFIXES = (".png",)


def natural_key(path: str | os.PathLike) -> list:
    """Sort key that orders ``2.png`` before ``10.png`` and ``99.png`` before ``100.png``."""
    name = Path(path).name
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def list_frames(folder: str | os.PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """PNG frames of ``folder`` in natural order; other files, hidden files (an interrupted write's
    temp file) and sub-folders are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"input folder {folder} does not exist; pass a folder of PNG frames")
    frames = sorted(
        (p for p in folder.iterdir()
         if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")),
        key=natural_key,
    )
    if not frames:
        raise UserError(f"no PNG frames in {folder}; put frames named 0.png, 1.png, ... there")
    return frames


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise UserError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read image {path} ({err}); replace or remove the file") from None
    return img


def read_rgba(path: str | os.PathLike) -> np.ndarray:
    """(H,W,4) uint8. Fails if the image has no alpha channel (frames need an object mask)."""
    img = _open(Path(path))
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if not has_alpha:
        raise UserError(
            f"{path} has no alpha channel (mode {img.mode}); frames must be RGBA PNGs whose alpha "
            "masks the object, as in the Consistent4D data (see data/README.md)"
        )
    return np.asarray(img.convert("RGBA"))


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H,W,3) uint8; an alpha channel, if any, is dropped (not composited)."""
    return np.asarray(_open(Path(path)).convert("RGB"))


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """(H,W) uint8 single-channel image (e.g. a confidence map)."""
    return np.asarray(_open(Path(path)).convert("L"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as err:
        raise UserError(f"cannot write to {path.parent} ({err.strerror}); choose a writable output folder") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a (H,W), (H,W,3) or (H,W,4) uint8 array as PNG, atomically."""
    if image.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8, got {image.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def write_json(path: str | os.PathLike, obj: object, indent: int = 4) -> None:
    """Write ``obj`` as JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent))


def split_views(strip: np.ndarray, num_views: int = 16) -> np.ndarray:
    """(H, V*H, C) strip -> (V, H, H, C) views. The view size is the strip's height."""
    height, width = strip.shape[:2]
    if width != num_views * height:
        raise UserError(
            f"a {num_views}-view strip must be {num_views} x its height wide; got {width} x {height}"
        )
    views = strip.reshape(height, num_views, height, *strip.shape[2:])
    return np.ascontiguousarray(np.moveaxis(views, 1, 0))


def join_views(views: np.ndarray) -> np.ndarray:
    """(V, H, W, C) views -> (H, V*W, C) strip."""
    return np.concatenate(list(views), axis=1)
