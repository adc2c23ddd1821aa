"""Backward warping by an optical flow field, as RIFE HD v3 uses it."""
import torch
import torch.nn.functional as F


def base_grid(batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(B,2,H,W) identity sampling grid in grid_sample's [-1,1] coordinates (x first, then y)."""
    xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype).view(1, 1, 1, width)
    ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype).view(1, 1, height, 1)
    return torch.cat([xs.expand(batch, 1, height, width), ys.expand(batch, 1, height, width)], dim=1)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B,C,H,W) at each pixel moved by ``flow`` (B,2,H,W), in pixels (x, y).

    Bilinear, border padding, align_corners=True. The grid is built from the input's
    device and dtype on every call, so the function holds no device state.
    """
    height, width = image.shape[-2:]
    grid = base_grid(flow.shape[0], flow.shape[2], flow.shape[3], flow.device, flow.dtype)
    # Pixels -> normalised units: with align_corners=True, [-1,1] spans (size - 1) pixels.
    offset = torch.cat([flow[:, 0:1] / ((width - 1.0) / 2.0), flow[:, 1:2] / ((height - 1.0) / 2.0)], dim=1)
    return F.grid_sample(image, (grid + offset).permute(0, 2, 3, 1), mode="bilinear",
                         padding_mode="border", align_corners=True)
