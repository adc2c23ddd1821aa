"""IFNet, the flow network of RIFE HD v3 (the version Efficient4D ships in model/IFNet_HDv3.py).

Three IFBlocks refine a bidirectional flow coarse to fine (scales 4, 2, 1); a fourth block,
``block_tea`` (the training-time teacher), exists only so that the released ``flownet.pkl``
loads with strict key matching. Module names follow the original so its keys match.
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from rife.warp import warp

WIDTH = 90  # channels of every IFBlock in HD v3


def conv_prelu(in_planes: int, out_planes: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (with bias) + per-channel PReLU; keys ``0.weight``, ``0.bias``, ``1.weight``."""
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=True), nn.PReLU(out_planes))


def resample(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear rescale of (B,C,H,W) by ``factor`` (half-pixel centres, as the original)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False,
                         recompute_scale_factor=False)


class IFBlock(nn.Module):
    """One refinement level: (images, mask, flow) at 1/scale -> flow (B,4,H,W) and mask logits (B,1,H,W)."""

    def __init__(self, in_planes: int, c: int = WIDTH):
        super().__init__()
        self.conv0 = nn.Sequential(conv_prelu(in_planes, c // 2, 2), conv_prelu(c // 2, c, 2))
        self.convblock0 = nn.Sequential(conv_prelu(c, c), conv_prelu(c, c))
        self.convblock1 = nn.Sequential(conv_prelu(c, c), conv_prelu(c, c))
        self.convblock2 = nn.Sequential(conv_prelu(c, c), conv_prelu(c, c))
        self.convblock3 = nn.Sequential(conv_prelu(c, c), conv_prelu(c, c))
        self.conv1 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                   nn.ConvTranspose2d(c // 2, 4, 4, 2, 1))
        self.conv2 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                   nn.ConvTranspose2d(c // 2, 1, 4, 2, 1))
        self.nhwc_heads = True  # False: the plain path (the original's kernels); same results, slower on a CPU

    def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B,7,H,W) = [img_a, img_b, mask]; flow (B,4,H,W) in pixels -> (flow delta, mask delta)."""
        x = resample(x, 1.0 / scale)
        flow = resample(flow, 1.0 / scale) / scale
        feat = self.conv0(torch.cat((x, flow), 1))
        for convblock in (self.convblock0, self.convblock1, self.convblock2, self.convblock3):
            feat = convblock(feat) + feat
        if self.nhwc_heads and feat.device.type == "cpu":
            flow, mask = self.heads_nhwc(feat)
        else:
            flow, mask = self.conv1(feat), self.conv2(feat)
        return resample(flow, scale) * scale, resample(mask, scale)

    def heads_nhwc(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """conv1(feat), conv2(feat) computed in NHWC, returned in the layout the plain path gives.

        On a CPU the transposed convs give the same bits in either layout and run about twice as
        fast in NHWC (15% of a whole inference). The outputs go back to the plain path's layout
        because the 3x3 convs downstream do depend on the layout.
        """
        nhwc = torch.channels_last
        layout = nhwc if feat.is_contiguous(memory_format=nhwc) else torch.contiguous_format
        feat = feat.contiguous(memory_format=nhwc)
        return self.conv1(feat).contiguous(memory_format=layout), self.conv2(feat).contiguous(memory_format=layout)


def swap_directions(flow: torch.Tensor) -> torch.Tensor:
    """(B,4,H,W) [flow_0, flow_1] -> [flow_1, flow_0]."""
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


class IFNet(nn.Module):
    """RIFE HD v3 flow network: two frames -> the frame halfway between them."""

    def __init__(self):
        super().__init__()
        self.block0 = IFBlock(7 + 4)
        self.block1 = IFBlock(7 + 4)
        self.block2 = IFBlock(7 + 4)
        self.block_tea = IFBlock(10 + 4)

    def forward(self, x: torch.Tensor,
                scale_list: Sequence[float] = (4, 2, 1)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B,2C,H,W) = [img0, img1], C >= 3, H and W multiples of 32 -> (flow, mask, merged).

        flow (B,4,H,W): pixel offsets that backward-warp img0 (channels 0-1) and img1 (2-3);
        mask (B,1,H,W): sigmoid weight of warped img0; merged (B,C,H,W): the blend. Only the
        first three channels drive the flow; every channel is warped (as the original does
        with 4-channel BGRA input). Taking the concatenated pair and deriving the zero flow
        and mask from it, as the original, keeps its memory layouts, hence its exact results.
        """
        channel = x.shape[1] // 2
        img0, img1 = x[:, :channel], x[:, channel:]
        flow = torch.zeros_like(x[:, :4])
        mask = torch.zeros_like(x[:, :1])
        warped0, warped1 = img0, img1
        for block, scale in zip((self.block0, self.block1, self.block2), scale_list):
            # The block runs in both directions (img0->img1 and swapped); the two estimates are averaged.
            f0, m0 = block(torch.cat((warped0[:, :3], warped1[:, :3], mask), 1), flow, scale=scale)
            f1, m1 = block(torch.cat((warped1[:, :3], warped0[:, :3], -mask), 1), swap_directions(flow), scale=scale)
            flow = flow + (f0 + swap_directions(f1)) / 2
            mask = mask + (m0 + (-m1)) / 2
            warped0 = warp(img0, flow[:, :2])
            warped1 = warp(img1, flow[:, 2:4])
        mask = torch.sigmoid(mask)
        return flow, mask, warped0 * mask + warped1 * (1 - mask)
