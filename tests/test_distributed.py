"""Stage 1 over torch.distributed: frame shards for any frame count, the gloo gather, and generate.py under
torchrun with 2 CPU processes giving the images of a single-process run."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from ldm.distributed import FrameShard, Session, distributed_session, launched_distributed, process_devices, \
    split_frames
from tools.synthetic import make_video
from utils.errors import UserError
from tolerances import uint8_close


@pytest.mark.parametrize("num_frames,world_size", [(3, 2), (16, 3), (5, 5), (7, 4)])
def test_shards_cover_every_frame_once_in_order(num_frames, world_size):
    shards = [FrameShard(num_frames, rank, world_size) for rank in range(world_size)]
    frames = [f for shard in shards for f in shard.frames]
    assert frames == list(range(num_frames))
    sizes = [len(shard.frames) for shard in shards]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert [shard.ranges for shard in shards] == [split_frames(num_frames, world_size)] * world_size
    full = torch.arange(num_frames * 2).view(num_frames, 2)
    assert torch.equal(torch.cat([shard.local(full) for shard in shards]), full)


def test_single_process_shard_is_everything_without_torch_distributed():
    shard = FrameShard.of_group(4, None)
    full = torch.randn(4, 3)
    assert shard.frames == range(4) and shard.local(full) is not None and shard.gather(full) is full
    with pytest.raises(ValueError):
        FrameShard(2, rank=0, world_size=3)  # more processes than frames: the pipeline idles the extra ones


def test_single_process_session_does_not_initialise_torch_distributed():
    with distributed_session(["cpu"], env={}) as session:
        assert session == Session([torch.device("cpu")]) and session.is_main and not session.distributed
        assert session.frame_group(3) is None
    assert not torch.distributed.is_initialized()
    assert not launched_distributed({"WORLD_SIZE": "1"}) and launched_distributed({"WORLD_SIZE": "2"})


def test_each_process_gets_its_own_gpu():
    gpus = [torch.device("cuda", i) for i in range(4)]
    assert process_devices(gpus, local_rank=2, local_world_size=4) == [torch.device("cuda", 2)]
    assert process_devices(["cpu"], local_rank=1, local_world_size=2) == [torch.device("cpu")]
    with pytest.raises(UserError, match="--nproc_per_node=2"):
        process_devices(gpus[:2], local_rank=0, local_world_size=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank: int, world_size: int, port: int) -> None:
    env = {"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
           "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    os.environ.update(env)
    with distributed_session(["cpu"], env) as session:
        assert session.rank == rank and session.distributed and session.devices == [torch.device("cpu")]
        for num_frames in (3, 5):  # uneven blocks: the gather pads and trims
            full = torch.arange(num_frames * 6, dtype=torch.float32).view(num_frames, 2, 3)
            shard = FrameShard.of_group(num_frames, session.frame_group(num_frames))
            assert torch.equal(shard.gather(shard.local(full).clone()), full)
        # fewer frames than processes: the extra rank idles, the others gather among themselves
        group = session.frame_group(1)
        assert session.has_frames(1) == (rank == 0)
        if session.has_frames(1):
            one = torch.ones(1, 2)
            assert torch.equal(FrameShard.of_group(1, group).gather(one), one)
        session.barrier()


def test_gloo_gather_rebuilds_all_frames_in_two_processes():
    mp.spawn(_gather_worker, args=(2, _free_port()), nprocs=2, join=True)


def test_torchrun_with_two_cpu_processes_gives_the_single_process_images(repo_root, tmp_path):
    """3 frames over 2 gloo processes (2 + 1 frames): the volumes are gathered every step for the
    smoothing, every process draws the single-process noise, rank 0 writes. CPU kernels round a batch
    of 2 or 1 frames slightly differently from a batch of 3, hence the uint8 tolerance."""
    make_video(tmp_path / "video", num_frames=3, size=64, seed=4)
    flags = ["--cfg", "configs/tiny.yaml", "--ckpt", "random", "--input", str(tmp_path / "video"),
             "--elevation", "10", "--crop_size", "40", "--frame_num", "3", "--sample_steps", "2",
             "--decomposed_sampling", "--smooth_filter", "--is_cyc", "1", "--device", "cpu"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # same threads in both runs (torchrun's default)
    for output, launcher in (("single", []), ("torchrun", ["-m", "torch.distributed.run", "--standalone",
                                                            "--nproc_per_node", "2"])):
        result = subprocess.run([sys.executable, *launcher, "generate.py", *flags, "--output", str(tmp_path / output)],
                                cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("2 processes share the 3 frame(s)") == 1  # only rank 0 talks
    for i in range(3):
        single = np.asarray(Image.open(tmp_path / "single" / f"{i}.png"))
        distributed = np.asarray(Image.open(tmp_path / "torchrun" / f"{i}.png"))
        assert single.shape == distributed.shape == (64, 16 * 64, 3)
        uint8_close(distributed, single)
    assert sorted(p.name for p in (tmp_path / "torchrun").iterdir()) == ["0.png", "1.png", "2.png"]
