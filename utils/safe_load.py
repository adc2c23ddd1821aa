"""Reading weight files so that nothing in them can run code.

Every file goes through PyTorch's weights-only unpickler, which rebuilds tensors and plain containers
and refuses everything else. Lightning checkpoints (``syncdreamer-pretrain.ckpt``) also pickle training
state beside the weights: callbacks (keyed by their class), OmegaConf or argparse hyper-parameters,
numpy scalars. Objects from those packages are rebuilt as inert stand-ins: their modules are never
imported and none of their code runs, and the weights never depend on them. A file that names any
other global (``os.system``, ``builtins.exec``, ...) is refused as unsafe.
"""
import os
import pickle
from pathlib import Path

import torch

# Packages whose pickled objects are training state, admitted as inert stand-ins.
TRAINING_STATE_PACKAGES = ("pytorch_lightning", "lightning", "lightning_fabric", "omegaconf", "argparse", "numpy",
                           "collections", "copyreg", "typing", "pathlib", "_codecs")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file's pickle names globals outside the weights and the admitted training state."""

    def __init__(self, path: Path, names: list[str]):
        self.names = names
        super().__init__(f"{path} is unsafe to load: its pickle asks for {', '.join(names[:5])}, which could run "
                         "code; it was not loaded (use a checkpoint from a source you trust, re-saved as a "
                         "plain state_dict)")


class _StandIn:
    """An inert object in place of pickled training state: takes any arguments and state, runs nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _stand_in(qualified_name: str) -> tuple[type, str]:
    module, _, name = qualified_name.rpartition(".")
    return type(name, (_StandIn,), {"__module__": module, "__qualname__": name}), qualified_name


def _is_training_state(qualified_name: str) -> bool:
    return qualified_name.split(".")[0] in TRAINING_STATE_PACKAGES


def _load(path: Path, mmap: bool) -> object:
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            # files written with torch's legacy (non-zip) serialisation cannot be memory-mapped
    return torch.load(path, map_location="cpu", weights_only=True)


def safe_torch_load(path: str | os.PathLike, mmap: bool = False) -> object:
    """``torch.load`` of ``path`` on the CPU with no code from the file run (see the module docstring).

    Raises UnsafeCheckpointError for a file that names other globals; any other error of a damaged or
    foreign file propagates (callers turn it into a one-line message). ``mmap`` memory-maps zip-format
    files, so a 5.6 GB checkpoint is not read into memory twice.
    """
    path = Path(path)
    try:
        return _load(path, mmap)
    except pickle.UnpicklingError as err:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # not a zip-format file: the weights-only refusal stands
            raise err from None
        if not names:
            raise
        refused = [name for name in names if not _is_training_state(name)]
        if refused:
            raise UnsafeCheckpointError(path, refused) from None
        with torch.serialization.safe_globals([_stand_in(name) for name in names]):
            return _load(path, mmap)
