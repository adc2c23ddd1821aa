"""Stage 0: your own video (mp4, mov, webm, gif, or a folder of PNG/JPG frames) -> RGBA frames.

    python prepare_video.py --input clip.mp4 --output data/clip --num_frames 16 --matting background

Writes data/NAME/0.png ... (N-1).png (RGBA, one size), data/NAME/preview/contact_sheet.png (frames
over a checkerboard) and data/NAME/preview/report.json (each frame's foreground area). Frames that
look wrong get one printed line each; nothing is ever downloaded.
"""
import argparse
import os

from prepare.background import MODELS, REFINES
from prepare.frames import parse_position
from prepare.matting import METHODS
from prepare.pipeline import DEFAULT_MAX_SIDE, prepare_video
from prepare.rembg_models import default_model_path
from utils.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="video file (mp4, mov, webm, mkv, avi, gif) or folder of frames")
    parser.add_argument("--output", required=True, help="output folder, e.g. data/NAME")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--num_frames", type=int, default=None,
                        help="frames to take, evenly spaced over --start..--end (default 16)")
    choice.add_argument("--fps", type=float, default=None, help="take one frame every 1/FPS seconds instead")
    parser.add_argument("--start", default=None,
                        help="first frame index (40) or time (1.5s); default the start of the video")
    parser.add_argument("--end", default=None,
                        help="frame index or time the range stops before (excluded); default the end")
    parser.add_argument("--max_side", type=int, default=DEFAULT_MAX_SIDE,
                        help=f"scale larger frames down to this longer side in pixels (default {DEFAULT_MAX_SIDE}; "
                             "0 keeps the size)")
    parser.add_argument("--matting", choices=METHODS, default="auto",
                        help="background: still camera and backdrop, no model; rembg: a rembg ONNX model; alpha: keep "
                             "the input's alpha; none: opaque frames; auto (default): alpha if the input has "
                             "transparency, else background")
    parser.add_argument("--background", choices=MODELS, default="auto",
                        help="--matting background's backdrop: border (plain backdrop, the object may stand still), "
                             "median (any still backdrop, the object must move), auto (default: border if the "
                             "frame's edge is plain)")
    parser.add_argument("--refine", choices=REFINES, default="none",
                        help="--matting background: GrabCut on the object's edge (slower; default none)")
    parser.add_argument("--matting_model", default=None,
                        help="--matting rembg: the ONNX model file (default: rembg's own folder, $U2NET_HOME/u2net.onnx)")
    parser.add_argument("--device", default="cpu", help="--matting rembg: cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--force", action="store_true", help="replace an existing non-empty --output folder")
    args = parser.parse_args()

    num_frames = 16 if args.num_frames is None and args.fps is None else args.num_frames
    model = args.matting_model or default_model_path(dict(os.environ))
    start, end = parse_position(args.start, "--start"), parse_position(args.end, "--end")
    prepare_video(args.input, args.output, num_frames, args.fps, start, end, args.max_side or None,
                  args.matting, args.background, args.refine, model, args.device, args.force)


if __name__ == "__main__":
    run_main(main)
