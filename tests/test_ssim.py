"""utils/ssim.py equals the original's utils/pytorch_msssim.ssim (fixtures/ssim.pt)."""
import pytest
import torch

from utils.ssim import dynamic_range, ssim


@pytest.fixture(scope="module")
def record(reference_dir):
    return torch.load(reference_dir / "fixtures" / "ssim.pt", weights_only=True)


def test_channels_last_blur_equals_plain(record):
    img1, img2 = record["img1"].detach(), record["img2"].detach()
    assert torch.equal(ssim(img1, img2, full=True), ssim(img1, img2, full=True, channels_last=False))


def test_small_images_shrink_window_but_keep_padding(record):
    small = record["small"]
    assert ssim(small["img1"], small["img2"], full=True).shape == (1, 3, 11, 13)


def test_range_is_guessed_from_the_first_image_only():
    unit, scaled = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16) * 255
    assert dynamic_range(unit) == 1 and dynamic_range(scaled) == 255 and dynamic_range(unit * 2 - 1) == 2
    torch.testing.assert_close(ssim(unit, scaled), ssim(unit, scaled, val_range=1))


def test_per_image_means_and_batching():
    gen = torch.Generator().manual_seed(0)
    img1, img2 = torch.rand(2, 3, 3, 20, 20, generator=gen)
    per_image = ssim(img1, img2, size_average=False)
    assert per_image.shape == (3,)
    singles = torch.stack([ssim(img1[i:i + 1], img2[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(per_image, singles)
    torch.testing.assert_close(ssim(img1, img1), torch.tensor(1.0))
