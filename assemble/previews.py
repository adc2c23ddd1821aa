"""Stage 3's previews of the assembled ``data/``: one mp4 per view, a 360-degree turn, a contact sheet."""
import contextlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from utils.errors import UserError
from utils.images import read_rgb, split_views, write_png
from utils.strips import NUM_VIEWS, check_strip_files, list_data_frames
from utils.video import mp4_writer

VIEW_FPS = 30
VIEW360_FPS = 8
CONTACT_ROWS = 4
CONTACT_TILE = 128  # contact-sheet cells are at most this many pixels wide
CONTACT_GAP = 2


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
    check_strip_files(frames, num_views)
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
