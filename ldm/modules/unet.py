"""The SD-1.x UNet (ResBlocks + SpatialTransformers) and SyncDreamer's ``DepthWiseAttention`` subclass,
which adds depth-wise attention to the frustum volume after the middle block and after output blocks
3-11. Only the options SyncDreamer uses are implemented: 2D, spatial transformers, learned
up/downsampling convs, no scale-shift norm, no class conditioning.
"""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ldm.modules.attention import (DepthTransformer, SpatialTransformer, ray_major, resolve_attention_backend,
                                   zero_module)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B,dim): [cos(t f), sin(t f)] with f = max_period^(-i/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (stable under half precision, whatever the
    parameters' dtype)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).type(x.dtype)


def normalization(channels: int) -> nn.Module:
    return GroupNorm32(32, channels)


class TimestepEmbedSequential(nn.Sequential):
    """A sequence of layers; ResBlocks get the time embedding, SpatialTransformers the context."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class Upsample(nn.Module):
    """Nearest 2x upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int, out_channels: Optional[int] = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Downsample(nn.Module):
    """Strided 3x3 conv halving H and W."""

    def __init__(self, channels: int, out_channels: Optional[int] = None):
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding: (B,C,H,W), (B,emb) -> (B,C_out,H,W)."""

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: Optional[int] = None):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            normalization(channels),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            normalization(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class UNetModel(nn.Module):
    """SD-1.x UNet with cross-attention transformers.

    Input (B,in_channels,H,W), timesteps (B,), context (B,M,context_dim) -> (B,out_channels,H,W).
    Attention heads have ``ch // num_heads`` channels at every level.
    """

    def __init__(self, in_channels: int, model_channels: int, out_channels: int, num_res_blocks: int,
                 attention_resolutions: Sequence[int], context_dim: int, channel_mult: Sequence[int] = (1, 2, 4, 8),
                 num_heads: int = 8, transformer_depth: int = 1, dropout: float = 0.0):
        super().__init__()
        self.model_channels = model_channels
        time_embed_dim = model_channels * 4
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, time_embed_dim),
            nn.SiLU(),
            nn.Linear(time_embed_dim, time_embed_dim),
        )

        def transformer(ch: int) -> SpatialTransformer:
            return SpatialTransformer(ch, num_heads, ch // num_heads, depth=transformer_depth, context_dim=context_dim)

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))]
        )
        skip_channels = [model_channels]
        ch = model_channels
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, time_embed_dim, dropout, out_channels=mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers.append(transformer(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, time_embed_dim, dropout),
            transformer(ch),
            ResBlock(ch, time_embed_dim, dropout),
        )

        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                skip = skip_channels.pop()
                layers = [ResBlock(ch + skip, time_embed_dim, dropout, out_channels=model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers.append(transformer(ch))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(
            normalization(ch),
            nn.SiLU(),
            zero_module(nn.Conv2d(model_channels, out_channels, 3, padding=1)),
        )

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: Optional[torch.Tensor] = None,
                source_dict: Optional[Dict[int, torch.Tensor]] = None) -> torch.Tensor:
        """x (B,C,H,W), timesteps (B,), context (B,M,768), source_dict {width: (B,d,D,width,width)} (volumes,
        read only by subclasses that condition on them)."""
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        hs = []
        h = x
        for module in self.input_blocks:
            h = module(h, emb, context)
            hs.append(h)
        h = self.condition_middle(self.middle_block(h, emb, context), source_dict)
        for index, module in enumerate(self.output_blocks):
            h = self.condition_output(index, module(torch.cat([h, hs.pop()], dim=1), emb, context), source_dict)
        return self.out(h)

    def condition_middle(self, h: torch.Tensor, source_dict: Optional[Dict[int, torch.Tensor]]) -> torch.Tensor:
        """Hook after the middle block; the plain SD UNet has no volume condition."""
        return h

    def condition_output(self, index: int, h: torch.Tensor,
                         source_dict: Optional[Dict[int, torch.Tensor]]) -> torch.Tensor:
        """Hook after output block ``index``; the plain SD UNet has no volume condition."""
        return h


class DepthWiseAttention(UNetModel):
    """The SyncDreamer UNet: a :class:`UNetModel` whose middle block and output blocks 3-11 are each
    followed by a :class:`DepthTransformer` reading the frustum volume of the matching width.

    ``volume_dims`` (d0..d3) are the channels of the frustum volumes at widths w, w/2, w/4, w/8.
    """

    # output block index -> index into output_conditions
    output_b2c = {3: 0, 4: 1, 5: 2, 6: 3, 7: 4, 8: 5, 9: 6, 10: 7, 11: 8}

    def __init__(self, volume_dims: Sequence[int] = (5, 16, 32, 64), **unet_kwargs):
        super().__init__(**unet_kwargs)
        model_channels = unet_kwargs["model_channels"]
        channel_mult = unet_kwargs["channel_mult"]
        d0, d1, d2, d3 = volume_dims

        def condition(ch: int, d: int) -> DepthTransformer:
            return DepthTransformer(ch, 4, d // 2, context_dim=d)

        # channel_mult[2] (not [3]) at the lowest level, as the original (equal in every SD config)
        self.middle_conditions = condition(model_channels * channel_mult[2], d3)
        ch2 = model_channels * channel_mult[2]
        ch1 = model_channels * channel_mult[1]
        ch0 = model_channels * channel_mult[0]
        self.output_conditions = nn.ModuleList([
            condition(ch2, d2), condition(ch2, d2),  # width w/4
            condition(ch2, d1),  # block 5 ends with an upsample to w/2
            condition(ch1, d1), condition(ch1, d1),
            condition(ch1, d0),  # block 8 upsamples to w
            condition(ch0, d0), condition(ch0, d0), condition(ch0, d0),
        ])

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: Optional[torch.Tensor] = None,
                source_dict: Optional[Dict[int, torch.Tensor]] = None) -> torch.Tensor:
        if resolve_attention_backend(x.device) != "plain":
            # up to four condition blocks read each volume: lay it out once for the fast depth attention
            source_dict = {width: ray_major(volume) for width, volume in source_dict.items()}
        return super().forward(x, timesteps, context, source_dict)

    def condition_middle(self, h: torch.Tensor, source_dict: Dict[int, torch.Tensor]) -> torch.Tensor:
        return self.middle_conditions(h, context=source_dict[h.shape[-1]])

    def condition_output(self, index: int, h: torch.Tensor, source_dict: Dict[int, torch.Tensor]) -> torch.Tensor:
        if index not in self.output_b2c:
            return h
        return self.output_conditions[self.output_b2c[index]](h, context=source_dict[h.shape[-1]])
