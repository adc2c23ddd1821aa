"""``--device`` values, checked against the GPUs that exist: one clear error instead of a CUDA traceback."""
import torch

from utils.errors import UserError


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: str | None) -> torch.device:
    """One device: None -> :func:`default_device`; 'cpu', 'cuda', 'cuda:N' checked for existence."""
    if name is None:
        return torch.device(default_device())
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise UserError(f"--device {name}: no CUDA GPU is visible; use --device cpu")
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1})")
    elif device.type != "cpu":
        raise UserError(f"--device {name}: only cpu and cuda devices are supported")
    return device


def resolve_devices(spec: str) -> list[torch.device]:
    """'cpu', 'cuda' (every visible GPU), 'cuda:1', or a comma-separated list such as 'cuda:0,cuda:2'."""
    names = [d.strip() for d in spec.split(",") if d.strip()]
    if not names:
        raise UserError("--device is empty; use cpu, cuda, cuda:N or a comma-separated list")
    devices = []
    for name in names:
        device = resolve_device(name)
        if device.type == "cuda" and device.index is None:
            devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        else:
            devices.append(device)
    return devices
