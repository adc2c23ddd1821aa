"""CLIP image encoder (open_clip, OpenAI architecture): parity with tiny/clip.pt."""
import pytest
import torch


RTOL = ATOL = 1e-4  # reference/README.md section 7


@pytest.mark.parametrize("size", [64, 256])
@torch.no_grad()
def test_clip_preprocess_and_embedding_match_reference(tiny_model, reference_dir, size):
    fixture = torch.load(reference_dir / "fixtures/tiny/clip.pt", weights_only=True)
    encoder = tiny_model.clip_image_encoder
    x = fixture[f"x{size}"]
    torch.testing.assert_close(encoder.preprocess(x), fixture[f"preprocess{size}"], rtol=RTOL, atol=ATOL)
    embedding = encoder.encode(x)
    assert embedding.shape == (x.shape[0], 1, 768)
    torch.testing.assert_close(embedding, fixture[f"encode{size}"], rtol=RTOL, atol=ATOL)


def test_clip_normalisation_buffers_are_not_persistent(tiny_model, reference_dir):
    fixture = torch.load(reference_dir / "fixtures/tiny/clip.pt", weights_only=True)
    torch.testing.assert_close(tiny_model.clip_image_encoder.mean, fixture["mean"], rtol=0, atol=0)
    torch.testing.assert_close(tiny_model.clip_image_encoder.std, fixture["std"], rtol=0, atol=0)
    assert not any(k.endswith((".mean", ".std")) for k in tiny_model.state_dict() if k.startswith("clip_image_encoder"))
