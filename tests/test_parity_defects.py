"""Each loosened parity tolerance still fails on a real mistake: a wrong get_w row, swapped guidance
scales, one random draw out of order, a transposed camera, a wrong DDIM eta, a wrong SSIM window,
a confidence pair left out. Each test first checks
that the unbroken code passes the same comparison, so a failure can only come from the defect."""
import pytest
import torch

import confidence.maps
import utils.ssim
from ldm.models import sampler as sampler_module
from ldm.models.sampler import SyncDDIMSampler, get_w
from tools.parity import checks
from tools.parity.checks import (DG, Reference, check_confidence, check_samples, check_schedule, check_ssim, check_steps,
                                 check_volumes, run_check)

MAIN = {"main": (DG, 4, True)}


@pytest.fixture(scope="module")
def reference(reference_dir):
    return Reference(reference_dir, "cpu")


def _worst(deviations, quantity: str = "") -> float:
    return max(d.score for d in deviations if quantity in d.quantity)


def _steps(reference, runs=MAIN):
    """The first two guided steps (at the first, every frame holds the same noise, so smoothing is moot)."""
    return run_check_with(reference, lambda ref: check_steps(ref, runs, num_steps=2))


def run_check_with(reference, check):
    with checks.exact_fp32(reference.device):
        return check(reference)


def test_a_wrong_get_w_row_fails_the_guided_step(reference, monkeypatch):
    assert _worst(_steps(reference)) <= 1

    def wrong_row(frame_num, is_cyc):
        w = get_w(frame_num, is_cyc).clone()
        w[1] = w[1].roll(1)  # frame 1 blended with the wrong neighbours
        return w
    monkeypatch.setattr(sampler_module, "get_w", wrong_row)
    assert _worst(_steps(reference)) > 1


def test_swapped_guidance_scales_fail_the_guided_step(reference):
    assert _worst(_steps(reference, {"main": (tuple(reversed(DG)), 4, True)})) > 1


def test_one_random_draw_out_of_order_fails_the_sample(reference, monkeypatch):
    """The first DDIM step draws its noise twice: every later draw comes one place late."""
    step = SyncDDIMSampler.ddim_step
    drawn = []

    def late_draws(self, x_t, e_t, index, shard=None):
        if not drawn:
            drawn.append(torch.randn(x_t.shape))
        return step(self, x_t, e_t, index, shard)
    monkeypatch.setattr(SyncDDIMSampler, "ddim_step", late_draws)
    deviations = run_check_with(reference, lambda ref: check_samples(ref, MAIN))
    assert drawn and _worst(deviations, "x_t") > 1 and _worst(deviations, "grid") > 1


def test_a_transposed_camera_fails_the_volumes(reference, monkeypatch):
    model = reference.tiny_model
    poses = model.poses.clone()
    poses[:, :3, :3] = poses[:, :3, :3].transpose(1, 2)
    monkeypatch.setitem(model._buffers, "poses", poses)  # setattr's undo would delete the buffer
    assert _worst(run_check_with(reference, check_volumes), "spatial_volume") > 1


def test_a_wrong_ddim_eta_fails_the_schedule(reference, monkeypatch):
    assert _worst(run_check(reference, "schedule")) <= 1
    init = SyncDDIMSampler.__init__
    monkeypatch.setattr(SyncDDIMSampler, "__init__",
                        lambda self, *args, **kwargs: init(self, *args, **{**kwargs, "ddim_eta": 0.5}))
    assert _worst(run_check_with(reference, check_schedule), "sigmas") > 1


def test_a_wrong_ssim_window_fails_the_ssim_maps(reference, monkeypatch):
    assert _worst(run_check(reference, "ssim")) <= 1
    gaussian = utils.ssim.gaussian
    monkeypatch.setattr(utils.ssim, "gaussian", lambda window_size, sigma: gaussian(window_size, 1.2))
    assert _worst(run_check_with(reference, check_ssim), "map") > 1


def test_a_left_out_pair_fails_the_confidence_maps(reference, monkeypatch):
    """Frames 2 and 3 of 6 lose their (k-2, k+2) pair, as if the middle frames scored like the second."""
    offsets = confidence.maps.pair_offsets
    monkeypatch.setattr(confidence.maps, "pair_offsets", lambda frame, num_frames: offsets(frame, num_frames)[:1])
    deviations = run_check_with(reference, lambda ref: check_confidence(ref, num_views=2))
    assert _worst(deviations, "02_") > 1 and _worst(deviations, "03_") > 1
