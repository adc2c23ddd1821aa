"""PSNR and SSIM as the official script computes them (torchmetrics' functional defaults), data range pinned.

Both take batches of 8-bit frames, (N,H,W,3) uint8, and return (N,) float64 scores.

* PSNR: 10 log10(255^2 / MSE) over all pixels and channels of one frame.
* SSIM: Gaussian window 11 x 11 with sigma 1.5, K1 = 0.01, K2 = 0.03, population (co)variances,
  averaged per channel over the pixels whose window lies inside the image. torchmetrics pads by
  reflection and then crops those 5-pixel borders, so it averages exactly this interior.
"""
import numpy as np
import torch

from evaluation.protocol import DATA_RANGE
from utils.ssim import ssim as gaussian_ssim

SSIM_WINDOW = 11


def _as_float(frames: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(N,H,W,3) uint8 -> (N,3,H,W) float in [0, 255]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(dtype)


def psnr(pred: np.ndarray, gt: np.ndarray, data_range: float = DATA_RANGE) -> np.ndarray:
    """(N,H,W,3) uint8 pair -> (N,) PSNR in dB (inf where a frame is identical)."""
    mse = ((_as_float(pred) - _as_float(gt)) ** 2).mean(dim=(1, 2, 3))
    return (10.0 * torch.log10(data_range**2 / mse)).numpy()


def ssim(pred: np.ndarray, gt: np.ndarray, data_range: float = DATA_RANGE) -> np.ndarray:
    """(N,H,W,3) uint8 pair -> (N,) mean SSIM over the interior (5-pixel border excluded)."""
    # float32 as the official torchmetrics call (float64 convolutions are 50x slower on a CPU)
    full = gaussian_ssim(_as_float(pred, torch.float32), _as_float(gt, torch.float32), window_size=SSIM_WINDOW,
                         full=True, val_range=data_range)
    border = SSIM_WINDOW // 2
    return full[..., border:-border, border:-border].double().mean(dim=(1, 2, 3)).numpy()
