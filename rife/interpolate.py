"""Stage 2: RIFE frames between consecutive generated frames, as Efficient4D's frame_interpolation.py.

Pair mode reproduces the original script for one pair of PNGs. The original reads with
``cv2.imread``, so the network sees **BGR** (BGRA for PNGs with alpha) channel order; we read
with PIL and reorder to match, then write the files back in RGB. Images are zero-padded on the
right and bottom to a multiple of 32 once, every interpolation runs on the padded tensors (so
later steps see the network's output in the padding, as in the original), and each saved frame
is ``(t * 255).byte()`` (truncation) cropped back to the input size.

Batch mode does every consecutive pair of ``root/{i}.png`` in one process with the model loaded
once and pairs batched through the network: ``root/interp/{i}_{i+1}/img{j}.png``. By default
RIFE runs on the whole strip, as the original; ``per_view`` runs each H x H view separately, so
flow never crosses view borders.
"""
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from rife.ifnet import IFNet
from rife.model import Inference, batch_size_for, chunked_inference, default_workers, pad_to_multiple, padded_size
from utils.errors import UserError
from utils.images import join_views, split_views, write_png

NUM_VIEWS = 16

def read_cv2_order(path: str | os.PathLike) -> np.ndarray:
    """(H,W,3) BGR or (H,W,4) BGRA uint8: what ``cv2.imread(path, IMREAD_UNCHANGED)`` returns for an 8-bit PNG."""
    path = Path(path)
    if path.suffix.lower() == ".exr":
        raise UserError(f"{path}: EXR input is not supported; convert the frames to 8-bit PNG")
    try:
        with Image.open(path) as img:
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            rgb = np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    except FileNotFoundError:
        raise UserError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read image {path} ({err}); replace or remove the file") from None
    return np.concatenate([rgb[..., 2::-1], rgb[..., 3:]], axis=-1)


def cv2_order_to_rgb(image: np.ndarray) -> np.ndarray:
    """BGR(A) -> RGB(A); the same swap as the read (it is its own inverse)."""
    return np.concatenate([image[..., 2::-1], image[..., 3:]], axis=-1)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B,H,W,C) uint8 -> (B,C,H,W) float32 in [0,1] on ``device``, channels-last strided.

    As the original, whose ``torch.tensor(img.transpose(2, 0, 1)) / 255.`` keeps numpy's HWC
    strides: the memory layout decides which conv kernels run, hence the last bits of the result.
    """
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2) / 255.


def to_uint8(images: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(B,C,PH,PW) float in [0,1] -> (B,height,width,C) uint8 by truncation, cropped to the input size."""
    return (images * 255).byte()[..., :height, :width].permute(0, 2, 3, 1).cpu().numpy()


def interpolation_schedule(infer: Inference, img0: torch.Tensor, img1: torch.Tensor, *, cycle2: bool = False,
                           ratio: float = 0.0, rthreshold: float = 0.02, rmaxcycles: int = 8,
                           exp: int = 4) -> list[torch.Tensor]:
    """The original's frame sequence for pairs img0, img1 (B,C,H,W), each entry (B,C,H,W).

    cycle2: [img0, t=.25, t=.5, t=.75, img1], the .5 frame first and the quarters from it.
    ratio (non-zero): [img0, frame nearest ``ratio`` by bisection, img1].
    otherwise ``exp`` rounds of midpoint insertion: 2**exp + 1 frames.
    Every pair in the batch takes the same path, so each step is one batched ``infer`` call.
    """
    if cycle2:
        img05 = infer(img0, img1)
        img025, img075 = infer(torch.cat((img0, img05)), torch.cat((img05, img1))).chunk(2)
        return [img0, img025, img05, img075, img1]
    if ratio:
        return [img0, bisect_ratio(infer, img0, img1, ratio, rthreshold, rmaxcycles), img1]
    frames = [img0, img1]
    for _ in range(exp):
        batch = img0.shape[0]
        mids = infer(torch.cat(frames[:-1]), torch.cat(frames[1:])).split(batch)
        frames = [f for pair in zip(frames[:-1], mids) for f in pair] + [img1]
    return frames


def bisect_ratio(infer: Inference, img0: torch.Tensor, img1: torch.Tensor, ratio: float, rthreshold: float,
                 rmaxcycles: int) -> torch.Tensor:
    """The frame at ``ratio`` (0..1) by repeated midpoints, stopping within rthreshold/2 or after rmaxcycles."""
    if ratio <= rthreshold / 2:
        return img0
    if ratio >= 1.0 - rthreshold / 2:
        return img1
    lo, hi, lo_ratio, hi_ratio = img0, img1, 0.0, 1.0
    middle = img0
    for _ in range(rmaxcycles):
        middle = infer(lo, hi)
        middle_ratio = (lo_ratio + hi_ratio) / 2
        if ratio - rthreshold / 2 <= middle_ratio <= ratio + rthreshold / 2:
            break
        if ratio > middle_ratio:
            lo, lo_ratio = middle, middle_ratio
        else:
            hi, hi_ratio = middle, middle_ratio
    return middle


def check_schedule_args(exp: int, ratio: float, rthreshold: float, rmaxcycles: int) -> None:
    if exp < 0:
        raise UserError(f"--exp must be >= 0, got {exp}")
    if not 0.0 <= ratio <= 1.0:
        raise UserError(f"--ratio must be between 0 and 1, got {ratio}")
    if rthreshold < 0:
        raise UserError(f"--rthreshold must be >= 0, got {rthreshold}")
    if rmaxcycles < 1:
        raise UserError(f"--rmaxcycles must be >= 1, got {rmaxcycles}")


def write_frames(save_path: Path, frames: Sequence[np.ndarray]) -> list[Path]:
    """Write (H,W,C) BGR(A) uint8 frames as ``img{i}.png`` (RGB(A) files), atomically."""
    paths = [save_path / f"img{i}.png" for i in range(len(frames))]
    for path, frame in zip(paths, frames):
        write_png(path, cv2_order_to_rgb(frame))
    return paths


def interpolate_pair(flownet: IFNet, img0_path: str | os.PathLike, img1_path: str | os.PathLike,
                     save_path: str | os.PathLike, *, cycle2: bool = False, ratio: float = 0.0,
                     rthreshold: float = 0.02, rmaxcycles: int = 8, exp: int = 4) -> list[Path]:
    """The original ``frame_interpolation.py --img A B``: writes ``save_path/img{i}.png``; returns the paths."""
    check_schedule_args(exp, ratio, rthreshold, rmaxcycles)
    a, b = read_cv2_order(img0_path), read_cv2_order(img1_path)
    if a.shape != b.shape:
        raise UserError(f"{img0_path} is {a.shape[1]}x{a.shape[0]}x{a.shape[2]} but {img1_path} is "
                        f"{b.shape[1]}x{b.shape[0]}x{b.shape[2]}; both frames must have the same size and channels")
    device = next(flownet.parameters()).device
    height, width = a.shape[:2]
    img0, img1 = pad_to_multiple(to_tensor(np.stack([a, b]), device)).unbind(0)
    # One frame per call with all of torch's threads, as the original process: the same bits as it.
    infer = chunked_inference(flownet, batch_size=1)
    frames = interpolation_schedule(infer, img0[None], img1[None], cycle2=cycle2,
                                    ratio=ratio, rthreshold=rthreshold, rmaxcycles=rmaxcycles, exp=exp)
    return write_frames(Path(save_path), [to_uint8(f, height, width)[0] for f in frames])


def read_strips(root_path: Path, num_frame: int, num_views: int = NUM_VIEWS) -> list[Path]:
    """Check ``root/{i}.png`` for i < num_frame: all present, one size, views x height wide."""
    if num_frame < 2:
        raise UserError(f"--num_frame must be at least 2 to interpolate between frames, got {num_frame}")
    if not root_path.is_dir():
        raise UserError(f"--root_path {root_path} does not exist; pass the generate.py output folder (output/NAME)")
    paths = [root_path / f"{i}.png" for i in range(num_frame)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{root_path} lacks {len(missing)} of the {num_frame} frames ({', '.join(missing[:4])}"
                        f"{', ...' if len(missing) > 4 else ''}); run generate.py first or lower --num_frame")
    sizes = {}
    for path in paths:
        try:
            with Image.open(path) as img:
                sizes.setdefault(img.size, path)
        except (UnidentifiedImageError, OSError) as err:
            raise UserError(f"cannot read image {path} ({err}); replace or remove the file") from None
    if len(sizes) > 1:
        (size0, p0), (size1, p1) = list(sizes.items())[:2]
        raise UserError(f"frames differ in size: {p0} is {size0[0]}x{size0[1]} but {p1} is {size1[0]}x{size1[1]}; "
                        "all frames of a video must have the same size")
    width, height = next(iter(sizes))
    if width != num_views * height:
        raise UserError(f"{paths[0]} is {width}x{height}; a {num_views}-view strip must be {num_views} x its "
                        f"height wide ({num_views * height}x{height})")
    return paths


def views_as_batch(strips: np.ndarray, num_views: int) -> np.ndarray:
    """(B,H,V*H,C) -> (B*V,H,H,C), pair-major."""
    return np.concatenate([split_views(s, num_views) for s in strips])


def views_as_strips(views: np.ndarray, num_views: int) -> np.ndarray:
    """(B*V,H,H,C) -> (B,H,V*H,C), the inverse of ``views_as_batch``."""
    return np.stack([join_views(views[i:i + num_views]) for i in range(0, views.shape[0], num_views)])


def read_frame(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """``read_cv2_order`` that insists on the video's (H,W,C)."""
    image = read_cv2_order(path)
    if image.shape != shape:
        raise UserError(f"{path} is {image.shape[1]}x{image.shape[0]} with {image.shape[2]} channels but the "
                        f"first frame is {shape[1]}x{shape[0]} with {shape[2]}; all frames must match")
    return image


def interpolate_video(flownet: IFNet, root_path: str | os.PathLike, num_frame: int, *, cycle2: bool = False,
                      ratio: float = 0.0, rthreshold: float = 0.02, rmaxcycles: int = 8, exp: int = 4,
                      per_view: bool = False, num_views: int = NUM_VIEWS,
                      batch_size: int | None = None) -> list[Path]:
    """Every pair (i, i+1), i < num_frame - 1, of ``root/{i}.png`` -> ``root/interp/{i}_{i+1}/img{j}.png``.

    The same frames as running pair mode once per pair. ``batch_size`` images (strips, or views
    with ``per_view``) go through the network per call; default: the device's pixel budget.
    Returns the folders written, in pair order.
    """
    check_schedule_args(exp, ratio, rthreshold, rmaxcycles)
    root_path = Path(root_path)
    paths = read_strips(root_path, num_frame, num_views)
    device = next(flownet.parameters()).device
    frames_u8 = [read_cv2_order(paths[0])]
    height, width = frames_u8[0].shape[:2]
    unit_h, unit_w = (height, height) if per_view else (height, width)
    if batch_size is None:
        batch_size = batch_size_for(device, *padded_size(unit_h, unit_w))
    workers = default_workers(device)
    # Enough pairs per step that every worker gets a full batch.
    pairs_per_chunk = max(1, batch_size * workers // num_views) if per_view else batch_size * workers
    infer = chunked_inference(flownet, batch_size, workers)
    folders = []
    for start in range(0, num_frame - 1, pairs_per_chunk):
        pairs = range(start, min(start + pairs_per_chunk, num_frame - 1))
        # frames_u8 holds frames start .. pairs.stop; each frame is read once.
        frames_u8 += [read_frame(paths[i], frames_u8[0].shape) for i in range(start + len(frames_u8), pairs.stop + 1)]
        img0, img1 = np.stack(frames_u8[:-1]), np.stack(frames_u8[1:])
        if per_view:
            img0, img1 = views_as_batch(img0, num_views), views_as_batch(img1, num_views)
        outputs = interpolation_schedule(infer, pad_to_multiple(to_tensor(img0, device)),
                                         pad_to_multiple(to_tensor(img1, device)), cycle2=cycle2, ratio=ratio,
                                         rthreshold=rthreshold, rmaxcycles=rmaxcycles, exp=exp)
        outputs = [to_uint8(f, unit_h, unit_w) for f in outputs]
        if per_view:
            outputs = [views_as_strips(f, num_views) for f in outputs]
        for k, i in enumerate(pairs):
            folder = root_path / "interp" / f"{i}_{i + 1}"
            write_frames(folder, [f[k] for f in outputs])
            folders.append(folder)
        frames_u8 = frames_u8[-1:]
    return folders
