"""evaluate.py end to end: check the weights, pair the layout, score, write the report."""
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from evaluation import protocol
from evaluation import weights as locate
from evaluation.layout import pair_layout
from evaluation.metrics import psnr, ssim
from evaluation.published import comparison_markdown, load_published
from evaluation.render import CameraSettings, render_recon
from evaluation.report import markdown_table, official_json, output_paths, write_report
from evaluation.scoring import ImageMetric, VideoMetric, score_layout
from utils.errors import UserError


@dataclass
class WeightPaths:
    """User-supplied weight files; None takes the library's usual cache (see :mod:`evaluation.weights`)."""

    lpips_vgg: str | None = None
    lpips_heads: str | None = None
    clip: str | None = None
    i3d: str | None = None


@dataclass
class EvalOptions:
    metrics: list[str] = field(default_factory=lambda: list(protocol.METRICS))
    objects: list[str] | None = None
    weights: WeightPaths = field(default_factory=WeightPaths)
    resume: bool = True
    compare: bool = False


def check_metrics(metrics: list[str]) -> list[str]:
    unknown = [m for m in metrics if m not in protocol.METRICS]
    if unknown:
        raise UserError(f"--metrics {unknown[0]} is not a metric; choose from {' '.join(protocol.METRICS)}")
    return [m for m in protocol.METRICS if m in metrics]


def locate_weights(metrics: list[str], weights: WeightPaths) -> dict[str, Path]:
    """The weight file of each network the metrics need; a missing one is a UserError."""
    files = {}
    if "lpips" in metrics:
        files["lpips_vgg"], files["lpips_heads"] = locate.lpips_vgg(weights.lpips_vgg), locate.lpips_heads(weights.lpips_heads)
    if "clip" in metrics:
        files["clip"] = locate.clip(weights.clip)
    if "fvd" in metrics:
        files["i3d"] = locate.i3d(weights.i3d)
    return files


def build_metrics(metrics: list[str], weights: WeightPaths, device: torch.device,
                  log: Callable[[str], None]) -> tuple[dict[str, ImageMetric], dict[str, VideoMetric], dict]:
    """The metric functions, and the weight files each one uses. Every weight file is located
    before any network is built, so a missing one stops the run at once."""
    files = locate_weights(metrics, weights)

    image: dict[str, ImageMetric] = {}
    video: dict[str, VideoMetric] = {}
    if "psnr" in metrics:
        image["psnr"] = psnr
    if "ssim" in metrics:
        image["ssim"] = ssim
    if "lpips" in metrics:
        from evaluation.lpips import LPIPSMetric

        image["lpips"] = LPIPSMetric.from_files(files["lpips_vgg"], files["lpips_heads"], device)
    if "clip" in metrics:
        from evaluation.clip_score import CLIPMetric

        image["clip"] = CLIPMetric.from_file(files["clip"], device)
    if "fvd" in metrics:
        from evaluation.fvd import FVDMetric

        video["fvd"] = FVDMetric.from_file(files["i3d"], device)
    for name, path in files.items():
        log(f"weights {name}: {path}")
    return image, video, {k: str(v) for k, v in files.items()}


def evaluate(gt_root: str | Path, pred_root: str | Path, output_file: str | Path, options: EvalOptions,
             device: torch.device, log: Callable[[str], None] = print, extra_protocol: dict | None = None) -> dict:
    """Score ``pred_root`` against ``gt_root``; write the JSON, the details and the Markdown table.

    Returns the official-schema table ``{metric: {object: v, "average": v}}``."""
    metrics = check_metrics(options.metrics)
    pairs = pair_layout(gt_root, pred_root, options.objects)
    image, video, files = build_metrics(metrics, options.weights, device, log)
    settings = {
        "metrics": metrics, "gt_root": str(gt_root), "pred_root": str(pred_root), "weights": files,
        "image_size": protocol.IMAGE_SIZE, "data_range": protocol.DATA_RANGE, "fvd_size": protocol.FVD_SIZE,
        **(extra_protocol or {}),
    }
    paths = output_paths(output_file)
    results = score_layout(pairs, image, video, settings, paths["cache"] if options.resume else None, log)
    table = official_json(results, metrics)
    details = {"protocol": settings, "objects": results}
    markdown = markdown_table(table, f"{Path(pred_root).name} vs {Path(gt_root).name}")
    if options.compare:
        markdown += "\n" + comparison_markdown(table, Path(pred_root).name, load_published())
    write_report(output_file, table, details, markdown)
    log(markdown)
    log(f"wrote {paths['json']}, {paths['details']}, {paths['markdown']}")
    return table



def evaluate_recon(gt_root: str | Path, recon_dirs: list[str | Path], render_root: str | Path, output_file: str | Path,
                   options: EvalOptions, camera: CameraSettings, device: torch.device, rasterizer: str = "auto",
                   log: Callable[[str], None] = print) -> dict:
    """Render each reconstruct.py folder into ``render_root`` (kept), then score those objects."""
    locate_weights(check_metrics(options.metrics), options.weights)  # a missing file stops before any rendering
    names = [render_recon(d, gt_root, render_root, camera, device, rasterizer, log) for d in recon_dirs]
    if len(set(names)) != len(names):
        raise UserError(f"--recon: two folders share an object name ({', '.join(names)}); each must be named after its object")
    options = dataclasses.replace(options, objects=names)
    camera_protocol = {"camera": {"distance": camera.distance, "fovy_deg": camera.fovy_deg,
                                  "input_elevation_deg": camera.input_elevation_deg, "align": camera.align,
                                  "recon": [str(d) for d in recon_dirs]}}
    return evaluate(gt_root, render_root, output_file, options, device, log, camera_protocol)
