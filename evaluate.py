"""Score 4D results with the Consistent4D protocol: PSNR, SSIM, LPIPS, CLIP and FVD.

    python evaluate.py --gt GT_ROOT --pred PRED_ROOT [--metrics psnr ssim lpips clip fvd]
    python evaluate.py --gt GT_ROOT --recon recon_out/NAME [recon_out/OTHER ...]

Both roots hold ROOT/<object>/eval_{0..3}/{frame}.png (the official layout). With --recon, each
reconstruct.py folder is first rendered into that layout under --render_root (kept), at the
protocol's four views. Writes --output_file (the official scripts' JSON schema plus "fvd"),
its _details.json (per view and frame) and a Markdown table (.md). The official flags
--gt_root, --pred_root, --output_file, --model_path and --eval_views work as in their scripts.
"""
import argparse

from evaluation import protocol
from evaluation.pipeline import EvalOptions, WeightPaths, evaluate, evaluate_recon
from evaluation.render import CameraSettings
from recon.backends import RASTERIZERS
from utils.cli import run_main
from utils.devices import resolve_device
from utils.errors import UserError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gt", "--gt_root", dest="gt", required=True, help="ground-truth root: GT/<object>/eval_{0..3}/{frame}.png")
    pred = parser.add_mutually_exclusive_group(required=True)
    pred.add_argument("--pred", "--pred_root", dest="pred", help="prediction root in the same layout")
    pred.add_argument("--recon", nargs="+", help="reconstruct.py output folders, each named after its ground-truth object; rendered first")
    parser.add_argument("--output_file", default="metrics.json", help="the JSON to write; _details.json and .md go beside it (default metrics.json)")
    parser.add_argument("--metrics", nargs="+", default=list(protocol.METRICS), help=f"any of {' '.join(protocol.METRICS)} (default all; psnr and ssim need no weights)")
    parser.add_argument("--objects", nargs="+", default=None, help="evaluate only these objects (default every ground-truth object)")
    parser.add_argument("--eval_views", type=int, default=protocol.NUM_VIEWS, help="views per object (the protocol has 4)")
    parser.add_argument("--compare", action="store_true", help="add a table of our averages beside the published figures (evaluation/published.json)")
    parser.add_argument("--fresh", action="store_true", help="recompute every object (default: reuse objects whose inputs and settings are unchanged)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    render = parser.add_argument_group("rendering --recon (see the README for the camera alignment)")
    render.add_argument("--render_root", default="eval_renders", help="where the renders go, in the official layout (kept; default eval_renders)")
    render.add_argument("--align", default="camera", choices=["camera", "alpha_box"], help="camera: the ground truth's distance and field of view; alpha_box: then match each view's object box to the ground truth's")
    render.add_argument("--gt_distance", type=float, default=protocol.GT_DISTANCE, help=f"ground-truth camera distance, in the reconstruction's units (default {protocol.GT_DISTANCE}, Consistent4D's)")
    render.add_argument("--gt_fovy", type=float, default=protocol.GT_FOVY_DEG, help=f"ground-truth vertical field of view in degrees (default {protocol.GT_FOVY_DEG})")
    render.add_argument("--input_elevation", type=float, default=0.0, help="elevation of the input view in degrees, as given to generate.py --elevation (default 0)")
    render.add_argument("--rasterizer", default="auto", choices=RASTERIZERS, help="auto: gsplat on CUDA when installed")
    weights = parser.add_argument_group("weights (never downloaded; see the README)")
    weights.add_argument("--model_path", default=None, help="I3D-400 for FVD, i3d_pretrained_400.pt (default ckpt/i3d_pretrained_400.pt)")
    weights.add_argument("--lpips_vgg", default=None, help="torchvision's vgg16-397923af.pth (default: torch hub's checkpoints cache)")
    weights.add_argument("--lpips_heads", default=None, help="LPIPS v0.1 vgg.pth linear heads (default: the copy the lpips package installs)")
    weights.add_argument("--clip_model", default=None, help="OpenAI CLIP ViT-B/32 weights, open_clip or Hugging Face format, a file or a downloaded repository folder (default: the Hugging Face cache of timm/vit_base_patch32_clip_224.openai, then openai/clip-vit-base-patch32)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.eval_views != protocol.NUM_VIEWS:
        raise UserError(f"--eval_views {args.eval_views}: the Consistent4D protocol has {protocol.NUM_VIEWS} views; leave it at 4")
    options = EvalOptions(
        metrics=args.metrics, objects=args.objects, resume=not args.fresh, compare=args.compare,
        weights=WeightPaths(lpips_vgg=args.lpips_vgg, lpips_heads=args.lpips_heads, clip=args.clip_model, i3d=args.model_path),
    )
    device = resolve_device(args.device)
    if args.recon:
        camera = CameraSettings(distance=args.gt_distance, fovy_deg=args.gt_fovy, input_elevation_deg=args.input_elevation, align=args.align)
        evaluate_recon(args.gt, args.recon, args.render_root, args.output_file, options, camera, device, args.rasterizer)
    else:
        evaluate(args.gt, args.pred, args.output_file, options, device)


if __name__ == "__main__":
    run_main(main)
