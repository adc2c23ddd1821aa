"""Stage 3: assemble the generated and interpolated strips into ``data/`` and write previews.

Layout (DESIGN.md): generated frame i is ``ROOT/{i}.png``; RIFE's frames between i and i+1 are
``ROOT/interp/{i}_{i+1}/img{0..4}.png`` (t = 0, .25, .5, .75, 1). ``data/{k:02d}.png`` lists
frame 0, its img1..img3, frame 1, ... so N generated frames give N + 3(N-1) data frames.
Names simply grow past 99 (``100.png``); every reader orders them numerically.
"""
import contextlib
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from utils.errors import UserError
from utils.images import natural_key, read_rgb, split_views, write_png
from utils.video import mp4_writer

NUM_VIEWS = 16
INTERP_STEPS = (1, 2, 3)  # img1..img3 (t = .25, .5, .75); img0/img4 repeat the generated frames
VIEW_FPS = 30
VIEW360_FPS = 8
CONTACT_ROWS = 4
CONTACT_TILE = 128  # contact-sheet cells are at most this many pixels wide
CONTACT_GAP = 2


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


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


def source_frames(root: str | os.PathLike, num_frames: int, interp: bool) -> list[Path]:
    """The strips that become ``data/`` frames 0, 1, ..., in order (paths; not checked)."""
    root = Path(root)
    sources = []
    for i in range(num_frames):
        sources.append(root / f"{i}.png")
        if interp and i < num_frames - 1:
            sources.extend(root / "interp" / f"{i}_{i + 1}" / f"img{j}.png" for j in INTERP_STEPS)
    return sources


def strip_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image, from its header only."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except FileNotFoundError:
        raise UserError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read image {path} ({err}); replace or regenerate it") from None


def check_strips(paths: list[Path], num_views: int = NUM_VIEWS) -> int:
    """Check every strip is (H, V*H) and all have the same size; return the view size H."""
    first = strip_size(paths[0])
    for path in paths:
        height, width = size = strip_size(path)
        if width != num_views * height:
            raise UserError(
                f"{path} is {width}x{height}; a {num_views}-view strip must be {num_views} x its height wide"
            )
        if size != first:
            raise UserError(
                f"{path} is {width}x{height} but {paths[0]} is {first[1]}x{first[0]}; all frames must have one size"
            )
    return first[0]


def assemble_frames(
    root: str | os.PathLike,
    num_frames: int,
    interp: bool,
    num_views: int = NUM_VIEWS,
    log: Callable[[str], None] = _warn,
) -> list[Path]:
    """Write ``root/data/{k:02d}.png`` from the generated (and interpolated) strips; return them in order.

    With ``interp`` but no ``root/interp`` folder the original falls back to the generated
    frames, and so do we (with a warning). Every input is checked before anything is written.
    Numbered frames left in ``data/`` by an earlier, longer run are removed so later stages
    do not pick them up.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"folder {root} does not exist; pass the generate.py output folder as --root_path")
    if num_frames < 1:
        raise UserError(f"--num_frames must be at least 1, got {num_frames}")
    if interp and not (root / "interp").is_dir():
        log(f"no interpolation frames ({root / 'interp'} is missing); assembling the {num_frames} generated frames only")
        interp = False
    sources = source_frames(root, num_frames, interp)
    for path in sources:
        if not path.is_file():
            fix = ("run generate.py for that frame or lower --num_frames" if path.parent == root
                   else "run frame_interpolation.py with --cycle2 for that pair")
            raise UserError(f"{path} is missing; {fix}")
    check_strips(sources, num_views)

    data_dir = root / "data"
    written = []
    for k, source in enumerate(sources):
        target = data_frame_path(data_dir, k)
        write_png(target, read_rgb(source))
        written.append(target)
    stale = [p for p in data_dir.glob("*.png") if p.stem.isdigit() and int(p.stem) >= len(written)]
    for path in stale:
        path.unlink()
    if stale:
        log(f"removed {len(stale)} numbered frames of an earlier run from {data_dir}")
    return written


def contact_rows(count: int, rows: int = CONTACT_ROWS) -> list[int]:
    """Up to ``rows`` evenly spaced frame indices of ``count``, first and last included."""
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, min(rows, count))})


def contact_sheet(frame_views: list[np.ndarray], tile: int = CONTACT_TILE, gap: int = CONTACT_GAP) -> np.ndarray:
    """Grid of (V,H,H,3) views per row -> (R*t + (R-1)*gap, V*t + (V-1)*gap, 3) uint8, t = min(H, tile)."""
    num_views, height = frame_views[0].shape[:2]
    cell = min(height, tile)
    rows, cols = len(frame_views), num_views
    sheet = np.full((rows * cell + (rows - 1) * gap, cols * cell + (cols - 1) * gap, 3), 128, np.uint8)
    for r, views in enumerate(frame_views):
        for v, view in enumerate(views):
            if cell != height:
                view = np.asarray(Image.fromarray(view).resize((cell, cell), Image.BOX))
            y, x = r * (cell + gap), v * (cell + gap)
            sheet[y:y + cell, x:x + cell] = view
    return sheet


def write_previews(
    root: str | os.PathLike,
    num_frames: int,
    num_views: int = NUM_VIEWS,
    fps: float = VIEW_FPS,
    fps_360: float = VIEW360_FPS,
) -> list[Path]:
    """Write ``root/preview/``: ``view_{v:02d}.mp4``, ``view360.mp4`` and ``contact_sheet.png``.

    * ``view_{v:02d}.mp4``: view v over every data frame, at ``fps``.
    * ``view360.mp4``: frame v shows view v of data frame ``v mod num_frames``, at ``fps_360``.
      As in the original, ``num_frames`` is the generated-frame count while the index runs over
      the assembled data frames (which include the interpolated ones).
    * ``contact_sheet.png``: up to 4 evenly spaced data frames (rows) x all views (columns).
    Data frames are read once and streamed into the 16 encoders; returns the written paths.
    """
    root = Path(root)
    frames = list_data_frames(root / "data")
    if not 1 <= num_frames <= len(frames):
        raise UserError(f"--num_frames {num_frames} does not fit the {len(frames)} frames in {root / 'data'}")
    check_strips(frames, num_views)
    preview_dir = root / "preview"
    view_paths = [preview_dir / f"view_{v:02d}.mp4" for v in range(num_views)]
    keep_360 = {v % num_frames for v in range(num_views)}
    keep_sheet = contact_rows(len(frames))
    kept = {}
    with contextlib.ExitStack() as stack:
        appends = [stack.enter_context(mp4_writer(path, fps)) for path in view_paths]
        for k, path in enumerate(frames):
            views = split_views(read_rgb(path), num_views)
            for append, view in zip(appends, views):
                append(view)
            if k in keep_360 or k in keep_sheet:
                kept[k] = views

    path_360 = preview_dir / "view360.mp4"
    with mp4_writer(path_360, fps_360) as append:
        for v in range(num_views):
            append(kept[v % num_frames][v])
    sheet_path = preview_dir / "contact_sheet.png"
    write_png(sheet_path, contact_sheet([kept[k] for k in keep_sheet]))
    return [*view_paths, path_360, sheet_path]
