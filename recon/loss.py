"""Confidence-weighted photometric loss: (1 - lambda) * L1 + lambda * D-SSIM, both per pixel.

The confidence map (stage 4: 1 where a view agrees with its interpolated neighbours in time, 0
where it does not) multiplies the per-pixel L1 error and the per-pixel SSIM dissimilarity, so a
pixel with confidence 0 gives no gradient at all. Without a map every weight is 1 (plain 3DGS).

SSIM here is the 3DGS training SSIM: 11x11 Gaussian window (sigma 1.5), zero padding, per channel,
C1 = 0.01^2, C2 = 0.03^2 for images in [0,1]. It is written for autograd and a fixed value range,
which the original's evaluation SSIM (range guessed from the first image) does not give.
"""
import math

import torch
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _gaussian_blur(x: Tensor) -> Tensor:
    """(C,H,W) -> (C,H,W), separable Gaussian window, zero padding."""
    coords = torch.arange(SSIM_WINDOW, device=x.device, dtype=x.dtype) - SSIM_WINDOW // 2
    kernel = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[0]
    pad = SSIM_WINDOW // 2
    x = torch.nn.functional.conv2d(x[None], kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), padding=(0, pad), groups=channels)
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), padding=(pad, 0), groups=channels)
    return x[0]


def ssim_map(image: Tensor, target: Tensor) -> Tensor:
    """(H,W,3), (H,W,3) in [0,1] -> (H,W) SSIM, averaged over channels."""
    x, y = image.permute(2, 0, 1), target.permute(2, 0, 1)
    mu_x, mu_y = _gaussian_blur(x), _gaussian_blur(y)
    var_x = _gaussian_blur(x * x) - mu_x**2
    var_y = _gaussian_blur(y * y) - mu_y**2
    cov = _gaussian_blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (num / den).mean(0)


def reconstruction_loss(
    image: Tensor, target: Tensor, confidence: Tensor | None, lambda_dssim: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(H,W,3) render and target, (H,W) confidence in [0,1] or None -> (loss, l1, dssim).

    Weighted terms are means over all pixels (not renormalised by the weights), so a view the
    confidence distrusts also counts less overall."""
    weight = torch.ones_like(image[..., 0]) if confidence is None else confidence
    l1 = (weight * (image - target).abs().mean(-1)).mean()
    dssim = (weight * (1.0 - ssim_map(image, target))).mean()
    return (1.0 - lambda_dssim) * l1 + lambda_dssim * dssim, l1, dssim


def psnr(image: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0,1]."""
    mse = float(((image - target) ** 2).mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)
