"""Running out of memory as a user error: which stage-1 setting to lower, instead of a traceback."""
from contextlib import contextmanager
from typing import Iterator

import torch

from utils.errors import UserError

CPU_ALLOCATOR_FAILURE = "can't allocate memory"  # the CPU allocator's RuntimeError, e.g. DefaultCPUAllocator


def is_out_of_memory(err: BaseException) -> bool:
    """A CUDA out-of-memory error, or a failed CPU allocation."""
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and CPU_ALLOCATOR_FAILURE in str(err))


def out_of_memory_advice(device: torch.device, frames: int, views: int, batch_view_num: int,
                         batch_frame_num: int, precision: str) -> str:
    """One line: what ran out, with which settings, and the settings that lower the peak memory."""
    device = torch.device(device)
    fixes = []
    if batch_frame_num > 1:
        fixes.append(f"lower --batch_frame_num (frames per UNet call, now {batch_frame_num}; try "
                     f"{batch_frame_num // 2}) or --batch_view_num (views per call, now {batch_view_num}); "
                     f"the images do not change")
    elif batch_view_num > 1:
        fixes.append(f"lower --batch_view_num (views per UNet call, now {batch_view_num}; try "
                     f"{batch_view_num // 2}); the images do not change")
    if device.type == "cuda":
        if frames > 1:
            fixes.append("put fewer frames on each GPU (list more GPUs: DEVICES=0,1,.. in run.sh, or "
                         "torchrun --nproc_per_node=K generate.py ...)")
        if precision == "fp32":
            fixes.append("use --precision fp16 or bf16")
    else:
        fixes.append("generate fewer frames (--frame_num) or run on a GPU")
    what = "CUDA ran out of memory" if device.type == "cuda" else "the CPU ran out of memory"
    return (f"{what} on {device} generating {frames} frame(s) x {views} views there, {batch_frame_num} "
            f"frame(s) x {batch_view_num} views per UNet call, --precision {precision}: {'; or '.join(fixes)}. "
            f"python -m tools.bench_generate measures the peak memory of each setting")


@contextmanager
def explain_out_of_memory(device: torch.device, frames: int, views: int, batch_view_num: int,
                          batch_frame_num: int, precision: str) -> Iterator[None]:
    """Turn an out-of-memory error raised inside the block into a UserError naming the settings to lower.

    frames: frames on this process's device (the most of any device); views: views per frame;
    batch_view_num x batch_frame_num: frame-views per UNet call; precision: fp16 / bf16 / fp32.
    """
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        raise UserError(out_of_memory_advice(device, frames, views, batch_view_num, batch_frame_num,
                                             precision)) from err
