"""FVD as the official script computes it, with its single-video pitfall handled.

Per object and view, each clip (every test frame, composited on white) is resized channel by
channel to 224 x 224 (PIL bicubic on float images), scaled to [-1, 1] and passed through I3D-400
as one (1,3,T,224,224) video; its feature is the (400,) time-averaged logits. FVD is the Fréchet
distance between the prediction's and the ground truth's feature Gaussians.

The pitfall: the official script estimates each covariance from this one video with ``np.cov``,
which divides by N - 1 = 0: the covariances are NaN and scipy's ``sqrtm`` refuses them. One
sample has no spread, so we take its covariance as zero, and the per-view FVD becomes the squared
distance between the two feature vectors. With several videos per side (``fvd_from_features``
on stacked features) the unbiased sample covariance is used, as the official script intends.
"""
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import linalg

from evaluation.i3d import InceptionI3d
from evaluation.layout import read_image
from evaluation.protocol import FVD_SIZE
from evaluation.weights import check_keys, load_state_dict

SINGULAR_EPS = 1e-6


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = SINGULAR_EPS) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) for (D,) means and (D,D) covariances.

    As the official script: an eps ridge when the product's square root is not finite, and the
    real part when round-off leaves a tiny imaginary one."""
    diff = mu1 - mu2
    if not sigma1.any() or not sigma2.any():  # one video on a side: the product is 0, and so is its root
        return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2))  # (sqrtm would warn it is singular)
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        ridge = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + ridge) @ (sigma2 + ridge))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Fréchet distance: imaginary component {np.abs(covmean.imag).max():.3g} in sqrtm")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,D) features -> mean (D,) and covariance (D,D); zero covariance for a single sample."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) == 1:
        return features[0], np.zeros((features.shape[1], features.shape[1]))
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fvd_from_features(pred: np.ndarray, gt: np.ndarray) -> float:
    """Fréchet distance between (N,D) prediction and (M,D) ground-truth features."""
    return frechet_distance(*feature_statistics(pred), *feature_statistics(gt))


def _resize_channel(channel: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(channel.astype(np.float32)).resize((size, size), Image.BICUBIC))


def read_video(paths: tuple[Path, ...], size: int = FVD_SIZE) -> torch.Tensor:
    """Frames -> (1,3,T,size,size) float32 in [-1,1]: each channel resized on its own, as float."""
    frames = []
    for path in paths:
        image = read_image(path)
        frames.append(np.stack([_resize_channel(image[..., c], size) for c in range(3)], axis=-1))
    video = torch.from_numpy(np.stack(frames)) / 127.5 - 1.0
    return video.permute(3, 0, 1, 2).unsqueeze(0).float()


class FVDMetric:
    """``metric(pred_paths, gt_paths)``: the FVD of one view's two clips."""

    def __init__(self, network: InceptionI3d, device: torch.device):
        self.network = network.to(device).eval()
        self.device = device

    @classmethod
    def from_file(cls, path, device: torch.device) -> "FVDMetric":
        network = InceptionI3d()
        state = load_state_dict(Path(path), "I3D")
        check_keys(Path(path), "I3D-400 (InceptionI3d)", network.state_dict(), state)
        network.load_state_dict({k: state[k] for k in network.state_dict()}, strict=True)
        return cls(network, device)

    @torch.no_grad()
    def features(self, paths: tuple[Path, ...]) -> np.ndarray:
        """(1,400) I3D logits of one clip."""
        return self.network(read_video(paths).to(self.device)).double().cpu().numpy()

    def __call__(self, pred: tuple[Path, ...], gt: tuple[Path, ...]) -> float:
        return fvd_from_features(self.features(pred), self.features(gt))
