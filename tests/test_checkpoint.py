"""Checkpoint loading (strict keys, clear errors), the full-size key layout, config handling and the
seeded random weights."""
import copy
import json

import pytest
import torch

from ldm.checkpoint import load_checkpoint, randomize_weights
from ldm.models.syncdreamer import build_model, load_config
from crafted_pickles import RunsCommand, save_lightning_checkpoint
from utils.errors import UserError


@pytest.fixture(scope="module")
def tiny_cfg(repo_root):
    return load_config(repo_root / "configs/tiny.yaml")


@pytest.fixture(scope="module")
def tiny_state_dict(reference_dir):
    return torch.load(reference_dir / "fixtures/tiny/state_dict.pt", weights_only=True)


def _manifest(reference_dir) -> dict:
    entries = json.loads((reference_dir / "syncdreamer_state_dict.json").read_text())["state_dict"]
    return {k: (tuple(v["shape"]), v["dtype"]) for k, v in entries.items()}


def _layout(model) -> dict:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}


def test_full_size_model_has_the_checkpoint_key_layout(repo_root, reference_dir):
    model = build_model(load_config(repo_root / "configs/syncdreamer.yaml"), device="meta")
    assert _layout(model) == _manifest(reference_dir)
    assert (model.view_num, model.image_size, model.latent_size) == (16, 256, 32)


def test_original_style_config_builds_the_same_layout(repo_root, reference_dir):
    """The original's config file (no size overrides, training keys present) gives the same model."""
    cfg = copy.deepcopy(load_config(repo_root / "configs/syncdreamer.yaml"))
    params = cfg["model"]["params"]
    for key in ("first_stage_config", "spatial_volume_config", "clip_config"):
        del params[key]
    params.update(cfg_scale=2.0, output_num=8, batch_view_num=4, finetune_unet=False, finetune_projection=False,
                  drop_conditions=False, clip_image_encoder_path="ckpt/ViT-L-14.pt",
                  scheduler_config={"target": "ldm.lr_scheduler.LambdaLinearScheduler", "params": {}})
    params["unet_config"]["target"] = "ldm.models.diffusion.sync_dreamer_attention.DepthWiseAttention"
    cfg["model"]["target"] = "ldm.models.diffusion.sync_dreamer.SyncMultiviewDiffusion"
    assert _layout(build_model(cfg, device="meta")) == _manifest(reference_dir)


def test_tiny_fixture_weights_load_strictly(tiny_cfg, tiny_state_dict, reference_dir):
    model = load_checkpoint(build_model(tiny_cfg), reference_dir / "fixtures/tiny/state_dict.pt")
    loaded = model.state_dict()
    assert loaded.keys() == tiny_state_dict.keys()
    assert all(torch.equal(loaded[k], v) for k, v in tiny_state_dict.items())
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_lightning_checkpoint_with_pickled_training_state_loads(tiny_cfg, tiny_state_dict, tmp_path, monkeypatch):
    """A Lightning-format file: callbacks keyed by their class, OmegaConf and argparse hyper-parameters,
    numpy scalars; the packages that pickled them are absent when it loads, and it loads strictly."""
    path = tmp_path / "lightning.ckpt"
    save_lightning_checkpoint(path, tiny_state_dict, monkeypatch)
    model = load_checkpoint(build_model(tiny_cfg), path)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in tiny_state_dict.items())


def test_crafted_checkpoint_runs_no_code_and_is_called_unsafe(tiny_cfg, tiny_state_dict, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": tiny_state_dict, "epoch": RunsCommand(f"touch {marker}")}, path)
    with pytest.raises(UserError, match=r"unsafe to load.*system") as info:
        load_checkpoint(build_model(tiny_cfg), path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_missing_checkpoint_says_where_to_get_it(tiny_cfg, tmp_path):
    with pytest.raises(UserError, match=r"not found.*SyncDreamer release.*ckpt/syncdreamer-pretrain\.ckpt"):
        load_checkpoint(build_model(tiny_cfg), tmp_path / "syncdreamer-pretrain.ckpt")


def test_truncated_checkpoint_is_reported(tiny_cfg, tiny_state_dict, tmp_path):
    path = tmp_path / "full.ckpt"
    torch.save({"state_dict": tiny_state_dict}, path)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(build_model(tiny_cfg), truncated)
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(build_model(tiny_cfg), not_a_checkpoint)


def test_wrong_keys_are_listed(tiny_cfg, tiny_state_dict, tmp_path):
    state_dict = dict(tiny_state_dict)
    missing = [k for k in state_dict if k.startswith("spatial_volume.")][:12]
    for key in missing:
        del state_dict[key]
    state_dict["model.diffusion_model.extra.weight"] = torch.zeros(3)
    state_dict["cc_projection.bias"] = torch.zeros(5)
    path = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": state_dict}, path)
    with pytest.raises(UserError) as info:
        load_checkpoint(build_model(tiny_cfg), path)
    message = str(info.value)
    assert "\n" not in message
    assert "12 missing keys" in message and "and 2 more" in message
    assert all(key in message for key in missing[:10]) and missing[10] not in message
    assert "1 unexpected keys (model.diffusion_model.extra.weight)" in message
    assert "cc_projection.bias (5,) vs (768,)" in message


def test_randomize_weights_is_seeded_and_non_degenerate(tiny_cfg):
    model_a, model_b = build_model(tiny_cfg), build_model(tiny_cfg)
    buffers = {k: v.clone() for k, v in model_a.named_buffers()}
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    randomize_weights(model_a, seed=7)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global generator is left alone
    torch.manual_seed(999)  # a different global state must not change the result
    randomize_weights(model_b, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(model_a.parameters(), model_b.parameters()))
    assert all(torch.equal(v, dict(model_a.named_buffers())[k]) for k, v in buffers.items())
    assert not torch.equal(randomize_weights(build_model(tiny_cfg), seed=8).cc_projection.weight,
                           model_a.cc_projection.weight)
    # the zero-initialised output layers got weights: the UNet output is not identically zero
    unet = model_a.model.diffusion_model
    assert all(p.abs().sum() > 0 for p in unet.out.parameters())
    x = torch.randn(2, 8, 8, 8)
    source = {8: torch.randn(2, 8, 8, 8, 8), 4: torch.randn(2, 16, 8, 4, 4), 2: torch.randn(2, 32, 8, 2, 2),
              1: torch.randn(2, 64, 8, 1, 1)}
    with torch.no_grad():
        out = unet(x, torch.tensor([10, 500]), torch.randn(2, 1, 768), source_dict=source)
    assert torch.isfinite(out).all() and out.abs().mean() > 1e-3


def test_config_errors_are_user_errors(tiny_cfg, tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad_yaml)
    cfg = copy.deepcopy(tiny_cfg)
    cfg["model"]["params"]["unet_config"]["params"]["num_head"] = 8
    with pytest.raises(UserError, match="unknown key.*num_head"):
        build_model(cfg, device="meta")
    cfg = copy.deepcopy(tiny_cfg)
    cfg["model"]["params"]["image_size"] = 60
    with pytest.raises(UserError, match="multiple of 8"):
        build_model(cfg, device="meta")
