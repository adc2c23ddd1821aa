"""Stage 3: assemble generated (+ interpolated) strips into data/ and write mp4 previews.

    python concat_video.py --root_path output/NAME --num_frames 16 --interp
"""
import argparse

from assemble.frames import assemble_frames
from assemble.previews import write_previews
from utils.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_path", type=str, default="output/walking_white_faced_egret",
                        help="generate.py output folder holding {i}.png (and interp/)")
    # the original defines --num_frames while its README/run.sh pass --num_frame; accept both
    parser.add_argument("--num_frames", "--num_frame", dest="num_frames", type=int, default=16,
                        help="number of generated frames")
    parser.add_argument("--interp", action="store_true",
                        help="insert interp/{i}_{i+1}/img1..img3.png between generated frames")
    args = parser.parse_args()

    frames = assemble_frames(args.root_path, args.num_frames, args.interp)
    print(f"[INFO] wrote {len(frames)} frames to {frames[0].parent}")
    previews = write_previews(args.root_path, args.num_frames)
    print(f"[INFO] wrote {len(previews)} previews to {previews[0].parent}")


if __name__ == "__main__":
    run_main(main)
