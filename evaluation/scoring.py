"""Scores a paired layout: per frame, per view, per object, and the average over objects.

Aggregation is the official script's: a view's score is the mean over its frames, an object's the
mean over its four views, and "average" the mean over objects. Each finished object is cached
beside the output (keyed by the settings and the image files' sizes and times), so an interrupted
batch resumes where it stopped and a rerun with anything changed recomputes.
"""
import hashlib
import json
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from evaluation.layout import ObjectPair, ViewPair, load_view
from evaluation.protocol import IMAGE_SIZE
from utils.images import write_json

# (N,512,512,3) uint8 prediction and ground truth -> (N,) scores, one per frame.
ImageMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]
# One view's prediction and ground-truth frame paths -> one score for the whole clip.
VideoMetric = Callable[[tuple[Path, ...], tuple[Path, ...]], float]


def score_view(pair: ViewPair, image_metrics: Mapping[str, ImageMetric],
               video_metrics: Mapping[str, VideoMetric]) -> dict:
    """``{"frames": {frame: {metric: v}}, "mean": {metric: v}}`` for one view."""
    frames: dict[str, dict[str, float]] = {name: {} for name in pair.frames}
    mean: dict[str, float] = {}
    if image_metrics:
        pred, gt = load_view(pair.pred, IMAGE_SIZE), load_view(pair.gt, IMAGE_SIZE)
        for metric, fn in image_metrics.items():
            values = np.asarray(fn(pred, gt), dtype=np.float64)
            for name, value in zip(pair.frames, values):
                frames[name][metric] = float(value)
            mean[metric] = float(values.mean())
    for metric, fn in video_metrics.items():
        mean[metric] = float(fn(pair.pred, pair.gt))
    return {"frames": frames, "mean": mean}


def score_object(pair: ObjectPair, image_metrics: Mapping[str, ImageMetric],
                 video_metrics: Mapping[str, VideoMetric]) -> dict:
    """``{"views": {"eval_v": view result}, "mean": {metric: mean over views}}``."""
    views = {f"eval_{v.view}": score_view(v, image_metrics, video_metrics) for v in pair.views}
    metrics = [*image_metrics, *video_metrics]
    mean = {m: float(np.mean([view["mean"][m] for view in views.values()])) for m in metrics}
    return {"views": views, "mean": mean}


def inputs_signature(pair: ObjectPair) -> str:
    """A digest of every input file's name, size and modification time."""
    digest = hashlib.sha256()
    for view in pair.views:
        for path in (*view.gt, *view.pred):
            stat = path.stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def score_layout(pairs: list[ObjectPair], image_metrics: Mapping[str, ImageMetric],
                 video_metrics: Mapping[str, VideoMetric], settings: dict, cache_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> dict[str, dict]:
    """Score every object (reusing cached ones whose settings and inputs are unchanged)."""
    results = {}
    for pair in pairs:
        key = {"settings": settings, "inputs": inputs_signature(pair)}
        cache = cache_dir / f"{pair.name}.json" if cache_dir is not None else None
        if cache is not None and cache.is_file():
            cached = json.loads(cache.read_text())
            if cached.get("key") == key:
                log(f"{pair.name}: unchanged since the last run, reusing {cache}")
                results[pair.name] = cached["result"]
                continue
        result = score_object(pair, image_metrics, video_metrics)
        log(f"{pair.name}: " + ", ".join(f"{m} {v:.4f}" for m, v in result["mean"].items()))
        if cache is not None:
            write_json(cache, {"key": key, "result": result})
        results[pair.name] = result
    return results
