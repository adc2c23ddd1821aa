"""Stage 1: generate 16 views of every frame with time-synchronised SyncDreamer sampling.

Writes OUTPUT/{i}.png: frame i's views side by side (e.g. 256 x 4096 RGB).

    python generate.py --input data/NAME --output output/NAME --elevation 0 --crop_size 200 \\
        --frame_num 16 --decomposed_sampling --cfg_scales 2.0 1.0 --smooth_filter --is_cyc 0

Test run without a checkpoint (tiny model, random weights: the images are noise):
    python generate.py --cfg configs/tiny.yaml --ckpt random --input data/demo --output output/demo \\
        --elevation 0 --crop_size 50 --frame_num 4 --sample_steps 4 --device cpu
"""
import argparse

from ldm.compile import COMPILE_MODES
from ldm.pipeline import generate_frames, load_model  # noqa: F401 (load_model: public API)
from utils.cli import run_main
from utils.devices import default_device, resolve_devices

__all__ = ["load_model", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", type=str, default="configs/syncdreamer.yaml", help="model config (default %(default)s)")
    p.add_argument("--ckpt", type=str, default="ckpt/syncdreamer-pretrain.ckpt",
                   help="SyncDreamer checkpoint (default %(default)s; see ckpt/README.md), or 'random' for "
                        "seeded random weights (pipeline tests only: the images are noise)")
    p.add_argument("--output", type=str, required=True, help="folder for {i}.png")
    p.add_argument("--input", type=str, required=True, help="folder of RGBA PNG frames (numeric order), or one PNG")
    p.add_argument("--elevation", type=float, required=True, help="elevation of the input view in degrees")
    p.add_argument("--sample_num", type=int, default=1, help="parsed but unused, as in the original")
    p.add_argument("--crop_size", type=int, default=-1,
                   help="longer side of the alpha-cropped object in pixels; -1: no crop (default %(default)s)")
    p.add_argument("--cfg_scale", type=float, default=2.0,
                   help="parsed but UNUSED, as in the original: classifier-free guidance uses --cfg_scales[0]")
    p.add_argument("--cfg_scales", type=float, nargs="+", default=[2.0, 1.0],
                   help="guidance scales: [image, volume] with --decomposed_sampling, else the first is the "
                        "classifier-free scale (default %(default)s)")
    p.add_argument("--decomposed_sampling", action="store_true", help="decomposed guidance (DG) instead of CFG")
    p.add_argument("--batch_view_num", type=int, default=16,
                   help="views per UNet call; lower it to save memory, results are identical (default %(default)s)")
    p.add_argument("--batch_frame_num", type=int, default=None,
                   help="frames per UNet call; lower it to save memory, results are identical (default: all "
                        "frames on the CPU; on CUDA enough for 64 frame-views per call)")
    p.add_argument("--seed", type=int, default=6033, help="seed, set right before sampling (default %(default)s)")
    p.add_argument("--sampler", type=str, default="ddim", help="only ddim (default %(default)s)")
    p.add_argument("--sample_steps", type=int, default=50, help="DDIM steps (default %(default)s)")
    p.add_argument("--smooth_filter", action="store_true",
                   help="synchronise frames: blend their spatial volumes every step (Efficient4D)")
    p.add_argument("--is_cyc", type=int, default=0, help="1: blend cyclically, for looping videos (default 0)")
    p.add_argument("--frame_num", type=int, default=1,
                   help="frames to generate, taken evenly from the input; with fewer frames all are used "
                        "(default %(default)s)")
    p.add_argument("--device", type=str, default=default_device(),
                   help="cpu, cuda (frames split over every visible GPU), cuda:N, or a list cuda:0,cuda:1 "
                        "(default %(default)s). Several GPUs or nodes: launch with torchrun, e.g. "
                        "python -m torch.distributed.run --standalone --nproc_per_node=4 generate.py ... "
                        "--device cuda; each process takes one GPU and a share of the frames")
    p.add_argument("--crop_mode", type=str, default="per_frame", choices=["per_frame", "shared_scale"],
                   help="per_frame: each frame's object scaled to --crop_size (the original); shared_scale: "
                        "one scale for all frames, from the largest object, so its size does not jump")
    p.add_argument("--precision", type=str, default=None, choices=["fp16", "bf16", "fp32"],
                   help="UNet autocast precision (default fp16 on CUDA as the original, fp32 on the CPU)")
    p.add_argument("--attention", type=str, default="auto", choices=["auto", "sdpa", "plain"],
                   help="sdpa: the fast path (fused attention, folded depth attention); plain: the original's "
                        "computation, bit for bit; auto: sdpa on CUDA, plain on the CPU (default %(default)s)")
    p.add_argument("--compile", type=str, default="off", choices=list(COMPILE_MODES),
                   help="torch.compile the UNet and volume nets (reduce-overhead adds CUDA graphs); pays only when the "
                        "compile time is below what the steps save, see the README (default %(default)s)")
    return p


def main() -> None:
    flags = build_parser().parse_args()
    if flags.sample_num != 1:
        print(f"note: --sample_num {flags.sample_num} is ignored, as in the original (one sample per frame)")
    # The original's quirk, kept: without --decomposed_sampling the CFG scale is cfg_scales[0].
    cfg_scale = flags.cfg_scales if flags.decomposed_sampling else flags.cfg_scales[0]
    generate_frames(
        flags.input, flags.output, flags.elevation, cfg=flags.cfg, ckpt=flags.ckpt, crop_size=flags.crop_size,
        cfg_scale=cfg_scale, batch_view_num=flags.batch_view_num, seed=flags.seed, sampler=flags.sampler,
        sample_steps=flags.sample_steps, smooth_filter=flags.smooth_filter, is_cyc=flags.is_cyc,
        frame_num=flags.frame_num, devices=resolve_devices(flags.device), crop_mode=flags.crop_mode,
        precision=flags.precision, batch_frame_num=flags.batch_frame_num, attention=flags.attention,
        compile=flags.compile)


if __name__ == "__main__":
    run_main(main)
