"""No weight file we read can run code: RIFE's flownet.pkl and reconstruct.py's checkpoint.pt are
refused when crafted (the SyncDreamer checkpoint's cases are in test_checkpoint.py)."""
import pytest
import torch

from crafted_pickles import RunsCommand, save_lightning_checkpoint
from recon.trainer import load_checkpoint as load_recon_checkpoint
from rife.model import load_flownet
from utils.errors import UserError
from utils.safe_load import UnsafeCheckpointError, safe_torch_load


def _crafted(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / name
    torch.save({"module.block0.conv0.0.0.weight": torch.zeros(1), "x": RunsCommand(f"touch {marker}")}, path)
    return path, marker


def test_crafted_flownet_is_refused_without_running_it(tmp_path):
    path, marker = _crafted(tmp_path, "flownet.pkl")
    with pytest.raises(UserError, match="RIFE weights .*unsafe to load"):
        load_flownet(path, "cpu")
    assert not marker.exists()


def test_crafted_reconstruction_checkpoint_is_refused_without_running_it(tmp_path):
    path, marker = _crafted(tmp_path, "checkpoint.pt")
    with pytest.raises(UserError):
        load_recon_checkpoint(path)
    assert not marker.exists()


def test_training_state_becomes_inert_stand_ins(tmp_path, monkeypatch):
    path = tmp_path / "lightning.ckpt"
    save_lightning_checkpoint(path, {"w": torch.arange(3.0)}, monkeypatch)
    ckpt = safe_torch_load(path)
    assert torch.equal(ckpt["state_dict"]["w"], torch.arange(3.0))
    (callback_class, state), = ckpt["callbacks"].items()
    assert callback_class.__module__ == "pytorch_lightning.callbacks.model_checkpoint"
    assert type(ckpt["hyper_parameters"]).__qualname__ == "DictConfig" and ckpt["epoch"] == 3


def test_unsafe_error_names_the_globals(tmp_path):
    path, marker = _crafted(tmp_path, "any.pt")
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(path, mmap=True)
    assert any(name.endswith(".system") for name in info.value.names)
    assert not marker.exists()
