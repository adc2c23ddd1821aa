"""UNet (DepthWiseAttention) parity with the reference fixture tiny/unet.pt, for both attention paths."""
import pytest
import torch

from ldm.modules.attention import attention_backend

RTOL = ATOL = 1e-4  # reference/README.md section 7


@pytest.mark.parametrize("backend", ["sdpa", "plain"])
@torch.no_grad()
def test_unet_forward_matches_reference(tiny_model, reference_dir, backend):
    fixture = torch.load(reference_dir / "fixtures/tiny/unet.pt", weights_only=True)
    with attention_backend(backend):
        out = tiny_model.model.diffusion_model(fixture["x"], fixture["timesteps"], fixture["context"],
                                               source_dict=fixture["source_dict"])
    torch.testing.assert_close(out, fixture["out"], rtol=RTOL, atol=ATOL)


@torch.no_grad()
def test_unet_wrapper_rescales_concat_latent(tiny_model, reference_dir):
    """UNetWrapper feeds [x, x_concat / 0.18215] (8 channels) to the UNet, as the original."""
    fixture = torch.load(reference_dir / "fixtures/tiny/unet.pt", weights_only=True)
    x, x_concat = fixture["x"][:, :4], fixture["x"][:, 4:] * 0.18215
    out = tiny_model.model(x, fixture["timesteps"], fixture["context"], fixture["source_dict"], x_concat)
    torch.testing.assert_close(out, fixture["out"], rtol=RTOL, atol=ATOL)
