"""Stage 4: per-pixel confidence of every view of every frame (Efficient4D's video_confidence.py).

A view of frame k is compared with the RIFE interpolation of the same view in its neighbours
(k-1, k+1) and (k-2, k+2); where the interpolation disagrees with the frame, the frame is
temporally inconsistent and gets low confidence. Per frame:

* frames 0 and N-1: confidence 1 everywhere;
* frames 1 and N-2: the pair (k-1, k+1) only;
* other frames: the mean of the errors of both pairs.

Two error maps per view: SSIM error ``1 - mean_c ssim_map`` and RGB error ``sum_c |frame - warp|``.
Each becomes ``conf = max(err) - err``, then ``clamp(conf / max(conf), 0, 1)``, then uint8 by
truncation of ``conf * 255`` (the max is per view). Images are RGB here (skimage reads them so in
the original), unlike frame_interpolation's BGR.

``confidence_maps`` batches views of several frames and pairs per network call;
``confidence_maps_per_view`` is the plain loop of the original (one view, one pair per call),
kept as the reference the batched path is tested against.
"""
import functools
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from rife.ifnet import IFNet
from rife.model import Inference, batch_size_for, chunked_inference, default_workers, inference, load_flownet
from utils.images import list_frames, read_rgb, split_views, write_png
from utils.ssim import ssim
from utils.strips import NUM_VIEWS, check_strip_sizes


def pair_offsets(frame: int, num_frames: int) -> tuple[int, ...]:
    """Neighbour distances d whose pair (frame - d, frame + d) scores ``frame``: (), (1,) or (1, 2)."""
    if frame in (0, num_frames - 1):
        return ()
    if frame in (1, num_frames - 2):
        return (1,)
    return (1, 2)


def view_errors(infer: Inference, current: torch.Tensor, prev: torch.Tensor, nxt: torch.Tensor,
                plain_kernels: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and RGB error maps (B,H,W) of views ``current`` vs infer(prev, nxt), all (B,3,H,W) in [0,1]."""
    warped = infer(prev, nxt)
    ssim_map = ssim(current, warped, full=True, channels_last=not plain_kernels)
    return 1 - ssim_map.mean(1), (current - warped).abs().sum(1)


def error_to_confidence(err: torch.Tensor) -> torch.Tensor:
    """(B,H,W) error maps -> (B,H,W) uint8 confidence, normalised per map."""
    conf = err.amax(dim=(-2, -1), keepdim=True) - err
    conf = torch.clamp(conf / conf.amax(dim=(-2, -1), keepdim=True), 0, 1)
    # A constant error map gives 0/0; the original's float NaN -> uint8 cast yields 0 on x86.
    return (torch.nan_to_num(conf, nan=0.0) * 255).to(torch.uint8)


def frame_confidence(pair_errors: Sequence[tuple[torch.Tensor, torch.Tensor]],
                     shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair (ssim_err, rgb_err), each (V,H,W) -> (ssim_conf, rgb_conf) (V,H,W) uint8.

    No pairs (first and last frame): full confidence. Two pairs: their errors averaged.
    """
    if not pair_errors:
        full = torch.full(shape, 255, dtype=torch.uint8)
        return full, full
    if len(pair_errors) == 1:
        ssim_err, rgb_err = pair_errors[0]
    else:
        (ssim1, rgb1), (ssim2, rgb2) = pair_errors
        ssim_err, rgb_err = 0.5 * (ssim1 + ssim2), 0.5 * (rgb1 + rgb2)
    return error_to_confidence(ssim_err), error_to_confidence(rgb_err)


def as_strip(maps: torch.Tensor) -> np.ndarray:
    """(V,H,W) -> (H,V*W) numpy, views side by side."""
    return torch.cat(list(maps), dim=1).cpu().numpy()


def strip_views(strip: np.ndarray, num_views: int, device: torch.device) -> torch.Tensor:
    """(H,V*H,3) uint8 -> (V,H,H,3) float32 in [0,1]; ``as_batch`` makes network input of it."""
    return torch.from_numpy(split_views(strip, num_views)).to(device).float() / 255


def as_batch(views: Sequence[torch.Tensor]) -> torch.Tensor:
    """(H,W,3) views -> (B,3,H,W), channels-last strided.

    The original permutes HWC views without a copy; keeping that memory layout keeps its
    conv kernels, hence its exact results.
    """
    return torch.stack(list(views)).permute(0, 3, 1, 2)


def confidence_maps(strips: Sequence[np.ndarray], flownet: IFNet, num_views: int = NUM_VIEWS,
                    batch_size: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (k, ssim_conf, rgb_conf) for every frame k in order; each conf is (H, V*H) uint8.

    ``strips`` are (H, V*H, 3) uint8 RGB frames. The views of all (frame, pair) jobs are queued in
    frame order and go through the network ``batch_size`` at a time (default: the device's pixel
    budget); a frame is yielded as soon as its last view is scored.
    """
    device = next(flownet.parameters()).device
    num_frames, size = len(strips), strips[0].shape[0]
    shape = (num_views, size, size)
    if batch_size is None:
        batch_size = batch_size_for(device, size, size)
    workers = default_workers(device)
    infer = chunked_inference(flownet, batch_size, workers)
    rows_per_step = batch_size * workers
    rows = [(k, d, v) for k in range(num_frames) for d in pair_offsets(k, num_frames) for v in range(num_views)]
    remaining = [len(pair_offsets(k, num_frames)) * num_views for k in range(num_frames)]
    cache: dict[int, torch.Tensor] = {}

    def views(k: int) -> torch.Tensor:
        if k not in cache:
            cache[k] = strip_views(strips[k], num_views, device)
        return cache[k]

    errors: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}  # (frame, distance) -> (V,H,W) x2
    next_frame = 0
    for start in range(0, max(len(rows), 1), rows_per_step):
        chunk = rows[start:start + rows_per_step]
        if chunk:
            current = as_batch(views(k)[v] for k, _, v in chunk)
            prev = as_batch(views(k - d)[v] for k, d, v in chunk)
            nxt = as_batch(views(k + d)[v] for k, d, v in chunk)
            for (k, d, v), ssim_err, rgb_err in zip(chunk, *view_errors(infer, current, prev, nxt)):
                if (k, d) not in errors:
                    errors[k, d] = (ssim_err.new_empty(shape), rgb_err.new_empty(shape))
                errors[k, d][0][v], errors[k, d][1][v] = ssim_err, rgb_err
                remaining[k] -= 1
        while next_frame < num_frames and remaining[next_frame] == 0:
            k = next_frame
            ssim_conf, rgb_conf = frame_confidence([errors.pop((k, d)) for d in pair_offsets(k, num_frames)], shape)
            yield k, as_strip(ssim_conf), as_strip(rgb_conf)
            # Later rows score frames > k, whose neighbours are frames >= k - 1.
            cache.pop(k - 2, None)
            next_frame += 1


def confidence_maps_per_view(strips: Sequence[np.ndarray], flownet: IFNet,
                             num_views: int = NUM_VIEWS) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The original's loop (frame, view, pair; one view per network call) with the plain SSIM: the
    reference for ``confidence_maps`` (pass a ``load_flownet(..., plain_kernels=True)`` network for
    the original's kernels throughout)."""
    device = next(flownet.parameters()).device
    num_frames, size = len(strips), strips[0].shape[0]
    infer = functools.partial(inference, flownet)
    for k in range(num_frames):
        near = {j: strip_views(strips[j], num_views, device) for j in range(max(k - 2, 0), min(k + 3, num_frames))}
        ssim_maps, rgb_maps = [], []
        for v in range(num_views):
            errs = [view_errors(infer, as_batch([near[k][v]]), as_batch([near[k - d][v]]),
                                as_batch([near[k + d][v]]), plain_kernels=True)
                    for d in pair_offsets(k, num_frames)]
            ssim_conf, rgb_conf = frame_confidence(errs, (1, size, size))
            ssim_maps.append(ssim_conf)
            rgb_maps.append(rgb_conf)
        yield k, as_strip(torch.cat(ssim_maps)), as_strip(torch.cat(rgb_maps))


def write_confidence_maps(root: str | os.PathLike, model: str, device: torch.device,
                          num_views: int = NUM_VIEWS) -> Path:
    """Score every frame of ``root/data`` and write ``root/data/conf_map/{k:02d}_{ssim,rgb}.png``; return that folder.

    ``model`` is a flownet.pkl or its folder (``random``: seeded random weights). Every frame is read
    and checked before the network is loaded and anything is written.
    """
    data = Path(root) / "data"
    paths = list_frames(data)
    strips = [read_rgb(p) for p in paths]
    check_strip_sizes([s.shape[:2] for s in strips], paths, num_views)
    flownet = load_flownet(model, device)
    conf_dir = data / "conf_map"
    for k, ssim_conf, rgb_conf in confidence_maps(strips, flownet, num_views):
        write_png(conf_dir / f"{k:02d}_ssim.png", ssim_conf)
        write_png(conf_dir / f"{k:02d}_rgb.png", rgb_conf)
    return conf_dir
