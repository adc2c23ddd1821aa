"""Density control on hand-built Gaussians with known outcomes, and the batch gradient statistic."""
import math

import pytest
import torch

from recon.dataset import load_dataset
from recon.densify import Densifier, DensifyConfig
from recon.fast_rasterizer import rasterize_fast
from recon.gaussians import Gaussians4D, rotation_4d
from recon.synthetic import write_dataset
from recon.trainer import TrainConfig, backward_batch, initial_gaussians, make_optimizer

EXTENT = 1.0
CONFIG = DensifyConfig(densify_grad_threshold=1e-3, percent_dense=0.01, thresh_opa_prune=0.005)


def _gaussians(scales: list[list[float]], opacities: list[float], seed: int = 0) -> Gaussians4D:
    """Gaussians with the given (N,4) scales and opacities, random rotations and colours."""
    g = torch.Generator().manual_seed(seed)
    n = len(scales)
    params = {
        "xyz": torch.rand(n, 3, generator=g) - 0.5,
        "t": torch.rand(n, 1, generator=g),
        "scales": torch.tensor(scales).log(),
        "rot_l": torch.randn(n, 4, generator=g),
        "rot_r": torch.randn(n, 4, generator=g),
        "opacity": torch.logit(torch.tensor(opacities)),
        "sh_dc": torch.randn(n, 1, 3, generator=g),
        "sh_rest": torch.randn(n, 3, 3, generator=g),
    }
    return Gaussians4D(params, sh_degree=1, sh_degree_t=0, time_duration=1.0)


def _densify(gaussians: Gaussians4D, grads: list[float], prune_big: bool = False, seed: int = 0) -> Densifier:
    """One densification with the given mean NDC gradient per Gaussian."""
    optimizer = make_optimizer(gaussians, TrainConfig(), EXTENT)
    densifier = Densifier(len(gaussians), "cpu")
    densifier.grad_accum = torch.tensor(grads)
    densifier.denom = torch.ones(len(grads))
    densifier.densify_and_prune(gaussians, optimizer, CONFIG, EXTENT, prune_big, torch.Generator().manual_seed(seed))
    return densifier


SMALL, LARGE = 0.005, 0.05  # max spatial scale under / over percent_dense * extent = 0.01


def test_small_gaussian_with_large_gradient_is_cloned_exactly():
    gaussians = _gaussians([[SMALL, SMALL, SMALL, 0.1], [SMALL, SMALL, SMALL, 0.1]], [0.5, 0.5])
    before = {name: param.detach().clone() for name, param in gaussians.params.items()}
    densifier = _densify(gaussians, [2e-3, 5e-4])
    assert len(gaussians) == 3
    for name, param in gaussians.params.items():
        assert torch.equal(param[:2], before[name]), name
        assert torch.equal(param[2], before[name][0]), name  # the copy of Gaussian 0
    assert torch.equal(densifier.grad_accum, torch.zeros(3)) and torch.equal(densifier.denom, torch.zeros(3))


def test_large_gaussian_is_split_in_two_with_4d_scales_divided_by_1_6():
    gaussians = _gaussians([[LARGE, SMALL, SMALL, 0.2], [SMALL, SMALL, SMALL, 0.1]], [0.5, 0.5])
    parent = {name: param.detach()[0].clone() for name, param in gaussians.params.items()}
    _densify(gaussians, [2e-3, 0.0])
    assert len(gaussians) == 3  # the parent is replaced by its two children
    children = {name: param.detach()[1:] for name, param in gaussians.params.items()}
    torch.testing.assert_close(children["scales"].exp(), (parent["scales"].exp() / 1.6).expand(2, 4))
    for name in ("rot_l", "rot_r", "opacity", "sh_dc", "sh_rest"):
        assert torch.equal(children[name], parent[name].expand_as(children[name])), name
    assert not torch.equal(children["xyz"][0], children["xyz"][1])


def test_split_children_are_drawn_from_the_parent_4d_gaussian():
    """Offsets of many children, rotated back by the parent's 4D rotation and divided by its four
    scales, are standard normal in all four axes: positions and times are sampled in 4D."""
    count = 400
    scales = [[LARGE, 0.03, 0.02, 0.04]] * count
    gaussians = _gaussians(scales, [0.5] * count)
    p = {name: param.detach().clone() for name, param in gaussians.params.items()}
    gaussians.params["rot_l"].data[:] = p["rot_l"][0]
    gaussians.params["rot_r"].data[:] = p["rot_r"][0]
    centers = torch.cat([p["xyz"], p["t"]], 1).repeat_interleave(2, 0)
    _densify(gaussians, [1.0] * count, seed=3)
    children = torch.cat([gaussians.params["xyz"], gaussians.params["t"]], 1).detach()
    rotation = rotation_4d(p["rot_l"][:1], p["rot_r"][:1])[0]
    normal = (children - centers) @ rotation / torch.tensor(scales[0])
    assert normal.abs().mean() > 0.5  # the children moved
    torch.testing.assert_close(normal.mean(0), torch.zeros(4), atol=0.15, rtol=0)
    torch.testing.assert_close(normal.std(0), torch.ones(4), atol=0.12, rtol=0)


def test_prune_transparent_always_and_big_only_after_a_reset():
    scales = [[SMALL, SMALL, SMALL, 0.1], [0.2, SMALL, SMALL, 0.1], [SMALL, SMALL, SMALL, 0.1]]
    opacities = [0.5, 0.5, 0.001]  # Gaussian 1 is larger than 10 % of the extent, 2 is transparent
    gaussians = _gaussians(scales, opacities)
    _densify(gaussians, [0.0, 0.0, 0.0], prune_big=False)
    torch.testing.assert_close(gaussians.params["scales"].exp()[:, 0], torch.tensor([SMALL, 0.2]))
    gaussians = _gaussians(scales, opacities)
    _densify(gaussians, [0.0, 0.0, 0.0], prune_big=True)
    torch.testing.assert_close(gaussians.params["scales"].exp()[:, 0], torch.tensor([SMALL]))


def test_gradient_statistic_is_the_same_for_batch_1_and_batch_4(tmp_path):
    """Four views back-propagated as one batch of 4 (loss / 4) or as four batches of 1 give each
    Gaussian the same mean gradient norm: the statistic is that of the unscaled loss."""
    torch.manual_seed(0)
    dataset = load_dataset(write_dataset(tmp_path / "data", size=16, num_frames=2), "none")
    config = TrainConfig(num_points=300)
    gaussians = initial_gaussians(dataset, config, torch.Generator().manual_seed(0), "cpu")
    views = dataset.train[:4]
    background = torch.ones(3)

    batched = Densifier(len(gaussians), "cpu")
    _, seen = backward_batch(gaussians, views, rasterize_fast, background, config)
    batched.add_batch(seen, 16, 16, 1 / 4)
    single = Densifier(len(gaussians), "cpu")
    for view in views:
        _, seen = backward_batch(gaussians, [view], rasterize_fast, background, config)
        single.add_batch(seen, 16, 16, 1.0)

    drawn = single.denom > 0
    assert drawn.sum() > 50 and (single.denom > 1).any()
    assert torch.equal(batched.denom, drawn.float())  # one record per Gaussian per batch
    mean_single = single.grad_accum[drawn] / single.denom[drawn]
    mean_batched = batched.grad_accum[drawn] / batched.denom[drawn]
    assert mean_single.max() > CONFIG.densify_grad_threshold / 10
    torch.testing.assert_close(mean_batched, mean_single, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("batch", [1, 4])
def test_densifier_records_the_ndc_gradient_norm(batch):
    """A pixel gradient g of the loss / B on a W x H image is |g * (W/2, H/2) * B| in NDC units."""
    densifier = Densifier(2, "cpu")
    grad = torch.tensor([[3.0, 4.0]]) / batch
    densifier.add_batch([(torch.tensor([1]), grad, torch.tensor([[2, 2]]))], 2, 2, 1 / batch)
    assert densifier.grad_accum.tolist() == [0.0, pytest.approx(math.hypot(3, 4))]
    assert densifier.denom.tolist() == [0.0, 1.0]
