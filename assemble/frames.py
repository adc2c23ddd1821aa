"""Stage 3: assemble the generated and interpolated strips into ``data/``.

Layout (DESIGN.md): generated frame i is ``ROOT/{i}.png``; RIFE's frames between i and i+1 are
``ROOT/interp/{i}_{i+1}/img{0..4}.png`` (t = 0, .25, .5, .75, 1). ``data/{k:02d}.png`` lists
frame 0, its img1..img3, frame 1, ... so N generated frames give N + 3(N-1) data frames.
Names simply grow past 99 (``100.png``); every reader orders them numerically.
"""
import os
import sys
from pathlib import Path
from typing import Callable

from utils.errors import UserError
from utils.images import read_rgb, write_png
from utils.strips import NUM_VIEWS, check_strip_files, data_frame_path

INTERP_STEPS = (1, 2, 3)  # img1..img3 (t = .25, .5, .75); img0/img4 repeat the generated frames


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def source_frames(root: str | os.PathLike, num_frames: int, interp: bool) -> list[Path]:
    """The strips that become ``data/`` frames 0, 1, ..., in order (paths; not checked)."""
    root = Path(root)
    sources = []
    for i in range(num_frames):
        sources.append(root / f"{i}.png")
        if interp and i < num_frames - 1:
            sources.extend(root / "interp" / f"{i}_{i + 1}" / f"img{j}.png" for j in INTERP_STEPS)
    return sources


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
    check_strip_files(sources, num_views)

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
