"""Stage 5: turn the assembled ``data/`` strips into a 4DGS dataset (NeRF-synthetic style JSON).

For each data frame k (folder name ``{k:02d}``, wider past 99) and view v it writes
``OUT/{k:02d}/rgb-{v:02d}.png``, ``conf_ssim-{v:02d}.png`` and ``conf_rgb-{v:02d}.png``, the
frame's ``transforms_train.json`` (all views) and ``transforms_test.json`` (every fifth view:
0, 5, 10, 15), then the merged ``OUT/transforms_{train,test}.json`` whose entries also carry
``time = k / 30``. Keys, key order, entry order, paths and indentation follow the original
converter, whose ``transform_matrix`` is [[-R^T, -R^T t], [0, 0, 0, 1]] (see
:func:`utils.cameras.original_transform_matrix`).

Deliberate differences from the original:
* frames are the numbered PNGs in ``data/`` (the original takes "entries in data/ minus 1", which
  drops the last frame when there is no ``conf_map/`` folder);
* the merged files hold exactly the frames converted in this run, in numeric order (the original
  merges every folder in OUT, sorted as strings, so ``100`` comes before ``11``);
* the merged test split's ``[INFO]`` line gives its real size (the original prints a fifth of it);
* the view size is read from the strip height and K is scaled with it (the original fixes 256).
"""
import os
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from utils.cameras import original_transform_matrix, syncdreamer_cameras
from utils.errors import UserError
from utils.images import read_gray, read_rgb, split_views, write_json, write_png
from utils.strips import NUM_VIEWS, check_strip_files, list_data_frames, strip_size

FPS = 30
TEST_VIEW_STEP = 5
JSON_INDENT = 2  # the original's json.dump(..., indent=2)


def conf_map_paths(data_dir: Path, k: int) -> tuple[Path, Path]:
    """Stage 4's ``conf_map/{k:02d}_ssim.png`` and ``{k:02d}_rgb.png`` for data frame k."""
    return data_dir / "conf_map" / f"{k:02d}_ssim.png", data_dir / "conf_map" / f"{k:02d}_rgb.png"


def camera_matrices(num_views: int, image_size: int) -> tuple[np.ndarray, list[list[list[float]]]]:
    """K (3,3) for ``image_size`` px views and the V original-convention (4,4) transform matrices as lists."""
    cameras = syncdreamer_cameras(num_views, image_size=image_size)
    return cameras["K"], [original_transform_matrix(pose).tolist() for pose in cameras["poses"]]


def transforms(K: np.ndarray, frames: list[dict]) -> dict:
    """One transforms JSON object, keys in the original's order."""
    return {
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "frames": frames,
    }


def frame_entries(frame_name: str, matrices: list) -> list[dict]:
    """The per-view entries of one frame folder, in view order."""
    return [
        {
            "file_path": f"{frame_name}/rgb-{v:02d}.png",
            "conf_ssim": f"{frame_name}/conf_ssim-{v:02d}.png",
            "conf_rgb": f"{frame_name}/conf_rgb-{v:02d}.png",
            "transform_matrix": matrix,
        }
        for v, matrix in enumerate(matrices)
    ]


def write_transforms(path: Path, K: np.ndarray, frames: list[dict], log: Callable[[str], None]) -> None:
    write_json(path, transforms(K, frames), indent=JSON_INDENT)
    log(f"[INFO] write {len(frames)} images to {path}")


def check_inputs(data_dir: Path, frames: list[Path], confidence: bool, num_views: int) -> int:
    """Check strips (and confidence maps) before anything is written; return the view size."""
    view_size = check_strip_files(frames, num_views)
    if confidence:
        for k, frame in enumerate(frames):
            for conf in conf_map_paths(data_dir, k):
                if not conf.is_file():
                    raise UserError(f"{conf} is missing; run video_confidence.py first, or drop --confidence")
                if strip_size(conf) != (view_size, num_views * view_size):
                    raise UserError(f"{conf} is not the size of {frame}; rerun video_confidence.py")
    return view_size


def convert_dataset(
    input_root: str | os.PathLike,
    output: str | os.PathLike,
    confidence: bool,
    num_views: int = NUM_VIEWS,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Convert ``input_root/data`` into the dataset at ``output``; return the frame folders written.

    Without ``confidence`` the conf PNGs are copies of the RGB view, as in the original.
    Every input is checked before anything is written.
    """
    input_root, output = Path(input_root), Path(output)
    data_dir = input_root / "data"
    frames = list_data_frames(data_dir)
    view_size = check_inputs(data_dir, frames, confidence, num_views)
    K, matrices = camera_matrices(num_views, view_size)

    train_all, test_all, frame_dirs = [], [], []
    for k, frame in enumerate(tqdm(frames, desc="convert", disable=None)):
        name = f"{k:02d}"
        frame_dir = output / name
        rgb = split_views(read_rgb(frame), num_views)
        if confidence:
            ssim_path, rgb_conf_path = conf_map_paths(data_dir, k)
            conf_ssim = split_views(read_gray(ssim_path), num_views)
            conf_rgb = split_views(read_gray(rgb_conf_path), num_views)
        else:
            conf_ssim = conf_rgb = rgb
        for v in range(num_views):
            write_png(frame_dir / f"rgb-{v:02d}.png", rgb[v])
            write_png(frame_dir / f"conf_ssim-{v:02d}.png", conf_ssim[v])
            write_png(frame_dir / f"conf_rgb-{v:02d}.png", conf_rgb[v])

        entries = frame_entries(name, matrices)
        write_transforms(frame_dir / "transforms_train.json", K, entries, log)
        write_transforms(frame_dir / "transforms_test.json", K, entries[::TEST_VIEW_STEP], log)
        train_all += [{**entry, "time": k / FPS} for entry in entries]
        test_all += [{**entry, "time": k / FPS} for entry in entries[::TEST_VIEW_STEP]]
        frame_dirs.append(frame_dir)

    write_transforms(output / "transforms_train.json", K, train_all, log)
    write_transforms(output / "transforms_test.json", K, test_all, log)
    return frame_dirs
