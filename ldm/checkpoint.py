"""Loading SyncDreamer checkpoints with strict key matching, and seeded random weights for runs
without one (tests, demo, benchmarks)."""
from pathlib import Path
from typing import Mapping, Union

import torch
from torch import nn

from utils.errors import UserError
from utils.safe_load import UnsafeCheckpointError, safe_torch_load

DEFAULT_CHECKPOINT = "ckpt/syncdreamer-pretrain.ckpt"
MAX_LISTED_KEYS = 10


def read_state_dict(path: Union[str, Path]) -> Mapping[str, torch.Tensor]:
    """The state dict stored at ``path``: a Lightning checkpoint's ``state_dict`` entry or a plain
    state dict. Raises UserError when the file is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found: download syncdreamer-pretrain.ckpt from the SyncDreamer "
                        f"release (links in ckpt/README.md) and put it at {DEFAULT_CHECKPOINT}")
    try:
        ckpt = safe_torch_load(path, mmap=True)  # memory-mapped: the real file is 5.6 GB
    except UnsafeCheckpointError as err:
        raise UserError(f"checkpoint {err}") from None
    except Exception as err:  # a damaged file fails anywhere in the unpickler, with any error type
        reason = (str(err).splitlines() or [""])[0][:200]
        raise UserError(f"checkpoint {path} cannot be read ({type(err).__name__}: {reason}); "
                        f"the file is truncated or not a PyTorch checkpoint: download it again") from err
    state_dict = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(state_dict, Mapping) or not all(torch.is_tensor(v) for v in state_dict.values()):
        raise UserError(f"checkpoint {path} holds no state dict of tensors; expected a SyncDreamer checkpoint "
                        f"(a dict with a 'state_dict' entry)")
    return state_dict


def _listing(label: str, items: list) -> str:
    shown = ", ".join(items[:MAX_LISTED_KEYS])
    more = f" and {len(items) - MAX_LISTED_KEYS} more" if len(items) > MAX_LISTED_KEYS else ""
    return f"{len(items)} {label} ({shown}{more})"


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise UserError naming up to 10 missing, unexpected and wrongly shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state_dict and state_dict[k].shape != v.shape]
    groups = (("missing keys", missing), ("unexpected keys", unexpected),
              ("shape mismatches (file vs model)", mismatched))
    problems = [_listing(label, items) for label, items in groups if items]
    if problems:
        raise UserError(f"checkpoint {source} does not match the model built from the config: "
                        f"{'; '.join(problems)}; use syncdreamer-pretrain.ckpt with configs/syncdreamer.yaml "
                        f"(or the config it was trained with)")


def load_checkpoint(model: nn.Module, path: Union[str, Path]) -> nn.Module:
    """Load a SyncDreamer checkpoint (Lightning ``ckpt['state_dict']`` or a plain state dict) into
    ``model`` with strict key and shape matching; tensors are copied to the model's device/dtype."""
    state_dict = read_state_dict(path)
    check_state_dict(model, state_dict, str(path))
    model.load_state_dict(state_dict, strict=True)
    return model


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))


def _default_bound(weight: torch.Tensor) -> float:
    """1/sqrt(fan_in): the bound of PyTorch's default Linear/Conv init (kaiming_uniform with a=sqrt(5))."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    return fan_in ** -0.5 if fan_in > 0 else 0.0


@torch.no_grad()
def randomize_weights(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter a seeded random value that keeps the network non-degenerate, the recipe
    of the parity fixtures (reference/README.md, "tiny/state_dict.pt"):

    * Linear/Conv layers (also the ones the original initialises to zero, which would make the UNet
      output identically 0): PyTorch's default init, uniform(+-1/sqrt(fan_in)) for weight and bias;
    * GroupNorm/LayerNorm: weight 1 + 0.1 N(0,1), bias 0.1 N(0,1);
    * every other parameter (embeddings, CLIP's class/positional embeddings and projections,
      attention in-projections): 0.02 N(0,1).

    Values are drawn on the CPU from a private generator in parameter order and then copied, so
    the result does not depend on the device, the dtype or the global RNG state (which is left
    untouched). Buffers (schedule, cameras) are not changed.
    """
    generator = torch.Generator().manual_seed(seed)
    owners = {}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            owners[id(param)] = (module, name)
    for param in model.parameters():
        module, name = owners[id(param)]
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            bound = _default_bound(module.weight)
            value = (torch.rand(param.shape, generator=generator) * 2 - 1) * bound
        elif _is_norm(module):
            value = (1.0 if name == "weight" else 0.0) + 0.1 * torch.randn(param.shape, generator=generator)
        else:
            value = 0.02 * torch.randn(param.shape, generator=generator)
        param.copy_(value)
    return model
