"""Read the converter's dataset (stage 5): global ``transforms_{train,test}.json``, RGB views and
confidence maps, as views with true cameras.

Layout (``recon_data/NAME``): ``{k:02d}/rgb-{v:02d}.png``, ``conf_ssim-{v:02d}.png``,
``conf_rgb-{v:02d}.png``; the JSON holds ``fl_x, fl_y, cx, cy`` (or ``camera_angle_x``) and per
entry ``file_path``, ``conf_ssim``, ``conf_rgb``, ``transform_matrix`` and ``time``.

The converter writes the original's ``transform_matrix`` = [[-R^T, -R^T t], [0, 0, 0, 1]] for the
world-to-camera [R|t] (a reflection: the translation is the camera centre, the rotation block is
negated). :func:`utils.cameras.c2w_from_original_transform` undoes it; cameras here are OpenCV
(x right, y down, z forward).
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from recon.rasterizer import Camera
from utils.cameras import c2w_from_original_transform
from utils.errors import UserError
from utils.images import read_rgb

CONFIDENCE_KEYS = {"ssim": "conf_ssim", "rgb": "conf_rgb"}
SCALE_FACTORS = (1, 2, 4, 8)  # --resolution values read as downscale factors, as in 3DGS
CAMERA_EXTENT_MARGIN = 1.1


@dataclass
class View:
    """One training or test image: ``image`` (H,W,3) in [0,1], ``confidence`` (H,W) in [0,1] or
    None, its ``camera``, ``time`` and ``name`` (the file path without suffix, e.g. ``00/rgb-05``)."""

    name: str
    image: Tensor
    confidence: Tensor | None
    camera: Camera
    time: float


@dataclass
class ReconDataset:
    root: Path
    train: list[View]
    test: list[View]
    width: int
    height: int

    @property
    def times(self) -> list[float]:
        """Sorted distinct training times."""
        return sorted({view.time for view in self.train})

    @property
    def held_out(self) -> list[bool]:
        """Per test view: whether no training view has its name, so that a score on it is a
        held-out score rather than a score on a view seen in training."""
        names = {view.name for view in self.train}
        return [view.name not in names for view in self.test]

    @property
    def extent(self) -> float:
        """Scene size for the densification thresholds: 1.1 x the largest camera distance from the
        cameras' mean centre (as 3DGS)."""
        centers = torch.stack([view.camera.center for view in self.train]).cpu()
        return CAMERA_EXTENT_MARGIN * float((centers - centers.mean(0)).norm(dim=-1).max())


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} does not exist; point --data at a dataset written by data_convertor.py")
    try:
        contents = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err}); rerun data_convertor.py") from None
    if not isinstance(contents, dict) or not isinstance(contents.get("frames"), list) or not contents["frames"]:
        raise UserError(f"{path} has no 'frames' list; rerun data_convertor.py")
    return contents


def _intrinsics(entry: dict, contents: dict, width: int, height: int, path: Path) -> np.ndarray:
    """(3,3) K from per-entry or file-level fl_x/fl_y/cx/cy, else camera_angle_x (centred)."""
    merged = {**contents, **entry}
    try:
        if all(k in merged for k in ("fl_x", "fl_y", "cx", "cy")):
            fx, fy, cx, cy = (float(merged[k]) for k in ("fl_x", "fl_y", "cx", "cy"))
        elif "camera_angle_x" in merged:
            fx = fy = 0.5 * width / math.tan(0.5 * float(merged["camera_angle_x"]))
            cx, cy = 0.5 * width, 0.5 * height
        else:
            raise KeyError("fl_x")
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path} lacks camera intrinsics (fl_x, fl_y, cx, cy); rerun data_convertor.py") from None
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])


def _w2c(entry: dict, path: Path) -> np.ndarray:
    try:
        matrix = np.asarray(entry["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: an entry has no numeric 'transform_matrix'; rerun data_convertor.py") from None
    if matrix.shape != (4, 4):
        raise UserError(f"{path}: 'transform_matrix' must be 4x4, got shape {matrix.shape}; rerun data_convertor.py")
    if np.linalg.det(matrix[:3, :3]) > 0:
        raise UserError(
            f"{path}: 'transform_matrix' has a proper rotation, but the converter's rotation block is -R^T "
            "(determinant -1); reconstruct.py reads data_convertor.py output"
        )
    return np.linalg.inv(c2w_from_original_transform(matrix))


def _resolve(root: Path, relative: str, what: str, json_path: Path) -> Path:
    path = root / relative
    if not path.suffix and not path.is_file():
        path = path.with_suffix(".png")
    if not path.is_file():
        raise UserError(f"{what} {path} (listed in {json_path}) does not exist; rerun data_convertor.py")
    return path


def _read_confidence(path: Path) -> np.ndarray:
    """(H,W) uint8. A colour image here means the converter ran without --confidence (it then
    copies the RGB view), which would silently weight the loss by the picture itself."""
    try:
        with Image.open(path) as img:
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read confidence map {path} ({err}); rerun video_confidence.py and data_convertor.py") from None
    if array.ndim == 3:
        if not (array[..., :3] == array[..., :1]).all():
            raise UserError(
                f"{path} is a colour image, not a confidence map (the dataset was converted without --confidence); "
                f"rerun data_convertor.py with --confidence, or pass --confidence none"
            )
        array = array[..., 0]
    return array


def scale_factor(resolution: int, width: int, height: int) -> int:
    """--resolution as in 3DGS: -1 native, 1/2/4/8 a downscale factor, any other value the
    training width in pixels, which must divide the native width (exact box downsampling)."""
    if resolution == -1:
        return 1
    if resolution <= 0:
        raise UserError(f"--resolution must be -1, a factor 1/2/4/8 or a width in pixels; got {resolution}")
    factor = resolution if resolution in SCALE_FACTORS else width // resolution
    if resolution not in SCALE_FACTORS and width % resolution != 0:
        raise UserError(f"--resolution {resolution} does not divide the image width {width}; use a divisor such as {width // 2} or {width // 4}")
    if factor == 0 or width % factor or height % factor:
        raise UserError(f"--resolution {resolution} does not divide the {width}x{height} images; use a factor 1, 2, 4 or 8 or a width that divides {width}")
    return factor


def _downsample(array: np.ndarray, factor: int, device: torch.device | str) -> Tensor:
    """uint8 (H,W[,C]) -> float (H/f,W/f[,C]) in [0,1], averaging f x f blocks."""
    tensor = torch.from_numpy(np.array(array)).to(device, torch.float32) / 255.0  # a writable copy
    if factor == 1:
        return tensor
    channels_last = tensor.ndim == 3
    x = tensor.permute(2, 0, 1) if channels_last else tensor[None]
    x = torch.nn.functional.avg_pool2d(x[None], factor)[0]
    return x.permute(1, 2, 0) if channels_last else x[0]


def _load_split(root: Path, name: str, confidence: str, resolution: int, device: torch.device | str) -> list[View]:
    json_path = root / f"transforms_{name}.json"
    contents = _load_json(json_path)
    views = []
    for entry in contents["frames"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("file_path"), str):
            raise UserError(f"{json_path}: an entry has no 'file_path'; rerun data_convertor.py")
        rgb = read_rgb(_resolve(root, entry["file_path"], "image", json_path))
        height, width = rgb.shape[:2]
        factor = scale_factor(resolution, width, height)
        conf = None
        if confidence != "none":
            key = CONFIDENCE_KEYS[confidence]
            if key not in entry:
                raise UserError(f"{json_path} lists no '{key}' confidence maps; rerun data_convertor.py with --confidence, or pass --confidence none")
            conf_path = _resolve(root, entry[key], "confidence map", json_path)
            conf = _read_confidence(conf_path)
            if conf.shape != (height, width):
                raise UserError(f"{conf_path} is {conf.shape[1]}x{conf.shape[0]}, its image is {width}x{height}; rerun data_convertor.py")
        K = _intrinsics(entry, contents, width, height, json_path)
        K[:2] /= factor
        camera = Camera(torch.from_numpy(_w2c(entry, json_path)), torch.from_numpy(K), width // factor, height // factor)
        try:
            time = float(entry.get("time", 0.0))
        except (TypeError, ValueError):
            raise UserError(f"{json_path}: 'time' of {entry['file_path']} is not a number; rerun data_convertor.py") from None
        views.append(View(
            name=str(Path(entry["file_path"]).with_suffix("")),
            image=_downsample(rgb, factor, device),
            confidence=None if conf is None else _downsample(conf, factor, device),
            camera=camera.to(device),
            time=time,
        ))
    sizes = {(v.camera.width, v.camera.height) for v in views}
    if len(sizes) > 1:
        raise UserError(f"{json_path} mixes image sizes {sorted(sizes)}; every view must have the same size")
    return views


def select_training_views(train: list[View], test: list[View], holdout: bool) -> list[View]:
    """The training views: with ``holdout``, those that are not test views, as long as every
    training time keeps at least one view (else all of them, and scores on the test views are
    scores on views seen in training). The converter lists every view in transforms_train.json,
    the test views (0, 5, 10, 15 of each frame) included."""
    if not holdout:
        return train
    test_names = {view.name for view in test}
    kept = [view for view in train if view.name not in test_names]
    if {view.time for view in kept} != {view.time for view in train}:
        return train
    return kept


def load_dataset(
    root: str | Path,
    confidence: str = "ssim",
    resolution: int = -1,
    holdout: bool = True,
    device: torch.device | str = "cpu",
) -> ReconDataset:
    """Load ``root`` (a data_convertor.py output). ``confidence`` in {ssim, rgb, none} picks the
    maps that weight the loss; ``holdout`` keeps the test views out of training where the data
    allow it (see :func:`select_training_views`; ``ReconDataset.held_out`` says what happened)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist; run data_convertor.py first (see run.sh)")
    if confidence not in ("none", *CONFIDENCE_KEYS):
        raise UserError(f"--confidence must be ssim, rgb or none; got '{confidence}'")
    train = _load_split(root, "train", confidence, resolution, device)
    test = _load_split(root, "test", "none", resolution, device)  # metrics are unweighted
    train = select_training_views(train, test, holdout)
    width, height = train[0].camera.width, train[0].camera.height
    if any((v.camera.width, v.camera.height) != (width, height) for v in test):
        raise UserError(f"{root}: test and training views differ in size; rerun data_convertor.py")
    return ReconDataset(root, train, test, width, height)
