"""Reading the user's video and choosing its frames.

A *source* is a video file (mp4, mov, webm, mkv, avi through imageio-ffmpeg; gif through Pillow)
or a folder of PNG/JPG frames in numeric order. Frames come out as (H,W,4) uint8 RGBA; a source
without an alpha channel gets alpha 255. Positions on the timeline (``--start``/``--end``) are
frame indices (``40``) or seconds (``1.5s``); a folder of frames has no clock, so only indices.
A GIF's frames are taken as evenly spaced at its mean frame duration (GIF writers merge repeated
frames into one longer one, so a clip that pauses is timed approximately).
"""
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from utils.errors import UserError
from utils.images import list_frames, read_rgb, read_rgba

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
GIF_DEFAULT_FPS = 10.0  # a GIF frame without a duration is shown for 100 ms by browsers
_POSITION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(s?)$")


@dataclass(frozen=True)
class Source:
    """A readable video: ``num_frames`` frames, ``fps`` (None for a folder of frames)."""

    path: Path
    kind: str  # "video", "gif" or "folder"
    num_frames: int
    fps: float | None
    files: tuple[Path, ...] = ()  # a folder's frames, in order


@dataclass(frozen=True)
class Position:
    """A point on the timeline: ``value`` seconds if ``seconds`` else a frame index."""

    value: float
    seconds: bool

    def __str__(self) -> str:
        return f"{self.value:g} s" if self.seconds else f"frame {int(self.value)}"


def parse_position(text: str | None, flag: str) -> Position | None:
    """``"40"`` -> frame 40, ``"1.5s"`` -> 1.5 seconds, None -> None; ``flag`` names it in the error."""
    if text is None:
        return None
    match = _POSITION.match(text.strip())
    if not match or (not match.group(2) and not match.group(1).isdigit()):
        raise UserError(f"{flag} must be a frame index (40) or a time in seconds (1.5s), got {text!r}")
    return Position(float(match.group(1)), bool(match.group(2)))


def open_source(path: str | Path) -> Source:
    """Probe ``path`` (video file or frame folder): how many frames, at what rate."""
    path = Path(path)
    if path.is_dir():
        files = tuple(list_frames(path, FRAME_SUFFIXES))
        return Source(path, "folder", len(files), None, files)
    if not path.is_file():
        raise UserError(f"input {path} does not exist; pass a video file ({', '.join(VIDEO_SUFFIXES)}) "
                        "or a folder of PNG/JPG frames")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{path} is not a video this stage reads; pass one of {', '.join(VIDEO_SUFFIXES)} "
                        "or a folder of PNG/JPG frames")
    source = _open_gif(path) if path.suffix.lower() == ".gif" else _open_video(path)
    if source.num_frames == 0:
        raise UserError(f"{path} holds no frames; pass a video with at least one frame")
    return source


def _open_gif(path: Path) -> Source:
    try:
        with Image.open(path) as gif:
            durations = []
            for i in range(getattr(gif, "n_frames", 1)):
                gif.seek(i)
                durations.append(gif.info.get("duration", 0))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read GIF {path} ({err}); replace the file or convert it to mp4") from None
    shown = [d for d in durations if d > 0]
    fps = 1000.0 * len(shown) / sum(shown) if shown else GIF_DEFAULT_FPS
    return Source(path, "gif", len(durations), fps)


def _open_video(path: Path) -> Source:
    import imageio_ffmpeg

    try:
        count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        reader = imageio_ffmpeg.read_frames(str(path))
        fps = next(reader)["fps"]
        reader.close()
    except (RuntimeError, OSError, StopIteration, IndexError, AttributeError) as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read video {path} (ffmpeg: {detail}); check that the file is a complete "
                        "video, or export the clip again") from None
    return Source(path, "video", count, fps or None)


def frame_span(source: Source, start: Position | None, end: Position | None) -> range:
    """The source frames from ``start`` (included) to ``end`` (excluded); the whole video by default."""
    first = 0 if start is None else _to_index(source, start)
    stop = source.num_frames if end is None else min(_to_index(source, end), source.num_frames)
    if first >= stop:
        whole = f"{source.num_frames} frames" + (f", {source.num_frames / source.fps:.2f} s" if source.fps else "")
        raise UserError(f"--start {start} / --end {end} select no frame of {source.path} ({whole}); "
                        "choose a start before the end and inside the video")
    return range(first, stop)


def _to_index(source: Source, position: Position) -> int:
    """The first frame at or after ``position``."""
    if not position.seconds:
        return int(position.value)
    if source.fps is None:
        raise UserError(f"{source.path} is a folder of frames without a frame rate; give --start/--end "
                        "as frame indices (e.g. 40), not seconds")
    # a hair of tolerance, so 0.4 s at 30 fps is frame 12 despite binary rounding
    return math.ceil(position.value * source.fps - 1e-6)


def choose_frames(source: Source, span: range, num_frames: int | None = None, fps: float | None = None) -> list[int]:
    """Source frame indices: ``num_frames`` evenly spaced over ``span`` (first and last included),
    or one every 1/``fps`` seconds from its start."""
    if fps is not None:
        if source.fps is None:
            raise UserError(f"--fps needs a video with a frame rate; {source.path} is a folder of frames: "
                            "use --num_frames")
        if not 0 < fps <= source.fps:
            raise UserError(f"--fps must be above 0 and at most the video's {source.fps:g} fps, got {fps:g}")
        step = source.fps / fps
        return [span.start + round(k * step) for k in range(int((len(span) - 1) / step + 1e-6) + 1)]
    if num_frames is None or num_frames < 1:
        raise UserError(f"--num_frames must be at least 1, got {num_frames}")
    if num_frames > len(span):
        raise UserError(f"{source.path} has {len(span)} frames in the chosen range but --num_frames is "
                        f"{num_frames}; ask for at most {len(span)} frames or widen --start/--end")
    return [int(round(x)) for x in np.linspace(span.start, span.stop - 1, num_frames)]


def read_frames(source: Source, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices`` as {index: (H,W,4) uint8 RGBA}."""
    wanted = sorted(set(indices))
    if source.kind == "folder":
        return _read_folder(source, wanted)
    if source.kind == "gif":
        return _read_gif(source, wanted)
    return _read_video(source, wanted)


def _read_folder(source: Source, wanted: list[int]) -> dict[int, np.ndarray]:
    frames = {}
    for i in wanted:
        path = source.files[i]
        try:
            frame = read_rgba(path)
        except UserError:  # no alpha channel: the frame is opaque (an unreadable file fails in read_rgb)
            rgb = read_rgb(path)
            frame = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        first = frames.get(wanted[0], frame)
        if frame.shape != first.shape:
            raise UserError(f"{path} is {frame.shape[1]}x{frame.shape[0]} but {source.files[wanted[0]]} is "
                            f"{first.shape[1]}x{first.shape[0]}; all frames of a video must have the same size")
        frames[i] = frame
    return frames


def _read_gif(source: Source, wanted: list[int]) -> dict[int, np.ndarray]:
    frames = {}
    with Image.open(source.path) as gif:
        for i in wanted:
            gif.seek(i)
            frames[i] = np.asarray(gif.convert("RGBA"))
    return frames


def _read_video(source: Source, wanted: list[int]) -> dict[int, np.ndarray]:
    """Decode once, front to back, keeping only the wanted frames (a long clip never sits in memory)."""
    import imageio_ffmpeg

    frames, keep, last = {}, set(wanted), wanted[-1]
    reader = imageio_ffmpeg.read_frames(str(source.path))
    try:
        width, height = next(reader)["size"]
        for i, buffer in enumerate(reader):
            if i in keep:
                rgb = np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
                frames[i] = np.dstack([rgb, np.full((height, width), 255, np.uint8)])
            if i == last:
                break
    finally:
        reader.close()
    missing = [i for i in wanted if i not in frames]
    if missing:
        raise UserError(f"{source.path} ended before frame {missing[0]} (ffmpeg counted {source.num_frames}); "
                        "the file may be cut short: export the clip again")
    return frames


def fit_max_side(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """(H,W,4) uint8 scaled down (Lanczos, in premultiplied alpha) so its longer side is at most
    ``max_side``; unchanged if it already fits."""
    height, width = frame.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return frame
    scale = max_side / max(height, width)
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    return np.asarray(Image.fromarray(frame, "RGBA").resize(size, Image.LANCZOS))
