"""Stage 1 over several processes (GPUs, nodes) with torch.distributed, as launched by torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node=4 generate.py ... --device cuda

Every process takes a contiguous block of frames (:class:`FrameShard`, any frame count: blocks differ by
at most one frame, cut by :func:`split_frames`, the same helper the sampler uses to split frames over the
devices of one process). At every DDIM step the processes all-gather their frames' spatial volumes, so
the temporal smoothing (``get_w``) sees every frame; at the end the images are gathered and rank 0
writes them. Every process makes the same full-size random draws as a single-process run and keeps its
own frames' slice, so the same seed gives the same images. A single process (no ``WORLD_SIZE`` > 1 in
the environment) never initialises torch.distributed.
"""
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from utils.errors import UserError


def split_frames(num_frames: int, num_groups: int) -> list[range]:
    """Contiguous, near-equal frame ranges (sizes differ by at most one); empty groups are dropped."""
    base, extra = divmod(num_frames, num_groups)
    ranges, start = [], 0
    for g in range(num_groups):
        size = base + (g < extra)
        if size:
            ranges.append(range(start, start + size))
        start += size
    return ranges


@dataclass(frozen=True)
class FrameShard:
    """The frames of one process among ``world_size`` processes of ``group`` (None: a single process).

    ``local`` cuts this process's frames out of a tensor over all frames; ``gather`` rebuilds the tensor
    over all frames from every process's part (a collective: every process of the group calls it).
    """
    num_frames: int
    rank: int = 0
    world_size: int = 1
    group: object = field(default=None, compare=False)

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size <= self.num_frames:
            raise ValueError(f"FrameShard: rank {self.rank} of {self.world_size} processes needs at least "
                             f"one frame each, got {self.num_frames} frames")

    @classmethod
    def of_group(cls, num_frames: int, group=None) -> "FrameShard":
        """This process's shard in ``group`` (a torch.distributed process group), or all frames for None."""
        if group is None:
            return cls(num_frames)
        return cls(num_frames, dist.get_rank(group), dist.get_world_size(group), group)

    @property
    def ranges(self) -> list[range]:
        """Every process's frames, by rank."""
        return split_frames(self.num_frames, self.world_size)

    @property
    def frames(self) -> range:
        """This process's frames."""
        return self.ranges[self.rank]

    def local(self, full: Tensor) -> Tensor:
        """(num_frames, ...) -> this process's (len(frames), ...) rows (a view)."""
        return full[self.frames.start:self.frames.stop]

    def gather(self, local: Tensor) -> Tensor:
        """This process's (len(frames), ...) rows -> (num_frames, ...) on every process, in frame order.

        Blocks are padded to the largest one, as collectives want equal sizes on every process.
        """
        if self.world_size == 1:
            return local
        if local.shape[0] != len(self.frames):
            raise ValueError(f"FrameShard.gather: rank {self.rank} holds frames {self.frames} but got "
                             f"{local.shape[0]} rows")
        ranges = self.ranges
        size = max(len(r) for r in ranges)
        padded = local.new_zeros((size, *local.shape[1:]))
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in ranges]
        dist.all_gather(parts, padded.contiguous(), group=self.group)
        return torch.cat([part[:len(r)] for part, r in zip(parts, ranges)], 0)


# ---------------------------------------------------------------- processes


def launched_distributed(env: Mapping[str, str] = os.environ) -> bool:
    """True when a launcher (torchrun) started more than one process: ``WORLD_SIZE`` > 1."""
    try:
        return int(env.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        raise UserError(f"environment variable WORLD_SIZE={env['WORLD_SIZE']!r} is not a number") from None


def process_devices(devices: Sequence[torch.device], local_rank: int, local_world_size: int) -> list[torch.device]:
    """The device of the process with ``local_rank`` on its node: the CPU, or the local_rank-th GPU listed."""
    devices = [torch.device(d) for d in devices]
    if all(d.type == "cpu" for d in devices):
        return [torch.device("cpu")]
    if any(d.type == "cpu" for d in devices):
        raise UserError(f"--device mixes cpu and GPUs ({', '.join(map(str, devices))}); use one kind")
    if local_world_size > len(devices):
        raise UserError(f"torchrun started {local_world_size} processes on this node but --device gives "
                        f"{len(devices)} GPU(s) ({', '.join(map(str, devices))}); use --nproc_per_node="
                        f"{len(devices)} or list more GPUs")
    return [devices[local_rank]]


@dataclass
class Session:
    """Where this process stands: its rank among ``world_size`` processes and the devices it computes on.

    A single process has rank 0 of 1 and every device it was given (the sampler splits frames over them).
    """
    devices: list[torch.device]
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes the outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def has_frames(self, num_frames: int) -> bool:
        """Whether this process gets frames: with fewer frames than processes the last ranks stay idle."""
        return self.rank < num_frames

    def frame_group(self, num_frames: int):
        """The process group that shares ``num_frames`` frames (None for a single process): the whole
        world, or its first ``num_frames`` ranks. A collective: every process must call it."""
        if not self.distributed:
            return None
        if num_frames >= self.world_size:
            return dist.group.WORLD
        return dist.new_group(ranks=list(range(num_frames)))

    def barrier(self) -> None:
        """Wait for every process (no-op for a single process)."""
        if self.distributed:
            dist.barrier()


@contextmanager
def distributed_session(devices: Sequence[torch.device], env: Mapping[str, str] = os.environ) -> Iterator[Session]:
    """A :class:`Session` for this process. Under torchrun (``WORLD_SIZE`` > 1) it joins the process group
    from the launcher's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR/PORT),
    with nccl for GPUs and gloo for the CPU, takes one device per process and leaves the group on exit.
    A single process gets ``Session(devices)`` and torch.distributed is not touched.
    """
    devices = [torch.device(d) for d in devices]
    if not launched_distributed(env):
        yield Session(devices)
        return
    rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
    local_rank = int(env.get("LOCAL_RANK", "0"))
    local_world_size = int(env.get("LOCAL_WORLD_SIZE", str(world_size)))
    mine = process_devices(devices, local_rank, local_world_size)
    if mine[0].type == "cuda":
        torch.cuda.set_device(mine[0])
    backend = "nccl" if mine[0].type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                            **({"device_id": mine[0]} if backend == "nccl" else {}))
    try:
        yield Session(mine, rank, world_size)
    finally:
        dist.destroy_process_group()
