"""The fused attention path (scaled_dot_product_attention) agrees with the plain softmax math."""
import pytest
import torch

from ldm.modules.attention import (CrossAttention, DepthAttention, DepthTransformer, attention, attention_backend,
                                   get_attention_backend, ray_major, resolve_attention_backend,
                                   set_attention_backend)
from ldm.modules.autoencoder import AttnBlock


def _both_backends(fn):
    with attention_backend("plain"):
        plain = fn()
    with attention_backend("sdpa"):
        fused = fn()
    return plain, fused


def test_attention_backends_agree_on_random_tensors():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 16, generator=g) for n in (10, 7, 7))
    plain = attention(q, k, v, backend="plain")
    reference = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1) @ v
    torch.testing.assert_close(plain, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attention(q, k, v, backend="sdpa"), plain, rtol=1e-5, atol=1e-5)


def test_cross_attention_backends_agree():
    torch.manual_seed(0)
    layer = CrossAttention(32, context_dim=24, heads=4, dim_head=8).eval()
    x, context = torch.randn(3, 20, 32), torch.randn(3, 5, 24)
    plain, fused = _both_backends(lambda: layer(x, context))
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    self_attention = CrossAttention(32, heads=4, dim_head=8).eval()
    plain, fused = _both_backends(lambda: self_attention(x))
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["plain", "sdpa"])
def test_depth_attention_is_per_pixel_softmax_over_its_ray(backend):
    """Each pixel attends only over the D samples of its own ray, one problem per pixel and head."""
    torch.manual_seed(0)
    heads, dim_head = 2, 8
    layer = DepthAttention(16, context_dim=12, heads=heads, dim_head=dim_head, output_bias=False).eval()
    x, context = torch.randn(2, 16, 5, 6), torch.randn(2, 12, 7, 5, 6)
    with torch.no_grad(), attention_backend(backend):
        out = layer(x, context)
        q, k, v = layer.to_q(x), layer.to_k(context), layer.to_v(context)
        for b, i, j in [(0, 0, 0), (1, 3, 4), (0, 4, 5)]:
            per_head = []
            for head in range(heads):
                c = slice(head * dim_head, (head + 1) * dim_head)
                keys, values = k[b, c, :, i, j].T, v[b, c, :, i, j].T  # D,hd
                weights = torch.softmax(keys @ q[b, c, i, j] / dim_head ** 0.5, dim=0)  # D
                per_head.append(weights @ values)
            expected = layer.to_out.weight[:, :, 0, 0] @ torch.cat(per_head)
            torch.testing.assert_close(out[b, :, i, j], expected, rtol=1e-5, atol=1e-5)


def test_ray_major_keeps_values_and_makes_each_ray_contiguous():
    volume = torch.randn(2, 12, 7, 5, 6)
    laid_out = ray_major(volume)
    assert torch.equal(laid_out, volume)
    assert laid_out.permute(0, 3, 4, 2, 1).is_contiguous()  # B,H,W,D,C: the folded path's rays are a view
    assert laid_out.permute(0, 1, 3, 4, 2).is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize("layout", [lambda v: v, ray_major], ids=["contiguous", "ray_major"])
def test_folded_depth_attention_equals_the_original_form(layout):
    """The fast path folds the key/value projections into the query and output; same attention."""
    torch.manual_seed(0)
    layer = DepthAttention(16, context_dim=12, heads=4, dim_head=6).eval()
    x, context = torch.randn(3, 16, 5, 6), torch.randn(3, 12, 7, 5, 6)
    with torch.no_grad():
        plain = layer.forward_plain(x, context)
        folded = layer.forward_folded(x, layout(context))
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", [lambda v: v, ray_major], ids=["contiguous", "ray_major"])
def test_depth_transformer_backends_agree(layout):
    """The fast path runs proj_context on the (B,C,H,W,D) view: channels-last for a ray-major volume."""
    torch.manual_seed(0)
    block = DepthTransformer(32, 4, 8, context_dim=16).eval()
    for p in block.proj_out[-1].parameters():  # the zero-initialised output conv would hide any difference
        torch.nn.init.normal_(p, std=0.1)
    x, context = torch.randn(2, 32, 6, 5), torch.randn(2, 16, 7, 6, 5)
    with torch.no_grad():
        with attention_backend("plain"):
            plain = block(x, context)
        with attention_backend("sdpa"):
            fast = block(x, layout(context))
    assert (plain - x).abs().max() > 0.1
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def test_vae_attention_backends_agree():
    torch.manual_seed(0)
    block = AttnBlock(64).eval()
    x = torch.randn(2, 64, 6, 5)
    with torch.no_grad():
        plain, fused = _both_backends(lambda: block(x))
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


def test_backend_selection():
    assert get_attention_backend() == "auto"
    assert resolve_attention_backend(torch.device("cpu")) == "plain"
    assert resolve_attention_backend(torch.device("cuda", 0)) == "sdpa"
    with attention_backend("sdpa"):
        assert get_attention_backend() == "sdpa"
        assert resolve_attention_backend(torch.device("cpu")) == "sdpa"
    assert get_attention_backend() == "auto"
    assert resolve_attention_backend(torch.device("cuda"), backend="plain") == "plain"
    with pytest.raises(ValueError, match="unknown attention backend"):
        set_attention_backend("xformers")
