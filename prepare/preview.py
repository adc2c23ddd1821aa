"""The contact sheet: a few RGBA frames over a checkerboard, so the matte can be judged at a glance.

Frames flagged by ``prepare.report`` get a red frame. The sheet goes to ``preview/`` under the
output: every frame reader takes each PNG directly in ``data/NAME/`` for a frame.
"""
import numpy as np
from PIL import Image, ImageDraw

SHEET_FRAMES = 8  # evenly spaced frames shown (first and last included), plus every flagged one
COLUMNS = 4
TILE_HEIGHT = 160  # tiles are scaled down to at most this height
GAP = 4
SQUARE = 8  # checkerboard square, pixels
LIGHT, DARK, FLAGGED = 204, 153, (220, 30, 30)


def sheet_frames(count: int, flagged: list[int]) -> list[int]:
    """Up to ``SHEET_FRAMES`` evenly spaced indices of ``count`` (first and last included) and the flagged ones."""
    even = {int(round(x)) for x in np.linspace(0, count - 1, min(SHEET_FRAMES, count))}
    return sorted(even | set(flagged))


def on_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """(H,W,4) uint8 -> (H,W,3) uint8: composited over a grey checkerboard (transparency shows)."""
    height, width = rgba.shape[:2]
    ys, xs = np.mgrid[:height, :width]
    board = np.where(((ys // SQUARE + xs // SQUARE) % 2 == 0), LIGHT, DARK).astype(np.float32)[..., None]
    alpha = rgba[..., 3:].astype(np.float32) / 255
    return np.round(rgba[..., :3] * alpha + board * (1 - alpha)).astype(np.uint8)


def contact_sheet(frames: np.ndarray, flagged: list[int]) -> np.ndarray:
    """(T,H,W,4) uint8 frames -> (rows, cols) grid of labelled tiles as one (h,w,3) uint8 image."""
    chosen = sheet_frames(len(frames), flagged)
    height, width = frames.shape[1:3]
    scale = min(1.0, TILE_HEIGHT / height)
    tile_w, tile_h = max(1, round(width * scale)), max(1, round(height * scale))
    cols = min(COLUMNS, len(chosen))
    rows = -(-len(chosen) // cols)
    sheet = Image.new("RGB", (cols * tile_w + (cols + 1) * GAP, rows * tile_h + (rows + 1) * GAP), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for n, i in enumerate(chosen):
        x, y = GAP + (n % cols) * (tile_w + GAP), GAP + (n // cols) * (tile_h + GAP)
        tile = Image.fromarray(frames[i], "RGBA").resize((tile_w, tile_h), Image.LANCZOS)
        sheet.paste(Image.fromarray(on_checkerboard(np.asarray(tile))), (x, y))
        if i in flagged:
            draw.rectangle((x - 2, y - 2, x + tile_w + 1, y + tile_h + 1), outline=FLAGGED, width=2)
        draw.text((x + 3, y + 2), str(i), fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
    return np.asarray(sheet)
