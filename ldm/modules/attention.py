"""Attention layers of the SyncDreamer UNet: cross/self attention, the SD-1.x transformer blocks and
the depth-wise attention that reads the frustum volume.

Every attention has two interchangeable implementations (backends):

* ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention``, fused kernels (flash /
  memory-efficient) on CUDA. The fast path; there the depth attention, with one query per ray,
  folds its key and value projections into the query and the output instead
  (:meth:`DepthAttention.forward_folded`).
* ``"plain"``: ``softmax(q k^T / sqrt(d)) v`` written out exactly as the original computes it, so
  results round like the reference bit for bit (the tiny test network amplifies last-bit
  differences a thousandfold over a sampling run).

The default, ``"auto"``, takes ``"sdpa"`` for CUDA tensors and ``"plain"`` elsewhere (CPU runs are
tests and demos, where exact parity matters more than speed). Override it globally with
:func:`set_attention_backend`, for a block of code with the :func:`attention_backend` context
manager, or per call with the ``backend`` argument of :func:`attention`.
"""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

BACKENDS = ("auto", "sdpa", "plain")
_backend = "auto"


def set_attention_backend(name: str) -> None:
    """Select the attention implementation of every layer: ``"auto"`` (default), ``"sdpa"`` or ``"plain"``."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(BACKENDS)}")
    _backend = name


def get_attention_backend() -> str:
    """The backend selected by :func:`set_attention_backend` (possibly ``"auto"``)."""
    return _backend


def resolve_attention_backend(device: torch.device, backend: Optional[str] = None) -> str:
    """``"sdpa"`` or ``"plain"``: what ``backend`` (default: the selected one) means for ``device``."""
    backend = backend or _backend
    if backend == "auto":
        return "sdpa" if device.type == "cuda" else "plain"
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


@contextmanager
def attention_backend(name: str) -> Iterator[None]:
    """Use backend ``name`` inside the ``with`` block, then restore the previous one."""
    previous = get_attention_backend()
    set_attention_backend(name)
    try:
        yield
    finally:
        set_attention_backend(previous)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: Optional[str] = None) -> torch.Tensor:
    """Scaled dot-product attention without mask or dropout.

    q: (..., L, d), k: (..., S, d), v: (..., S, dv) -> (..., L, dv); scale 1/sqrt(d).
    """
    if resolve_attention_backend(q.device, backend) == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    weights = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    return torch.matmul(weights.softmax(dim=-1), v)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero all parameters of ``module`` (the original's init for residual output layers)."""
    for p in module.parameters():
        p.detach().zero_()
    return module


class CrossAttention(nn.Module):
    """Multi-head attention of tokens x (B,N,query_dim) over context (B,M,context_dim); self-attention
    when no context is given."""

    def __init__(self, query_dim: int, context_dim: Optional[int] = None, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = (self._split_heads(t) for t in (self.to_q(x), self.to_k(context), self.to_v(context)))
        out = attention(q, k, v)  # B,heads,N,d
        b, _, n, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B,N,heads*d) -> (B,heads,N,d)"""
        b, n, _ = t.shape
        return t.view(b, n, self.heads, -1).transpose(1, 2)


class GEGLU(nn.Module):
    """Gated GELU projection: (..., dim_in) -> (..., dim_out)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """The transformer MLP with a GEGLU input projection (SD-1.x ``gated_ff``), inner width 4*dim."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        inner_dim = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner_dim), nn.Dropout(dropout), nn.Linear(inner_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to the context, feed-forward; tokens (B,N,dim)."""

    def __init__(self, dim: int, n_heads: int, d_head: int, dropout: float = 0.0, context_dim: Optional[int] = None):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads=n_heads, dim_head=d_head, dropout=dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = CrossAttention(dim, context_dim=context_dim, heads=n_heads, dim_head=d_head, dropout=dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context=context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Transformer over the pixels of a feature map: (B,C,H,W) -> (B,C,H,W), cross-attending to a
    context (B,M,context_dim)."""

    def __init__(self, in_channels: int, n_heads: int, d_head: int, depth: int = 1, dropout: float = 0.0,
                 context_dim: Optional[int] = None):
        super().__init__()
        inner_dim = n_heads * d_head
        self.norm = nn.GroupNorm(num_groups=32, num_channels=in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner_dim, n_heads, d_head, dropout=dropout, context_dim=context_dim)
             for _ in range(depth)]
        )
        self.proj_out = zero_module(nn.Conv2d(inner_dim, in_channels, kernel_size=1))

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.proj_in(self.norm(x))
        # contiguous token layout, as the original: the GEMMs then round exactly like it
        tokens = tokens.permute(0, 2, 3, 1).reshape(b, h * w, -1).contiguous()  # B,HW,inner
        for block in self.transformer_blocks:
            tokens = block(tokens, context=context)
        tokens = tokens.view(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(tokens) + x


class DepthAttention(nn.Module):
    """Each pixel of a 2D map (B,query_dim,H,W) attends over the D depth samples of its own ray in a
    frustum volume (B,context_dim,D,H,W).

    Two paths, chosen by the attention backend: ``"plain"`` projects every volume sample to a key and
    a value, as the original; the fast path (:meth:`forward_folded`) folds those projections into the
    query and the output instead, which is the same attention with ~30x fewer operations.
    """

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int, output_bias: bool = True):
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Conv2d(query_dim, inner_dim, 1, 1, bias=False)
        self.to_k = nn.Conv3d(context_dim, inner_dim, 1, 1, bias=False)
        self.to_v = nn.Conv3d(context_dim, inner_dim, 1, 1, bias=False)
        self.to_out = nn.Conv2d(inner_dim, query_dim, 1, 1, bias=output_bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if resolve_attention_backend(x.device) == "plain":
            return self.forward_plain(x, context)
        return self.forward_folded(x, context)

    def forward_plain(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The original's computation: keys and values for all D samples of every ray."""
        b, _, h, w = x.shape
        d = context.shape[2]
        hn, hd = self.heads, self.dim_head
        q = self.to_q(x).view(b, hn, hd, h, w)
        k = self.to_k(context).view(b, hn, hd, d, h, w)
        v = self.to_v(context).view(b, hn, hd, d, h, w)
        # One query per ray against D keys: the broadcast-and-sum form rounds exactly like the
        # original, and avoids cuDNN's fused attention, which fails on the full model's ~10^6
        # one-query problems.
        weights = ((q.unsqueeze(3) * k).sum(2) * hd ** -0.5).softmax(dim=2)  # B,heads,D,H,W
        out = (v * weights.unsqueeze(2)).sum(3)  # B,heads,hd,H,W
        return self.to_out(out.reshape(b, hn * hd, h, w))

    def forward_folded(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The same attention over the raw volume features: per head, q . (W_k c) = (W_k^T q) . c and
        sum_d a_d W_v c_d = W_v sum_d a_d c_d, so no key or value is computed for the D samples of a ray.

        Fastest when ``context`` is ray-major (see :func:`ray_major`): the rays are then a view.
        """
        b, _, h, w = x.shape
        c, d = context.shape[1:3]
        hn, hd = self.heads, self.dim_head
        w_k = self.to_k.weight.view(hn, hd, c)
        w_v = self.to_v.weight.view(hn, hd, c)
        q = self.to_q(x).view(b, hn, hd, h * w)
        q_c = torch.matmul(w_k.transpose(1, 2), q) * hd ** -0.5  # B,heads,C,HW: queries in feature space
        q_c = q_c.permute(0, 3, 1, 2).reshape(b * h * w, hn, c)
        rays = context.permute(0, 3, 4, 2, 1).reshape(b * h * w, d, c)
        weights = torch.bmm(q_c, rays.transpose(1, 2)).softmax(dim=-1)  # BHW,heads,D
        pooled = torch.bmm(weights, rays).view(b, h * w, hn, c).permute(0, 2, 3, 1)  # B,heads,C,HW
        out = torch.matmul(w_v, pooled)  # B,heads,hd,HW
        return self.to_out(out.reshape(b, hn * hd, h, w))


def ray_major(volume: torch.Tensor) -> torch.Tensor:
    """The same volume (B,C,D,H,W) stored as (B,H,W,D,C): each ray's samples are one contiguous
    (D,C) matrix, and a per-voxel layer sees it, permuted to (B,C,H,W,D), as channels-last."""
    return volume.permute(0, 3, 4, 2, 1).contiguous().permute(0, 4, 3, 1, 2)


class DepthTransformer(nn.Module):
    """SyncDreamer's volume condition block: (B,dim,H,W) attends to a frustum volume
    (B,context_dim,D,H,W) through :class:`DepthAttention`, added residually."""

    def __init__(self, dim: int, n_heads: int, d_head: int, context_dim: int):
        super().__init__()
        inner_dim = n_heads * d_head
        self.proj_in = nn.Sequential(
            nn.Conv2d(dim, inner_dim, 1, 1),
            nn.GroupNorm(8, inner_dim),
            nn.SiLU(True),
        )
        # no bias and ReLU: an all-zero volume (dropped condition) stays zero
        self.proj_context = nn.Sequential(
            nn.Conv3d(context_dim, context_dim, 1, 1, bias=False),
            nn.GroupNorm(8, context_dim),
            nn.ReLU(True),
        )
        self.depth_attn = DepthAttention(inner_dim, context_dim, n_heads, d_head, output_bias=False)
        self.proj_out = nn.Sequential(
            nn.GroupNorm(8, inner_dim),
            nn.ReLU(True),
            nn.Conv2d(inner_dim, inner_dim, 3, 1, 1, bias=False),
            nn.GroupNorm(8, inner_dim),
            nn.ReLU(True),
            zero_module(nn.Conv2d(inner_dim, dim, 3, 1, 1, bias=False)),
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if resolve_attention_backend(x.device) == "plain":
            context = self.proj_context(context)
        else:
            # proj_context works per voxel, so it may run on (B,C,H,W,D): for a ray-major volume that is
            # channels-last, the fast layout for conv and GroupNorm, and the output stays ray-major.
            context = self.proj_context(context.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        h = self.depth_attn(self.proj_in(x), context)
        return self.proj_out(h) + x
