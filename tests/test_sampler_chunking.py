"""SyncDDIMSampler mechanics without fixtures: chunking and device splits, guidance batches, smoothing,
the DDIM timestep grid. A 4-view tiny model with seeded random weights keeps every run around a second."""
import copy

import numpy as np
import pytest
import torch

from ldm.checkpoint import randomize_weights
from ldm.data import prepare_inputs
from ldm.models.sampler import (SyncDDIMSampler, classifier_free_guidance, decomposed_guidance, get_w,
                                make_ddim_timesteps, smooth_volumes, split_frames)
from ldm.models.syncdreamer import build_model, load_config
from ldm.pipeline import frames_per_call
from tools.synthetic import make_video


@pytest.fixture(scope="module")
def model(repo_root):
    cfg = copy.deepcopy(load_config(repo_root / "configs" / "tiny.yaml"))
    cfg["model"]["params"]["view_num"] = 4
    return randomize_weights(build_model(cfg), seed=0)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    make_video(folder, num_frames=3, size=64, seed=3)
    return prepare_inputs(folder, 5.0, crop_size=40, image_size=64, frame_num=3)


def _sample(model, batch, batch_view_num=4, steps=2, **sampler_kwargs):
    sampler = SyncDDIMSampler(model, steps, progress=False, **sampler_kwargs)
    latents = []
    torch.manual_seed(7)
    images = sampler.sample(model, batch, 2.0, batch_view_num, smooth_filter=True, is_cyc=1,
                            callback=lambda step: latents.append(step.x_prev))
    return images, torch.stack(latents)


def test_frames_split_over_two_devices_equal_one_device(model, batch):
    images, latents = _sample(model, batch)
    # Two "devices" (both the CPU: the second gets its own replica path) take frames [0, 1] and [2].
    split_images, split_latents = _sample(model, batch, devices=["cpu", "cpu"])
    # One device with the same frame chunks runs the same kernels: bit-identical.
    chunked_images, chunked_latents = _sample(model, batch, batch_frame_num=2)
    assert torch.equal(split_latents, chunked_latents) and torch.equal(split_images, chunked_images)
    # Against one unchunked batch only float rounding may differ (CPU kernels depend on the batch size).
    torch.testing.assert_close(split_latents, latents, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(split_images, images, rtol=1e-4, atol=1e-4)


def test_view_and_frame_chunks_do_not_change_the_sample(model, batch):
    images, latents = _sample(model, batch)
    for kwargs in ({"batch_view_num": 3}, {"batch_view_num": 1, "batch_frame_num": 1}):
        chunk_images, chunk_latents = _sample(model, batch, **kwargs)
        torch.testing.assert_close(chunk_latents, latents, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(chunk_images, images, rtol=1e-4, atol=1e-4)


def test_three_ddim_steps_run(model, batch):
    """The original crashes here (its uniform grid ends at timestep 1000); we clamp it to 999."""
    sampler = SyncDDIMSampler(model, 3, progress=False)
    assert sampler.ddim_timesteps.tolist() == [1, 334, 667, 999]
    images = sampler.sample(model, {k: v[:1] for k, v in batch.items()}, 1.0, 4)
    assert images.shape == (1, 4, 3, 64, 64) and torch.isfinite(images).all()


def test_ddim_timesteps_keep_the_original_grid():
    assert make_ddim_timesteps(4, "uniform", 1000).tolist() == [1, 251, 501, 751]
    assert make_ddim_timesteps(50, "uniform", 1000).tolist() == list(range(1, 1000, 20))
    # floor(1000 / 7) = 142 gives 8 timesteps, as in the original
    assert make_ddim_timesteps(7, "uniform", 1000).tolist() == list(range(1, 1000, 142))
    assert make_ddim_timesteps(9, "uniform", 1000).tolist()[-1] == 999
    assert make_ddim_timesteps(1000, "uniform", 1000).tolist() == list(range(1, 1000))


def test_split_frames_covers_any_frame_count():
    assert split_frames(5, 2) == [range(0, 3), range(3, 5)]
    assert split_frames(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert split_frames(1, 4) == [range(0, 1)]


class RecordingUNet:
    """Stands in for the UNet: records its inputs, returns a known function of them."""

    def __call__(self, x, t, clip_embed, volume_feats, x_concat):
        self.inputs = (x, t, clip_embed, volume_feats, x_concat)
        return x * 0.5 + x_concat + clip_embed.mean() + volume_feats[2].mean(dim=(1, 2, 3, 4)).view(-1, 1, 1, 1)


def _conditions(batch_size=2):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch_size, 4, 2, 2, generator=g), torch.arange(batch_size),
            torch.randn(batch_size, 1, 8, generator=g), {2: torch.randn(batch_size, 3, 2, 2, 2, generator=g)},
            torch.randn(batch_size, 4, 2, 2, generator=g))


def test_classifier_free_guidance_zeroes_every_condition():
    unet, (x, t, clip, volume, concat) = RecordingUNet(), _conditions()
    out = classifier_free_guidance(unet, x, t, clip, volume, concat, 3.0)
    x_, t_, clip_, volume_, concat_ = unet.inputs
    assert torch.equal(x_, torch.cat([x, x])) and torch.equal(t_, torch.cat([t, t]))
    assert torch.equal(clip_[2:], torch.zeros_like(clip)) and torch.equal(concat_[2:], torch.zeros_like(concat))
    assert torch.equal(volume_[2][2:], torch.zeros_like(volume[2]))
    s, s_uc = unet(x_, t_, clip_, volume_, concat_).chunk(2)
    torch.testing.assert_close(out, s_uc + 3.0 * (s - s_uc))
    # scale 1 is the plain conditional prediction, one 1x batch
    assert torch.equal(classifier_free_guidance(unet, x, t, clip, volume, concat, 1.0), unet(x, t, clip, volume, concat))


def test_decomposed_guidance_batches():
    unet, (x, t, clip, volume, concat) = RecordingUNet(), _conditions()
    out = decomposed_guidance(unet, x, t, clip, volume, concat, (2.0, 1.0))
    _, _, clip_, volume_, concat_ = unet.inputs
    # cond | uc1: no image (zero CLIP, zero input latent) | uc2: no volume, input latent x4
    assert torch.equal(clip_, torch.cat([clip, torch.zeros_like(clip), clip]))
    assert torch.equal(concat_, torch.cat([concat, torch.zeros_like(concat), concat * 4]))
    assert torch.equal(volume_[2], torch.cat([volume[2], volume[2], torch.zeros_like(volume[2])]))
    s, s_uc1, s_uc2 = unet(*unet.inputs).chunk(3)
    torch.testing.assert_close(out, s + 2.0 * (s - s_uc1) + 1.0 * (s - s_uc2))


@pytest.mark.parametrize("frame_num,is_cyc", [(3, 0), (6, 1), (9, 0)])
def test_smooth_volumes_is_the_normalised_weighted_mean(frame_num, is_cyc):
    volume = torch.randn(frame_num, 2, 3, 3, 3, generator=torch.Generator().manual_seed(1))
    w = get_w(frame_num, is_cyc).double()
    expected = torch.einsum("ij,jcxyz->icxyz", w / w.sum(1, keepdim=True), volume.double())
    out = smooth_volumes(volume, get_w(frame_num, is_cyc))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_frames_per_call_caps_the_unet_batch_on_cuda_only():
    assert frames_per_call(torch.device("cpu"), 16) is None
    assert frames_per_call(torch.device("cuda", 0), 16) == 4
    assert frames_per_call(torch.device("cuda", 0), 200) == 1
