"""The official evaluation layout, ``ROOT/<object>/eval_{v}/{frame}.png``, and how its images are read.

Ground truth and prediction are paired object by object, view by view and frame by frame; any
hole in the pairing is a one-line error naming the folder, because a silently skipped frame
changes the score.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evaluation.protocol import IMAGE_SIZE, NUM_VIEWS
from utils.errors import UserError
from utils.images import list_frames, natural_key

WHITE = 255.0


def view_dir(root: Path, obj: str, view: int) -> Path:
    return Path(root) / obj / f"eval_{view}"


@dataclass(frozen=True)
class ViewPair:
    """One view of one object: ``frames`` names (e.g. "0"), ``gt`` and ``pred`` paths in frame order."""

    view: int
    frames: tuple[str, ...]
    gt: tuple[Path, ...]
    pred: tuple[Path, ...]


@dataclass(frozen=True)
class ObjectPair:
    name: str
    views: tuple[ViewPair, ...]


def list_objects(root: str | Path, what: str) -> list[str]:
    """Object folders of ``root`` (those holding ``eval_0``), in natural order."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{what} folder {root} does not exist; pass ROOT with ROOT/<object>/eval_0/0.png ...")
    objects = sorted((p.name for p in root.iterdir() if (p / "eval_0").is_dir()), key=natural_key)
    if not objects:
        raise UserError(f"{what} folder {root} holds no object folders with eval_0/; "
                        "the layout is ROOT/<object>/eval_{0..3}/{frame}.png")
    return objects


def _frames(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"missing view folder {folder}; every object needs eval_0 ... eval_{NUM_VIEWS - 1}")
    return list_frames(folder)


def pair_view(gt_root: Path, pred_root: Path, obj: str, view: int) -> ViewPair:
    """Pair the frames of one view by name; both sides must hold the same frames."""
    gt_dir, pred_dir = view_dir(gt_root, obj, view), view_dir(pred_root, obj, view)
    gt, pred = _frames(gt_dir), _frames(pred_dir)
    gt_names, pred_names = [p.stem for p in gt], [p.stem for p in pred]
    if gt_names != pred_names:
        missing = sorted(set(gt_names) - set(pred_names), key=natural_key)
        extra = sorted(set(pred_names) - set(gt_names), key=natural_key)
        detail = (f"missing {', '.join(missing[:5])}" if missing else f"extra {', '.join(extra[:5])}") if missing or extra else "different order"
        raise UserError(f"{pred_dir} has {len(pred)} frames and {gt_dir} has {len(gt)} ({detail}); "
                        "the prediction needs exactly the ground truth's frames")
    return ViewPair(view, tuple(gt_names), tuple(gt), tuple(pred))


def pair_layout(gt_root: str | Path, pred_root: str | Path, objects: list[str] | None = None,
                num_views: int = NUM_VIEWS) -> list[ObjectPair]:
    """Every (object, view, frame) of the ground truth paired with the prediction's.

    ``objects`` restricts the evaluation to those names (default: every ground-truth object)."""
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    available = list_objects(gt_root, "ground-truth")
    if objects:
        unknown = [o for o in objects if o not in available]
        if unknown:
            raise UserError(f"object {unknown[0]} is not in {gt_root} (it has {', '.join(available)})")
        available = list(objects)
    predicted = set(list_objects(pred_root, "prediction"))
    pairs = []
    for obj in available:
        if obj not in predicted:
            raise UserError(f"{pred_root} has no folder {obj}/ for ground-truth object {obj}; "
                            "render it or pass --objects without it")
        pairs.append(ObjectPair(obj, tuple(pair_view(gt_root, pred_root, obj, v) for v in range(num_views))))
    return pairs


def composite_on_white(image: np.ndarray) -> np.ndarray:
    """(H,W,3|4) uint8 -> (H,W,3) uint8: RGBA blended over white, rounded; RGB unchanged."""
    if image.shape[-1] == 3:
        return image
    alpha = image[..., 3:].astype(np.float64) / 255.0
    rgb = image[..., :3].astype(np.float64) * alpha + WHITE * (1.0 - alpha)
    return np.round(rgb).astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """(H,W,3) uint8: the file composited on white (the protocol's background)."""
    try:
        with Image.open(path) as img:
            rgba = np.asarray(img.convert("RGBA") if img.mode in ("RGBA", "LA", "PA", "P") else img.convert("RGB"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read image {path} ({err}); replace or remove the file") from None
    return composite_on_white(rgba)


def resize(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """(H,W,3) uint8 -> (size,size,3) uint8, bicubic (PIL's ``Image.resize`` default, as the official script)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def load_view(paths: tuple[Path, ...], size: int = IMAGE_SIZE) -> np.ndarray:
    """(T,size,size,3) uint8 frames of one view, composited on white and resized."""
    return np.stack([resize(read_image(p), size) for p in paths])
