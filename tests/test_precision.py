"""--precision: weights stored for autocast give autocast's results exactly; bad names are user errors."""
from copy import deepcopy

import pytest
import torch
from torch import nn

from ldm.checkpoint import randomize_weights
from ldm.data import prepare_inputs
from ldm.models.sampler import SyncDDIMSampler
from ldm.models.syncdreamer import build_model, load_config
from ldm.precision import resolve_precision, store_for_autocast
from tools.synthetic import make_video
from utils.errors import UserError


@pytest.fixture(scope="module")
def tiny_random_model(repo_root):
    return randomize_weights(build_model(load_config(repo_root / "configs/tiny.yaml")), 0)


def _sample(model, batch, dtype):
    sampler = SyncDDIMSampler(model, 2, autocast_dtype=dtype, progress=False)
    torch.manual_seed(0)
    return model.sample(sampler, batch, (2.0, 1.0), model.view_num, smooth_filter=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_stored_weights_sample_bit_for_bit_like_autocast(tiny_random_model, tmp_path, dtype):
    size = tiny_random_model.image_size
    make_video(tmp_path, num_frames=1, size=size, seed=0)
    batch = prepare_inputs(tmp_path, 0.0, crop_size=size * 3 // 4, image_size=size, frame_num=1)
    stored = deepcopy(tiny_random_model)
    store_for_autocast(stored.model, dtype)
    with torch.no_grad():
        assert torch.equal(_sample(stored, batch, dtype), _sample(tiny_random_model, batch, dtype))


def test_store_for_autocast_casts_convs_and_linears_and_keeps_norms_float32():
    net = nn.Sequential(nn.Conv2d(4, 8, 3), nn.GroupNorm(2, 8), nn.Conv3d(8, 8, 1), nn.Linear(8, 8), nn.LayerNorm(8))
    store_for_autocast(net, torch.bfloat16)
    assert [p.dtype for p in net[0].parameters()] == [torch.bfloat16] * 2
    assert net[2].weight.dtype == net[3].weight.dtype == net[3].bias.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for norm in (net[1], net[4]) for p in norm.parameters())


def test_resolve_precision_defaults_per_device_and_rejects_unknown_names():
    assert resolve_precision(None, torch.device("cuda")) == "fp16"
    assert resolve_precision(None, torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(UserError, match="--precision must be one of fp16, bf16, fp32"):
        resolve_precision("int8", torch.device("cpu"))
