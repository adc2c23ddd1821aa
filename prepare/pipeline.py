"""Stage 0 in one call: a video (or folder of frames) -> ``OUTPUT/{i}.png`` RGBA frames of one size,
``OUTPUT/preview/contact_sheet.png`` and ``OUTPUT/preview/report.json``.

Nothing is half-written: everything goes to a hidden temporary folder beside the output, which
replaces the output folder only once complete. An existing non-empty output is replaced only
with ``force``; the input is never written to (an output overlapping it is refused).
"""
import os
import secrets
import shutil
from pathlib import Path

import numpy as np

from prepare.frames import Position, Source, choose_frames, fit_max_side, frame_span, open_source, read_frames
from prepare.matting import METHODS, matte, resolve_method
from prepare.preview import contact_sheet
from prepare.report import FrameCheck, check_frames, summary
from prepare.rembg_models import check_model, check_runtime
from utils.errors import UserError
from utils.images import write_json, write_png

DEFAULT_MAX_SIDE = 1024
MIN_SIDE = 16
BACKDROP_SAMPLES = 32  # frames spread over the clip for the median backdrop, whatever --num_frames is
REPORT = Path("preview") / "report.json"


def check_output(input: Path, output: Path, force: bool) -> None:
    """The output folder may be written: apart from the input, and empty unless ``force``."""
    source, target = input.resolve(), output.resolve()
    if target == source or source in target.parents or target in source.parents:
        raise UserError(f"--output {output} overlaps the input {input}; choose an output folder apart from it "
                        "(the input is never modified)")
    if output.exists() and not output.is_dir():
        raise UserError(f"--output {output} is a file; pass a folder path such as data/NAME")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise UserError(f"{output} already holds files; pass --force (FORCE=1 in run.sh) to replace them, "
                        "or choose another --output")


def check_inputs(input: Path, output: Path, num_frames: int | None, fps: float | None, start: Position | None,
                 end: Position | None, max_side: int | None, matting: str, matting_model: str | os.PathLike | None,
                 force: bool) -> tuple[Source, list[int]]:
    """Every check that decodes no frame (run.sh's preflight runs only this): the flags, the output
    folder, what ``rembg`` needs, the video's frame count. Returns the source and its chosen frames."""
    if max_side is not None and max_side < MIN_SIDE:
        raise UserError(f"--max_side must be at least {MIN_SIDE} pixels (or 0 to keep the size), got {max_side}")
    if matting not in METHODS:
        raise UserError(f"--matting must be one of {', '.join(METHODS)}, got {matting!r}")
    check_output(input, output, force)
    if matting == "rembg":
        check_runtime()
        check_model(matting_model)
    source = open_source(input)
    return source, choose_frames(source, frame_span(source, start, end), num_frames, fps)


def _spread(span: range, count: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(span.start, span.stop - 1, min(count, len(span)))})


def _publish(staged: Path, output: Path) -> None:
    """Put the staged folder in the output's place (the old output is moved aside first, then removed)."""
    if output.exists():
        retired = staged.with_suffix(".old")
        os.replace(output, retired)
        os.replace(staged, output)
        shutil.rmtree(retired)
    else:
        os.replace(staged, output)


def write_outputs(output: Path, rgba: np.ndarray, checks: list[FrameCheck], record: dict) -> None:
    """Frames, contact sheet and report, staged in a hidden folder beside ``output``, then put in place."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staged = output.parent / f".{output.name}.{secrets.token_hex(4)}.tmp"
        staged.mkdir()
    except OSError as err:
        raise UserError(f"cannot write to {output.parent} ({err.strerror}); choose a writable --output") from None
    try:
        for i, frame in enumerate(rgba):
            write_png(staged / f"{i}.png", frame)
        write_png(staged / "preview" / "contact_sheet.png", contact_sheet(rgba, [c.index for c in checks if c.problem]))
        write_json(staged / REPORT, {**record, **summary(checks)})
        _publish(staged, output)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def prepare_video(input: str | os.PathLike, output: str | os.PathLike, num_frames: int | None = 16,
                  fps: float | None = None, start: Position | None = None, end: Position | None = None,
                  max_side: int | None = DEFAULT_MAX_SIDE, matting: str = "auto", background: str = "auto",
                  refine: str = "none", matting_model: str | os.PathLike | None = None, device: str = "cpu",
                  force: bool = False, log=print) -> list[FrameCheck]:
    """Read, choose, scale (longer side at most ``max_side``), matte, check and write the frames.

    ``num_frames`` evenly spaced frames, or one every 1/``fps`` s, between ``start`` and ``end``.
    ``matting``/``background``/``refine``/``matting_model``/``device``: see ``prepare.matting``.
    Returns the per-frame checks; prints one line per flagged frame.
    """
    input, output = Path(input), Path(output)
    source, chosen = check_inputs(input, output, num_frames, fps, start, end, max_side, matting, matting_model, force)
    samples = _spread(frame_span(source, start, end), BACKDROP_SAMPLES) if matting in ("auto", "background") else []
    decoded = read_frames(source, chosen + samples)
    decoded = {i: fit_max_side(frame, max_side) for i, frame in decoded.items()}
    frames = np.stack([decoded[i] for i in chosen])
    method = resolve_method(matting, frames, input)
    backdrop_samples = np.stack([decoded[i][..., :3] for i in sorted(decoded)])
    log(f"{input}: {len(chosen)} of {source.num_frames} frames ({frames.shape[2]}x{frames.shape[1]}), matting: {method}")
    rgba = matte(frames, backdrop_samples, method, background, refine, matting_model, device, log)

    checks = check_frames(rgba[..., 3], chosen, str(input))
    log("foreground, % of each frame: " + " ".join(f"{c.index}:{100 * c.share:.1f}" for c in checks))
    for c in checks:
        if c.problem:
            log(f"warning: frame {c.index} (source frame {c.source_index}): {c.problem}; see {output / f'{c.index}.png'}")
    record = {"input": str(input), "source_frames": source.num_frames, "fps": source.fps, "matting": method,
              "background": background, "refine": refine, "matting_model": str(matting_model) if method == "rembg" else None,
              "max_side": max_side, "size": [int(frames.shape[2]), int(frames.shape[1])]}
    write_outputs(output, rgba, checks, record)
    log(f"wrote {len(rgba)} RGBA frames to {output}, contact sheet {output / 'preview' / 'contact_sheet.png'}")
    return checks
