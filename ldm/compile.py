"""Optional ``torch.compile`` of the networks that run at every DDIM step: the UNet and the spatial
volume's three nets (target-view encoder, 3D U-Net, frustum net).

Their input shapes repeat across the 50 steps (one shape per frame/view chunk), so a compile serves
every step after the first. It is off by default: it pays only where the compile time (tens of
seconds; inductor caches its kernels on disk, so a second run compiles much faster) is below what the
steps save, which ``tools/bench_generate --compile`` measures. The plain modules stay the reference:
``tests/test_compile.py`` checks that a compiled model generates the same frames.
"""
import importlib.util
import shutil

import torch
from torch import nn

from utils.errors import UserError

COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def check_compile(mode: str, device: torch.device) -> None:
    """One line for what would otherwise fail deep inside the first step: an unknown mode, or a machine
    without inductor's code generator (a C++ compiler on the CPU, Triton on CUDA)."""
    if mode not in COMPILE_MODES:
        raise UserError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "off":
        return
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise UserError("--compile on the CPU needs a C++ compiler (g++ or clang++) on PATH; install one or leave --compile off")
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise UserError("--compile on CUDA needs Triton (it ships with PyTorch's CUDA wheels: pip install triton), "
                        "or leave --compile off")


def step_networks(model: nn.Module) -> list[nn.Module]:
    """The modules a DDIM step runs, in the order it runs them."""
    volume = model.spatial_volume
    return [volume.target_encoder, volume.spatial_volume_feats, volume.frustum_volume_feats, model.model]


def compile_step_networks(model: nn.Module, mode: str, backend: str = "inductor") -> nn.Module:
    """Compile ``step_networks(model)`` in place (their parameters and state-dict keys are unchanged);
    ``mode`` is torch.compile's ("reduce-overhead" adds CUDA graphs on CUDA), ``backend`` its backend
    ("aot_eager" captures the same graphs but runs them eagerly: no code generation). Returns ``model``.

    Compile each replica after it is made: a deep copy of a compiled module would call the original."""
    if mode != "off":
        for module in step_networks(model):
            module.compile(mode=None if mode == "default" else mode, backend=backend, dynamic=False)
    return model
