"""Stage 6: confidence-aware 4D Gaussian reconstruction of a data_convertor.py dataset.

    python reconstruct.py --data recon_data/NAME --output recon_out/NAME [--iterations 3000]
        [--confidence ssim|rgb|none] [--resolution -1] [--device cuda] [--resume] [--render_only]

Writes checkpoint.pt, previews/, renders/test/ (+ metrics.json), videos/ and ply/ under --output.
Every optimisation and densification option of 4DGS / 3DGS is a flag of the same name (see --help).
"""
import argparse
import dataclasses

import torch

from recon.backends import RASTERIZERS
from recon.densify import DensifyConfig
from recon.pipeline import reconstruct
from recon.trainer import TrainConfig
from utils.cli import run_main

HELP = {
    "iterations": "training iterations",
    "sh_degree": "spherical-harmonics degree of the view-dependent colour (0-3)",
    "sh_degree_t": "time harmonics of the colour (0: constant in time; 4DGS's time-varying colour with 1-2)",
    "batch_size": "views rendered per iteration",
    "num_points": "initial Gaussians, spread over the frame times inside the visual hull",
    "init_time_scale": "temporal std of the initial Gaussians, in frame spacings",
    "min_marginal": "skip Gaussians whose temporal marginal at the rendered time is below this",
    "lambda_dssim": "weight of the D-SSIM term (the L1 term gets 1 - lambda)",
    "preview_every": "write previews/iter_N.png every N iterations (0: never)",
    "checkpoint_every": "save checkpoint.pt every N iterations (always at the end)",
    "position_t_lr_init": "learning rate of the Gaussians' times (-1: position_lr_init)",
}
SKIPPED_FIELDS = {"densify", "white_background"}


def add_config_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(cls):
        if field.name in SKIPPED_FIELDS:
            continue
        help_text = HELP.get(field.name, field.name.replace("_", " "))
        group.add_argument(f"--{field.name}", type=type(field.default), default=field.default, help=f"{help_text} (default {field.default})")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dataset folder written by data_convertor.py (recon_data/NAME)")
    parser.add_argument("--output", required=True, help="output folder (recon_out/NAME)")
    parser.add_argument("--confidence", default="ssim", choices=["ssim", "rgb", "none"], help="confidence maps weighting the loss; none = unweighted baseline")
    parser.add_argument("--resolution", type=int, default=-1, help="-1 native; 1/2/4/8 downscale factor; else training width in px (must divide the image width)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--rasterizer", default="auto", choices=RASTERIZERS,
                        help="auto: gsplat on CUDA when its kernels load, else torch (pure PyTorch, any device); "
                             "reference: the plain autograd rasteriser (slow, for checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt up to --iterations")
    parser.add_argument("--render_only", action="store_true", help="skip training; render OUTPUT/checkpoint.pt")
    parser.add_argument("--eval", action=argparse.BooleanOptionalAction, default=True,
                        help="hold the test views out of training, so renders/test/metrics.json scores views the model "
                             "never saw (default; the converter also lists them as training views). --no-eval trains on "
                             "every view, and the metrics are then labelled 'seen in training'")
    parser.add_argument("--ply_times", type=float, nargs="*", default=None, help="times to export as .ply (default: first, middle and last frame)")
    parser.add_argument("--video_frames", type=int, default=120, help="frames of each video (0: no videos)")
    add_config_flags(parser, TrainConfig, "optimisation")
    add_config_flags(parser, DensifyConfig, "densification")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    values = vars(args)
    densify = DensifyConfig(**{f.name: values[f.name] for f in dataclasses.fields(DensifyConfig) if f.name in values})
    config = TrainConfig(densify=densify, **{f.name: values[f.name] for f in dataclasses.fields(TrainConfig) if f.name != "densify"})
    reconstruct(
        args.data, args.output, config, confidence=args.confidence, resolution=args.resolution, device=args.device,
        seed=args.seed, resume=args.resume, render_only=args.render_only, holdout=args.eval,
        rasterizer=args.rasterizer, ply_times=args.ply_times, video_frames=args.video_frames,
    )


if __name__ == "__main__":
    run_main(main)
