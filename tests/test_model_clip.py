"""CLIP image encoder (open_clip, OpenAI architecture): its normalisation buffers (the embedding's
parity is in test_parity.py)."""
import torch


def test_clip_normalisation_buffers_are_not_persistent(tiny_model, reference_dir):
    fixture = torch.load(reference_dir / "fixtures/tiny/clip.pt", weights_only=True)
    torch.testing.assert_close(tiny_model.clip_image_encoder.mean, fixture["mean"], rtol=0, atol=0)
    torch.testing.assert_close(tiny_model.clip_image_encoder.std, fixture["std"], rtol=0, atol=0)
    assert not any(k.endswith((".mean", ".std")) for k in tiny_model.state_dict() if k.startswith("clip_image_encoder"))
