"""The SD-1.x KL autoencoder (``AutoencoderKL``): images (B,3,H,W) in [-1,1] <-> latents (B,z,H/f,W/f),
f = 2^(len(ch_mult)-1), with a diagonal Gaussian posterior."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ldm.modules.attention import attention, resolve_attention_backend


def nonlinearity(x: torch.Tensor) -> torch.Tensor:
    """Swish written out as the original does: F.silu rounds differently in the last bit."""
    return x * torch.sigmoid(x)


def Normalize(in_channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=in_channels, eps=1e-6, affine=True)


class Upsample(nn.Module):
    """Nearest 2x upsampling followed by a 3x3 conv."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    """Stride-2 3x3 conv with the original's asymmetric (right/bottom) zero padding."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block without time embedding: (B,C_in,H,W) -> (B,C_out,H,W)."""

    def __init__(self, in_channels: int, out_channels: Optional[int] = None, dropout: float = 0.0):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nonlinearity(self.norm1(x)))
        h = self.conv2(self.dropout(nonlinearity(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the pixels: (B,C,H,W) -> (B,C,H,W)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.norm = Normalize(in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, 1, 1, 0)
        self.k = nn.Conv2d(in_channels, in_channels, 1, 1, 0)
        self.v = nn.Conv2d(in_channels, in_channels, 1, 1, 0)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x_norm = self.norm(x)
        q, k, v = (conv(x_norm).reshape(b, c, h * w) for conv in (self.q, self.k, self.v))
        if resolve_attention_backend(x.device) == "plain":
            # the original's batched matmuls, which round exactly like the reference
            weights = (torch.bmm(q.permute(0, 2, 1), k) * c ** -0.5).softmax(dim=2)  # B,HW(query),HW(key)
            out = torch.bmm(v, weights.permute(0, 2, 1))  # B,C,HW
        else:
            out = attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None],
                            backend="sdpa")
            out = out[:, 0].transpose(1, 2)  # B,C,HW
        return x + self.proj_out(out.reshape(b, c, h, w))


def _level_channels(ch: int, ch_mult: Sequence[int]):
    """(block_in, block_out) channels of each resolution level."""
    in_mult = (1,) + tuple(ch_mult)
    return [(ch * in_mult[i], ch * ch_mult[i]) for i in range(len(ch_mult))]


def run_level(level: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """One resolution level of the encoder or decoder: its ResNet blocks, each followed by its
    attention block where the level has them."""
    for i, block in enumerate(level.block):
        h = block(h)
        if len(level.attn) > 0:
            h = level.attn[i](h)
    return h


class Encoder(nn.Module):
    """(B,in_channels,H,W) -> (B,2*z_channels,H/f,W/f) posterior moments (before quant_conv)."""

    def __init__(self, *, ch: int, ch_mult: Sequence[int], num_res_blocks: int, attn_resolutions: Sequence[int],
                 in_channels: int, resolution: int, z_channels: int, double_z: bool = True, dropout: float = 0.0):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        curr_res = resolution
        self.down = nn.ModuleList()
        for level, (block_in, block_out) in enumerate(_level_channels(ch, ch_mult)):
            down = nn.Module()
            down.block = nn.ModuleList()
            down.attn = nn.ModuleList()
            for _ in range(num_res_blocks):
                down.block.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    down.attn.append(AttnBlock(block_in))
            if level != len(ch_mult) - 1:
                down.downsample = Downsample(block_in)
                curr_res //= 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for down in self.down:
            h = run_level(down, h)
            if hasattr(down, "downsample"):
                h = down.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(nonlinearity(self.norm_out(h)))


class Decoder(nn.Module):
    """(B,z_channels,h,w) -> (B,out_ch,h*f,w*f)."""

    def __init__(self, *, ch: int, out_ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], resolution: int, z_channels: int, dropout: float = 0.0):
        super().__init__()
        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout)
        self.up = nn.ModuleList()
        for level in reversed(range(len(ch_mult))):
            up = nn.Module()
            up.block = nn.ModuleList()
            up.attn = nn.ModuleList()
            block_out = ch * ch_mult[level]
            for _ in range(num_res_blocks + 1):
                up.block.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    up.attn.append(AttnBlock(block_in))
            if level != 0:
                up.upsample = Upsample(block_in)
                curr_res *= 2
            self.up.insert(0, up)  # indexed by level, as in the checkpoint
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for up in reversed(self.up):
            h = run_level(up, h)
            if hasattr(up, "upsample"):
                h = up.upsample(h)
        return self.conv_out(nonlinearity(self.norm_out(h)))


class DiagonalGaussianDistribution:
    """The VAE posterior from moments (B,2z,h,w): mean and log-variance (clamped to [-30, 20])."""

    def __init__(self, parameters: torch.Tensor):
        self.mean, self.logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(self.logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self) -> torch.Tensor:
        """mean + std * eps. eps is one ``torch.randn`` of the mean's shape from the global CPU
        generator, moved to the device afterwards, as the original: the draw order (and so a seeded
        run's result) does not depend on the device."""
        eps = torch.randn(self.mean.shape).to(device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean


class AutoencoderKL(nn.Module):
    """Encoder/decoder pair with 1x1 ``quant_conv`` / ``post_quant_conv`` around the latent; the
    arguments are the original's ``embed_dim`` plus its ``ddconfig`` keys."""

    def __init__(self, *, embed_dim: int, ch: int, out_ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], in_channels: int, resolution: int, z_channels: int,
                 double_z: bool = True, dropout: float = 0.0):
        super().__init__()
        if not double_z:
            raise ValueError("AutoencoderKL needs double_z: true (the posterior has a mean and a log-variance)")
        shared = dict(ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks, attn_resolutions=attn_resolutions,
                      resolution=resolution, z_channels=z_channels, dropout=dropout)
        self.encoder = Encoder(in_channels=in_channels, double_z=double_z, **shared)
        self.decoder = Decoder(out_ch=out_ch, **shared)
        self.quant_conv = nn.Conv2d(2 * z_channels, 2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.embed_dim = embed_dim

    def encode(self, x: torch.Tensor) -> DiagonalGaussianDistribution:
        """(B,3,H,W) in [-1,1] -> posterior over (B,embed_dim,H/f,W/f)."""
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B,embed_dim,h,w) -> (B,3,h*f,w*f), not clamped."""
        return self.decoder(self.post_quant_conv(z))
