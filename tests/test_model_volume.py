"""Viewpoint embeddings and camera buffers (the volumes' parity is in test_parity.py)."""
import torch

from ldm.models.syncdreamer import build_model, load_config


@torch.no_grad()
def test_viewpoint_embedding_takes_flat_or_column_elevations(tiny_model, reference_dir):
    """(F,1) elevations, as batch["input_elevation"] holds them, give the same embedding as (F,)."""
    fixture = torch.load(reference_dir / "fixtures/tiny/volume.pt", weights_only=True)
    torch.testing.assert_close(tiny_model.get_viewpoint_embedding(3, fixture["elevation"][:, None]),
                               tiny_model.get_viewpoint_embedding(3, fixture["elevation"]), rtol=0, atol=0)


def test_camera_buffers_of_a_fresh_model_match_reference(repo_root, reference_dir):
    """Built from utils/cameras.py (not from the checkpoint), the camera buffers equal the original's."""
    fixture = torch.load(reference_dir / "fixtures/tiny/volume.pt", weights_only=True)
    model = build_model(load_config(repo_root / "configs/tiny.yaml"))
    torch.testing.assert_close(model.poses, fixture["poses"], rtol=0, atol=1e-6)
    torch.testing.assert_close(model.Ks, fixture["Ks"], rtol=0, atol=0)
