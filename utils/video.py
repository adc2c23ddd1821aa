"""MP4 previews through imageio's ffmpeg writer (imageio-ffmpeg ships the ffmpeg binary).

Frames are (H,W,3) uint8 RGB. Files are written atomically: ffmpeg writes a temp ``.mp4`` in
the same folder, which is renamed onto the target only once the video is complete.
"""
import contextlib
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from utils.errors import UserError
from utils.images import atomic_path

CODEC = "libx264"
# yuv420p needs even sizes; ffmpeg pads odd ones up by a pixel instead of imageio's default 16
MACRO_BLOCK_SIZE = 2


def _ffmpeg_writer(path: Path, fps: float):
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary; imageio's FFMPEG plugin needs it)
    except ImportError:
        raise UserError("writing mp4 previews needs imageio-ffmpeg; run `pip install imageio imageio-ffmpeg`") from None
    # quality=None leaves x264 at its default CRF 23, as moviepy (the original's writer) does
    return imageio.get_writer(
        path, format="FFMPEG", mode="I", fps=fps, codec=CODEC, quality=None,
        macro_block_size=MACRO_BLOCK_SIZE, ffmpeg_log_level="error",
    )


@contextlib.contextmanager
def mp4_writer(path: str | os.PathLike, fps: float) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield ``append(frame)`` for (H,W,3) uint8 frames; ``path`` appears only if the block succeeds."""
    with atomic_path(path) as tmp:
        writer = _ffmpeg_writer(tmp, fps)
        try:
            yield writer.append_data
        finally:
            writer.close()


def write_mp4(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> None:
    """Write (H,W,3) uint8 frames as an H.264 mp4 at ``fps``, atomically."""
    with mp4_writer(path, fps) as append:
        for frame in frames:
            append(frame)


def read_mp4(path: str | os.PathLike) -> np.ndarray:
    """Decode an mp4 to (T,H,W,3) uint8 RGB."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3) for buf in reader]
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)
