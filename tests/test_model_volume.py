"""Spatial / frustum volume, time and viewpoint embeddings: parity with tiny/volume.pt."""
import pytest
import torch

from ldm.models.syncdreamer import build_model, load_config

RTOL = ATOL = 1e-4  # reference/README.md section 7


@pytest.fixture(scope="module")
def fixture(reference_dir):
    return torch.load(reference_dir / "fixtures/tiny/volume.pt", weights_only=True)


def _assert_dict_close(actual: dict, expected: dict):
    assert sorted(actual) == sorted(expected)
    for width, tensor in expected.items():
        torch.testing.assert_close(actual[width], tensor, rtol=RTOL, atol=ATOL)


@torch.no_grad()
def test_time_and_viewpoint_embeddings(tiny_model, fixture):
    torch.testing.assert_close(tiny_model.embed_time(fixture["timesteps"]), fixture["t_embed"], rtol=RTOL, atol=ATOL)
    v_embed = tiny_model.get_viewpoint_embedding(3, fixture["elevation"])
    torch.testing.assert_close(v_embed, fixture["v_embed"], rtol=RTOL, atol=ATOL)
    # (F,1) elevations, as batch["input_elevation"] holds them, give the same embedding
    torch.testing.assert_close(tiny_model.get_viewpoint_embedding(3, fixture["elevation"][:, None]), v_embed)


def test_camera_buffers_of_a_fresh_model_match_reference(repo_root, fixture):
    """Built from utils/cameras.py (not from the checkpoint), the camera buffers equal the original's."""
    model = build_model(load_config(repo_root / "configs/tiny.yaml"))
    torch.testing.assert_close(model.poses, fixture["poses"], rtol=0, atol=1e-6)
    torch.testing.assert_close(model.Ks, fixture["Ks"], rtol=0, atol=0)


@torch.no_grad()
def test_spatial_volume_matches_reference(tiny_model, fixture):
    volume = tiny_model.spatial_volume.construct_spatial_volume(
        fixture["x"], fixture["t_embed"], fixture["v_embed"], fixture["poses"], fixture["Ks"])
    torch.testing.assert_close(volume, fixture["spatial_volume"], rtol=RTOL, atol=ATOL)


@torch.no_grad()
def test_frustum_volume_matches_reference(tiny_model, fixture):
    feats, depth = tiny_model.spatial_volume.construct_view_frustum_volume(
        fixture["spatial_volume"], fixture["t_embed"], fixture["v_embed"], fixture["poses"], fixture["Ks"],
        fixture["target_indices"])
    _assert_dict_close(feats, fixture["frustum_volume_feats"])
    torch.testing.assert_close(depth, fixture["frustum_volume_depth"], rtol=RTOL, atol=ATOL)


@torch.no_grad()
def test_target_view_feats_match_reference(tiny_model, fixture):
    inputs, expected = fixture["target_view_feats_inputs"], fixture["target_view_feats"]
    clip_embed, volume_feats, x_concat = tiny_model.get_target_view_feats(
        inputs["x_input"], fixture["spatial_volume"], inputs["clip_embed"], fixture["t_embed"], fixture["v_embed"],
        fixture["target_indices"])
    torch.testing.assert_close(clip_embed, expected["clip_embed"], rtol=RTOL, atol=ATOL)
    _assert_dict_close(volume_feats, expected["volume_feats"])
    torch.testing.assert_close(x_concat, expected["x_concat"], rtol=RTOL, atol=ATOL)
