"""UNetWrapper feeds the UNet as the original (its forward's parity is in test_parity.py)."""
import torch

from tools.parity.tolerances import NETWORK


@torch.no_grad()
def test_unet_wrapper_rescales_concat_latent(tiny_model, reference_dir):
    """UNetWrapper feeds [x, x_concat / 0.18215] (8 channels) to the UNet, as the original."""
    fixture = torch.load(reference_dir / "fixtures/tiny/unet.pt", weights_only=True)
    x, x_concat = fixture["x"][:, :4], fixture["x"][:, 4:] * 0.18215
    out = tiny_model.model(x, fixture["timesteps"], fixture["context"], fixture["source_dict"], x_concat)
    torch.testing.assert_close(out, fixture["out"], rtol=NETWORK.rtol, atol=NETWORK.atol)
