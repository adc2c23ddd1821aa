"""Stage 4: confidence maps of the assembled video (Efficient4D's video_confidence.py).

    python video_confidence.py --root_path output/NAME

reads output/NAME/data/*.png (16-view strips, numeric order) and writes
output/NAME/data/conf_map/{k:02d}_ssim.png and {k:02d}_rgb.png (uint8, same size as the strips).
"""
import argparse

from confidence.maps import write_confidence_maps
from utils.cli import run_main
from utils.devices import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_path", type=str, default="output/walking_white_faced_egret",
                        help="folder whose data/ holds the frames (concat_video.py output)")
    parser.add_argument("--model", type=str, default="ckpt",
                        help="directory holding flownet.pkl (or the file); 'random': seeded random weights "
                             "(pipeline test)")
    parser.add_argument("--device", type=str, default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_args()

    conf_dir = write_confidence_maps(args.root_path, args.model, resolve_device(args.device))
    print(f"[INFO] wrote confidence maps to {conf_dir}")


if __name__ == "__main__":
    run_main(main)
