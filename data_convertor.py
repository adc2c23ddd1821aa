"""Stage 5: convert output/NAME/data into a 4DGS dataset (per-frame view PNGs + transforms JSON).

    python data_convertor.py --input output/NAME --output recon_data/NAME --confidence
"""
import argparse

from utils.cli import run_main
from convert.dataset import convert_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=str, default="output/walking_white_faced_egret",
                        help="folder holding data/ (the strips) and data/conf_map/")
    parser.add_argument("--output", type=str, default="recon_data/walking_white_faced_egret",
                        help="dataset folder to write")
    parser.add_argument("--confidence", action="store_true",
                        help="use data/conf_map/{k}_ssim.png and {k}_rgb.png (else the RGB view is copied)")
    args = parser.parse_args()
    convert_dataset(args.input, args.output, args.confidence)


if __name__ == "__main__":
    run_main(main)
