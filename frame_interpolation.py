"""Stage 2: RIFE frame interpolation between generated frames (Efficient4D's frame_interpolation.py).

Pair mode, the original's flags (one pair per process, as the original run.sh loop):
    python frame_interpolation.py --img output/NAME/0.png output/NAME/1.png --cycle2 --save_path output/NAME/interp/0_1
Batch mode, every consecutive pair in one process with the model loaded once:
    python frame_interpolation.py --root_path output/NAME --num_frame 16 --cycle2
writes output/NAME/interp/{i}_{i+1}/img{0..4}.png. RIFE runs on the whole 16-view strip, as the
original; --per_view runs each view separately (flow then never crosses view borders).
"""
import argparse
from pathlib import Path

from rife.interpolate import check_schedule_args, interpolate_pair, interpolate_video, read_strips
from rife.model import load_flownet
from utils.devices import resolve_device
from utils.cli import run_main
from utils.errors import UserError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--img", dest="img", nargs=2, metavar=("IMG0", "IMG1"), help="pair mode: the two frames")
    parser.add_argument("--exp", default=4, type=int, help="without --cycle2/--ratio: write 2**exp + 1 frames")
    parser.add_argument("--ratio", default=0, type=float, help="inference ratio between two images with 0 - 1 range")
    parser.add_argument("--rthreshold", default=0.02, type=float,
                        help="returns image when actual ratio falls in given range threshold")
    parser.add_argument("--rmaxcycles", default=8, type=int, help="limit max number of bisectional cycles")
    parser.add_argument("--model", dest="modelDir", type=str, default="ckpt",
                        help="directory holding flownet.pkl (or the file itself); 'random': seeded random weights "
                             "(pipeline test)")
    parser.add_argument("--save_path", type=str, default="output", help="pair mode: output folder")
    parser.add_argument("--cycle2", action="store_true", help="write t = 0, .25, .5, .75, 1 as img0..img4")
    parser.add_argument("--root_path", type=str, help="batch mode: folder holding 0.png .. N-1.png")
    # concat_video.py spells it --num_frames; accept both
    parser.add_argument("--num_frame", "--num_frames", dest="num_frame", type=int, help="batch mode: frame count N")
    parser.add_argument("--per_view", action="store_true", help="batch mode: interpolate each view separately")
    parser.add_argument("--device", type=str, default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_args()

    batch_mode = args.root_path is not None or args.num_frame is not None
    if batch_mode == (args.img is not None):
        raise UserError("give either --img IMG0 IMG1 (one pair) or --root_path DIR --num_frame N (every pair)")
    if batch_mode and (args.root_path is None or args.num_frame is None):
        raise UserError("batch mode needs both --root_path DIR and --num_frame N")
    if args.per_view and not batch_mode:
        raise UserError("--per_view applies to batch mode (--root_path/--num_frame) only")
    schedule = dict(cycle2=args.cycle2, ratio=args.ratio, rthreshold=args.rthreshold, rmaxcycles=args.rmaxcycles,
                    exp=args.exp)
    # Cheap checks first, so a mistake is reported before the model loads.
    check_schedule_args(args.exp, args.ratio, args.rthreshold, args.rmaxcycles)
    if batch_mode:
        read_strips(Path(args.root_path), args.num_frame)
    else:
        for img in args.img:
            if not Path(img).is_file():
                raise UserError(f"--img {img} does not exist")
    flownet = load_flownet(args.modelDir, resolve_device(args.device))
    if batch_mode:
        folders = interpolate_video(flownet, args.root_path, args.num_frame, per_view=args.per_view, **schedule)
        print(f"[INFO] wrote {len(folders)} interpolated pairs under {folders[0].parent}")
    else:
        interpolate_pair(flownet, args.img[0], args.img[1], args.save_path, **schedule)


if __name__ == "__main__":
    run_main(main)
