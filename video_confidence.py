"""Stage 4: confidence maps of the assembled video (Efficient4D's video_confidence.py).

    python video_confidence.py --root_path output/NAME

reads output/NAME/data/*.png (16-view strips, numeric order) and writes
output/NAME/data/conf_map/{k:02d}_ssim.png and {k:02d}_rgb.png (uint8, same size as the strips).
"""
import argparse
from pathlib import Path

from rife.model import load_flownet
from utils.devices import resolve_device
from utils.cli import run_main
from utils.confidence import check_strips, confidence_maps
from utils.images import list_frames, read_rgb, write_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_path", type=str, default="output/walking_white_faced_egret",
                        help="folder whose data/ holds the frames (concat_video.py output)")
    parser.add_argument("--model", type=str, default="ckpt",
                        help="directory holding flownet.pkl (or the file); 'random': seeded random weights "
                             "(pipeline test)")
    parser.add_argument("--device", type=str, default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_args()

    data = Path(args.root_path) / "data"
    paths = list_frames(data)
    strips = [read_rgb(p) for p in paths]
    check_strips(strips, paths)
    flownet = load_flownet(args.model, resolve_device(args.device))
    for k, ssim_conf, rgb_conf in confidence_maps(strips, flownet):
        write_png(data / "conf_map" / f"{k:02d}_ssim.png", ssim_conf)
        write_png(data / "conf_map" / f"{k:02d}_rgb.png", rgb_conf)
    print(f"[INFO] wrote confidence maps of {len(strips)} frames to {data / 'conf_map'}")


if __name__ == "__main__":
    run_main(main)
