"""Checkpoint contents for the safe-loading tests: a pickle that would run a command, and the training
state a real Lightning checkpoint pickles beside its weights."""
import argparse
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch


class RunsCommand:
    """Unpickling this calls ``os.system(command)`` under a full unpickler."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _fake_class(module: types.ModuleType, name: str) -> type:
    def __setstate__(self, state):
        raise AssertionError(f"{name} code ran while loading")  # pickling never calls it; loading must not
    cls = type(name, (), {"__module__": module.__name__, "__setstate__": __setstate__})
    setattr(module, name, cls)
    return cls


def save_lightning_checkpoint(path: Path, state_dict: dict, monkeypatch) -> None:
    """Write ``state_dict`` as pytorch_lightning 1.x does: callbacks keyed by their class, OmegaConf
    hyper-parameters, argparse ``hparams``, numpy scalars. The packages are faked for the save only and
    are gone from ``sys.modules`` when the caller loads the file."""
    modules = {name: types.ModuleType(name) for name in
               ("pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint",
                "omegaconf", "omegaconf.dictconfig")}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    model_checkpoint = _fake_class(modules["pytorch_lightning.callbacks.model_checkpoint"], "ModelCheckpoint")
    dict_config = _fake_class(modules["omegaconf.dictconfig"], "DictConfig")
    hyper_parameters = dict_config.__new__(dict_config)
    hyper_parameters.__dict__.update(_content={"base_learning_rate": 5e-5, "view_num": 16})
    torch.save({
        "epoch": 3, "global_step": 18000, "pytorch-lightning_version": "1.4.2",
        "state_dict": state_dict,
        "callbacks": {model_checkpoint: {"best_model_score": np.float64(0.25), "best_model_path": "epoch=3.ckpt"}},
        "hyper_parameters": hyper_parameters,
        "hparams": argparse.Namespace(lr=1e-4, finetune_unet=False),
        "optimizer_states": [], "lr_schedulers": [],
    }, path)
    for name in modules:
        monkeypatch.delitem(sys.modules, name)
