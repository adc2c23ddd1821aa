"""Running out of memory names the settings to lower instead of printing a traceback."""
import pytest
import torch

from ldm import pipeline
from ldm.models.sampler import SyncDDIMSampler
from ldm.oom import explain_out_of_memory
from tools.synthetic import make_video
from utils.errors import UserError


def test_cuda_out_of_memory_names_the_settings_to_lower():
    with pytest.raises(UserError) as caught:
        with explain_out_of_memory(torch.device("cuda", 0), frames=16, views=16, batch_view_num=16,
                                   batch_frame_num=4, precision="fp32"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB")
    message = str(caught.value)
    assert "\n" not in message and "cuda:0" in message and "16 frame(s) x 16 views" in message
    for advice in ("--batch_frame_num (frames per UNet call, now 4; try 2)",
                   "--batch_view_num (views per call, now 16)", "--nproc_per_node", "--precision fp16 or bf16"):
        assert advice in message


def test_advice_drops_settings_that_are_already_minimal():
    with pytest.raises(UserError) as caught:
        with explain_out_of_memory("cuda:1", frames=1, views=16, batch_view_num=1, batch_frame_num=1, precision="fp16"):
            raise torch.OutOfMemoryError("CUDA out of memory")
    message = str(caught.value)
    assert "--batch_view_num (" not in message and "--batch_frame_num (" not in message
    assert "--nproc_per_node" not in message
    assert "fp16 or bf16" not in message and "bench_generate" in message


def test_cpu_allocation_failure_is_explained_and_other_errors_pass_through():
    with pytest.raises(UserError, match="the CPU ran out of memory"):
        with explain_out_of_memory("cpu", frames=4, views=16, batch_view_num=8, batch_frame_num=1, precision="fp32"):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with explain_out_of_memory("cpu", frames=4, views=16, batch_view_num=8, batch_frame_num=4, precision="fp32"):
            raise RuntimeError("shape mismatch")


def test_generate_frames_reports_out_of_memory_as_a_user_error(repo_root, tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(SyncDDIMSampler, "sample", out_of_memory)
    make_video(tmp_path / "video", num_frames=2, size=48)
    with pytest.raises(UserError, match=r"2 frame\(s\) x 16 views there, 2 frame\(s\) x 8 views per UNet call"):
        pipeline.generate_frames(tmp_path / "video", tmp_path / "out", 0.0, cfg=repo_root / "configs" / "tiny.yaml",
                                 ckpt="random", crop_size=40, batch_view_num=8, frame_num=2, devices=["cpu"],
                                 progress=False)
    assert not (tmp_path / "out").exists()
