"""The 16-view strips between stages: the numbered ``data/`` frames and their sizes.

A strip is one frame with its V views side by side, (H, V*H). Stages 3, 4 and 5 read and check them
the same way, so the checks live here.
"""
import os
from pathlib import Path
from typing import Sequence

from PIL import Image, UnidentifiedImageError

from utils.errors import UserError
from utils.images import natural_key

NUM_VIEWS = 16


def data_frame_path(data_dir: str | os.PathLike, k: int) -> Path:
    """``data_dir/{k:02d}.png``: two digits, wider past 99."""
    return Path(data_dir) / f"{k:02d}.png"


def list_data_frames(data_dir: str | os.PathLike) -> list[Path]:
    """The numbered frames ``00.png, 01.png, ...`` of a ``data/`` folder in numeric order.

    Other files and sub-folders (``conf_map/``) are ignored. Fails unless the numbers run 0..K-1.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} does not exist; run concat_video.py on its parent first")
    frames = sorted(
        (p for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() == ".png" and p.stem.isdigit()),
        key=natural_key,
    )
    if not frames:
        raise UserError(f"no numbered frames (00.png, 01.png, ...) in {data_dir}; run concat_video.py first")
    for k, path in enumerate(frames):
        if int(path.stem) != k:
            raise UserError(
                f"frame {data_frame_path(data_dir, k).name} is missing from {data_dir} (next is {path.name}); "
                "rerun concat_video.py"
            )
    return frames


def strip_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image, from its header only."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except FileNotFoundError:
        raise UserError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read image {path} ({err}); replace or regenerate it") from None


def check_strip_sizes(sizes: Sequence[tuple[int, int]], names: Sequence[object], num_views: int = NUM_VIEWS) -> int:
    """UserError unless every (height, width) is a V-view strip of the first one's size; return the view size H."""
    first = tuple(sizes[0])
    for name, size in zip(names, sizes):
        height, width = size
        if width != num_views * height:
            raise UserError(f"{name} is {width}x{height}; a {num_views}-view strip must be {num_views} x its "
                            f"height wide ({num_views * height}x{height})")
        if tuple(size) != first:
            raise UserError(f"{name} is {width}x{height} but {names[0]} is {first[1]}x{first[0]}; "
                            "all frames must have one size")
    return first[0]


def check_strip_files(paths: Sequence[Path], num_views: int = NUM_VIEWS) -> int:
    """``check_strip_sizes`` from the files' headers (nothing is decoded); return the view size H."""
    return check_strip_sizes([strip_size(p) for p in paths], paths, num_views)
