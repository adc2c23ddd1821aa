"""run.sh's cheap checks, done before any model is loaded: a typo costs a second, not a 5 GB load.

Checks the input frames (readable RGBA PNGs of one size with an object in them, enough of them),
or, with ``--video``, what stage 0 needs (a readable video with enough frames, the matting model,
an output folder it may write), the checkpoint files (present, not truncated), and the GPU list.
Prints one line per problem through utils.cli (exit 2) or a one-line summary.
"""
import argparse
import os
import zipfile
from pathlib import Path

import torch

from ldm.data import alpha_bbox, read_frame, select_frames
from ldm.pipeline import RANDOM_CKPT, check_arguments
from prepare.frames import parse_position
from prepare.pipeline import DEFAULT_MAX_SIDE, check_inputs
from prepare.rembg_models import default_model_path
from rife.model import RANDOM_FLOWNET, weights_path
from utils.cli import run_main
from utils.errors import UserError
from utils.images import list_frames

ZIP_MAGIC = b"PK\x03\x04"


def check_video(input: Path, frame_num: int, crop_size: int) -> tuple[int, tuple[int, int]]:
    """The frames generate.py will use: enough of them, one size, each with a visible object.

    Returns (frames available, (width, height)).
    """
    available = len(list_frames(input))
    if frame_num > available:
        raise UserError(f"{input} has {available} frames but N_FRAMES is {frame_num}; use N_FRAMES <= {available}")
    size = None
    for path in select_frames(input, frame_num)[:frame_num]:
        image = read_frame(path, need_alpha=crop_size != -1)
        if size is None:
            size, first = image.size, path
        elif image.size != size:
            raise UserError(f"{path} is {image.width}x{image.height} but {first} is {size[0]}x{size[1]}; "
                            "all frames of a video must have the same size")
        if crop_size != -1:
            alpha_bbox(image, path)
    return available, size


def check_not_truncated(path: Path, what: str) -> None:
    """A zip-format torch file whose directory (at its end) is missing was cut short."""
    with open(path, "rb") as f:
        is_zip_format = f.read(4) == ZIP_MAGIC
    if is_zip_format and not zipfile.is_zipfile(path):
        raise UserError(f"{what} {path} is truncated or corrupt; download it again (see ckpt/README.md)")


def check_devices(devices: str) -> None:
    """``cpu`` or a list of GPU indices that exist on this machine."""
    if devices == "cpu":
        return
    count = torch.cuda.device_count()
    for index in (int(i) for i in devices.split(",")):
        if index >= count:
            visible = f"GPUs 0..{count - 1}" if count else "no CUDA GPU"
            raise UserError(f"DEVICES names GPU {index} but this machine has {visible}; "
                            f"pass existing GPU indices or cpu")


def check_stage0(video: Path, output: Path, frame_num: int, start: str | None, end: str | None, matting: str,
                 matting_model: str, replace: bool) -> str:
    """What stage 0 (prepare_video.py) needs to write ``frame_num`` frames of ``video`` into ``output``."""
    source, chosen = check_inputs(video, output, frame_num, None, parse_position(start, "VIDEO_START"),
                                  parse_position(end, "VIDEO_END"), DEFAULT_MAX_SIDE, matting, matting_model, replace)
    return f"{len(chosen)} of {source.num_frames} frames from {video} (stage 0 writes {output})"


def preflight(input: str, frame_num: int, crop_size: int, cfg: str, ckpt: str, rife_model: str | None,
              devices: str, video: str | None = None, start: str | None = None, end: str | None = None,
              matting: str = "auto", matting_model: str | None = None, replace: bool = False) -> str:
    """Every check; returns a one-line summary. With ``video``, ``input`` is the folder stage 0 will fill."""
    check_arguments(video or input, cfg, ckpt, crop_size, 2.0, 1, "ddim", 50, 0, frame_num, "per_frame")
    if video:
        frames = check_stage0(Path(video), Path(input), frame_num, start, end, matting,
                              matting_model or default_model_path(dict(os.environ)), replace)
    else:
        available, (width, height) = check_video(Path(input), frame_num, crop_size)
        frames = f"{frame_num} of {available} frames ({width}x{height}) from {input}"
    if ckpt != RANDOM_CKPT:
        check_not_truncated(Path(ckpt), "checkpoint")
    if rife_model is not None and rife_model != RANDOM_FLOWNET:
        flownet = weights_path(rife_model)
        if not flownet.is_file():
            raise UserError(f"RIFE weights {flownet} not found; the Efficient4D repository ships them as "
                            "model/flownet.pkl: copy that file into ckpt/ (see ckpt/README.md)")
        check_not_truncated(flownet, "RIFE weights")
    check_devices(devices)
    return f"inputs ok: {frames}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--frame_num", type=int, required=True)
    parser.add_argument("--crop_size", type=int, required=True)
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--rife_model", default=None, help="flownet.pkl folder, or omit when RIFE is not run")
    parser.add_argument("--devices", required=True)
    parser.add_argument("--video", default=None, help="a video for stage 0, which writes --input")
    parser.add_argument("--video_start", default=None)
    parser.add_argument("--video_end", default=None)
    parser.add_argument("--matting", default="auto")
    parser.add_argument("--matting_model", default=None)
    parser.add_argument("--replace", action="store_true", help="stage 0 may replace a non-empty --input")
    args = parser.parse_args()
    print(preflight(args.input, args.frame_num, args.crop_size, args.cfg, args.ckpt, args.rife_model, args.devices,
                    args.video, args.video_start, args.video_end, args.matting, args.matting_model, args.replace))


if __name__ == "__main__":
    run_main(main)
