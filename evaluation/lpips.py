"""LPIPS (VGG, v0.1) as the official script scores it: inputs in [-1, 1], one score per frame.

The network is the ``lpips`` package's own (the one torchmetrics wraps); we only fill its weights
from files instead of letting torchvision download the backbone. The VGG16 backbone comes from
torchvision's ImageNet file (``features.{i}.*``), the five linear heads from LPIPS' ``vgg.pth``.
"""
import warnings

import numpy as np
import torch

from evaluation.weights import check_keys, load_state_dict

# lpips' VGG slices end after these torchvision ``features`` indices (relu1_2 ... relu5_3).
SLICE_ENDS = (4, 9, 16, 23, 30)
FRAMES_PER_BATCH = 4  # VGG activations of one 512 px pair take about 0.5 GB


def _slice_of(index: int) -> int:
    return next(s for s, end in enumerate(SLICE_ENDS, start=1) if index < end)


def lpips_state_dict(vgg: dict[str, torch.Tensor], heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision VGG16 ``features.{i}.{weight,bias}`` + LPIPS ``lin{k}.model.1.weight`` ->
    the keys of ``lpips.LPIPS(net="vgg")`` (``net.slice{s}.{i}.*``, ``lin{k}.*`` and their ``lins.{k}.*`` aliases)."""
    state = {}
    for key, tensor in vgg.items():
        parts = key.split(".")
        if parts[0] == "features":
            state[f"net.slice{_slice_of(int(parts[1]))}.{parts[1]}.{parts[2]}"] = tensor
    for k in range(len(SLICE_ENDS)):
        weight = heads[f"lin{k}.model.1.weight"]
        state[f"lin{k}.model.1.weight"] = weight
        state[f"lins.{k}.model.1.weight"] = weight
    return state


def expected_files(net: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The keys (and shapes) the two files must hold: torchvision VGG16 ``features.*``, LPIPS ``lin{k}.*``."""
    vgg, heads = {}, {}
    for key, tensor in net.state_dict().items():
        parts = key.split(".")
        if parts[0] == "net":  # net.slice{s}.{i}.{weight,bias}
            vgg[f"features.{parts[2]}.{parts[3]}"] = tensor
        elif parts[0].startswith("lin") and parts[0] != "lins":
            heads[key] = tensor
    return vgg, heads


class LPIPSMetric:
    """``metric(pred, gt)``: (N,H,W,3) uint8 pairs -> (N,) LPIPS distances."""

    def __init__(self, net: torch.nn.Module, device: torch.device):
        self.net = net.to(device).eval()
        self.device = device

    @classmethod
    def from_files(cls, vgg_path, heads_path, device: torch.device) -> "LPIPSMetric":
        import lpips

        # Built on the meta device: no random initialisation of 138 M VGG weights that are overwritten.
        # lpips passes torchvision the deprecated ``pretrained=False``; its warning is noise here.
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            net = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)
        expected_vgg, expected_heads = expected_files(net)
        vgg, heads = load_state_dict(vgg_path, "VGG16"), load_state_dict(heads_path, "LPIPS heads")
        check_keys(vgg_path, "torchvision VGG16", expected_vgg, vgg)
        check_keys(heads_path, "LPIPS v0.1 VGG heads", expected_heads, heads)
        state = lpips_state_dict(vgg, heads)
        state.update({f"scaling_layer.{k}": v for k, v in net.scaling_layer.state_dict().items()})
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
        return cls(net, device)

    @torch.no_grad()
    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        scores = []
        for start in range(0, len(pred), FRAMES_PER_BATCH):
            a, b = (torch.from_numpy(np.ascontiguousarray(x[start:start + FRAMES_PER_BATCH])).to(self.device)
                    .permute(0, 3, 1, 2).float() / 127.5 - 1.0 for x in (pred, gt))
            scores.append(self.net(a, b).flatten().double().cpu())
        return torch.cat(scores).numpy()
