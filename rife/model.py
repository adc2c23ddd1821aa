"""Loading the released RIFE weights (``flownet.pkl``) and running frame interpolation.

``flownet.pkl`` is a flat dict saved from a DistributedDataParallel wrapper, so its keys
carry a ``module.`` prefix; the original loader keeps the keys that contain ``module.`` and
deletes that substring. A plain IFNet state_dict (what RIFE's ``save_model`` writes) loads too.
"""
import contextlib
import math
import os
import pickle
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from rife.ifnet import IFNet
from utils.errors import UserError
from utils.safe_load import UnsafeCheckpointError, safe_torch_load

WEIGHTS_NAME = "flownet.pkl"
RANDOM_FLOWNET = "random"  # --model random: seeded random weights, for demos and tests without the download
RANDOM_WEIGHTS_SEED = 0
# Pixels per network call: past about half a megapixel the CPU gets no faster per pixel
# (measured on 2 cores: 8 views of 256 x 256); a GPU keeps gaining up to several strips per call.
PIXELS_PER_CALL = {"cpu": 2 ** 19, "cuda": 2 ** 23}
PAD_MULTIPLE = 32  # the coarsest level works at 1/16 of the size (1/32 with scale 0.5): sizes must divide

Inference = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (img0, img1) -> middle frame, all (B,C,H,W)


def weights_path(model_dir_or_file: str | os.PathLike) -> Path:
    """``DIR`` -> ``DIR/flownet.pkl``; a file path is used as it is."""
    path = Path(model_dir_or_file)
    return path / WEIGHTS_NAME if path.is_dir() else path


def flownet_state_dict(raw: dict) -> dict[str, torch.Tensor]:
    """The IFNet state_dict inside a loaded ``flownet.pkl`` (``module.`` prefixes removed)."""
    if any("module." in key for key in raw):
        return {key.replace("module.", ""): value for key, value in raw.items() if "module." in key}
    return dict(raw)


def _few(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")


def load_flownet(model_dir_or_file: str | os.PathLike, device: str | torch.device = "cpu",
                 plain_kernels: bool = False) -> IFNet:
    """Build IFNet and load RIFE HD v3 weights from a folder holding ``flownet.pkl`` (or the file).

    Returns the network in eval mode without gradients, on ``device``. The weights stay NCHW, as
    in the original: which conv kernels run (hence the last bits of every result) follows the
    inputs' memory layout, as there. ``plain_kernels`` runs every layer as the original does
    (the reference path: same results, slower; see ``IFBlock.heads_nhwc``). ``"random"`` builds
    seeded random weights instead (with a warning on stderr): the pipeline runs, the frames are
    meaningless.
    """
    if str(model_dir_or_file) == RANDOM_FLOWNET:
        print("WARNING: --model random: RIFE has seeded RANDOM weights, not flownet.pkl; interpolated frames "
              "and confidence maps are meaningless (pipeline test only)", file=sys.stderr)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            flownet = IFNet()
        return prepare(flownet, device, plain_kernels)
    path = weights_path(model_dir_or_file)
    if not path.is_file():
        raise UserError(
            f"RIFE weights not found at {path}; the Efficient4D repo ships them as model/{WEIGHTS_NAME}: "
            f"copy that file into ckpt/ (or pass --model DIR, the folder holding {WEIGHTS_NAME})"
        )
    try:
        raw = safe_torch_load(path)
    except UnsafeCheckpointError as err:
        raise UserError(f"RIFE weights {err}") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise UserError(f"cannot read RIFE weights {path} ({type(err).__name__}); "
                        f"the file is corrupt or not a flownet.pkl, download it again") from None
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise UserError(f"{path} is not a RIFE state_dict (expected a dict of tensors, as model/{WEIGHTS_NAME})")
    state = flownet_state_dict(raw)
    flownet = IFNet()
    expected = flownet.state_dict()
    missing, unexpected = expected.keys() - state.keys(), state.keys() - expected.keys()
    if missing or unexpected:
        parts = [f"missing {_few(missing)}" if missing else "", f"unexpected {_few(unexpected)}" if unexpected else ""]
        raise UserError(f"{path} does not hold RIFE HD v3 (IFNet) weights: "
                        + "; ".join(p for p in parts if p) + "; use the flownet.pkl from the Efficient4D repo")
    wrong = [k for k in expected if state[k].shape != expected[k].shape]
    if wrong:
        raise UserError(f"{path} has tensors of the wrong shape for RIFE HD v3: {_few(wrong)}; "
                        "use the flownet.pkl from the Efficient4D repo")
    flownet.load_state_dict(state)
    return prepare(flownet, device, plain_kernels)


def prepare(flownet: IFNet, device: str | torch.device, plain_kernels: bool) -> IFNet:
    """Eval mode, no gradients, on ``device``, with the fast or the plain kernels."""
    flownet.requires_grad_(False)
    for block in flownet.children():
        block.nhwc_heads = not plain_kernels
    return flownet.eval().to(device)


def padded_size(height: int, width: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    """(height, width) rounded up to multiples of ``multiple``."""
    return (height - 1) // multiple * multiple + multiple, (width - 1) // multiple * multiple + multiple


def pad_to_multiple(images: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Zero-pad (B,C,H,W) on the right and bottom so H and W are multiples of ``multiple``."""
    height, width = images.shape[-2:]
    padded_h, padded_w = padded_size(height, width, multiple)
    if (padded_h, padded_w) == (height, width):
        return images
    return F.pad(images, (0, padded_w - width, 0, padded_h - height))


@torch.inference_mode()
def inference(flownet: IFNet, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The frame halfway between img0 and img1, both (B,C,H,W) in [0,1] -> (B,C,H,W).

    Inputs are zero-padded to a multiple of 32 and the result cropped back. ``scale`` < 1
    estimates flow at a coarser resolution (RIFE's ``--scale``; Efficient4D uses 1).
    """
    height, width = img0.shape[-2:]
    scale_list = (4 / scale, 2 / scale, 1 / scale)
    _, _, merged = flownet(torch.cat((pad_to_multiple(img0), pad_to_multiple(img1)), 1), scale_list)
    return merged[..., :height, :width]


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (process-wide), restoring it afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def batch_size_for(device: torch.device, height: int, width: int) -> int:
    """Images of height x width per network call on ``device``: its pixel budget, at least one."""
    budget = PIXELS_PER_CALL.get(torch.device(device).type, PIXELS_PER_CALL["cpu"])
    return max(1, budget // (height * width))


def default_workers(device: torch.device) -> int:
    """Concurrent network calls: one per CPU thread on the CPU, one on a GPU."""
    return torch.get_num_threads() if torch.device(device).type == "cpu" else 1


def chunked_inference(flownet: IFNet, batch_size: int, workers: int = 1) -> Inference:
    """``inference`` over any number of pairs (B,C,H,W): at most ``batch_size`` pairs per network call.

    With ``workers`` > 1 the calls run concurrently on that many threads, each with an equal share
    of torch's intra-op threads. On a small CPU one single-threaded call per core beats one call
    spread over all cores (the network has many small ops), and it suffers far less when other
    processes compete for the cores; each pair's result is the same either way.
    """
    def infer(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        count = img0.shape[0]
        size = min(batch_size, math.ceil(count / workers))
        starts = range(0, count, size)

        def run(i: int) -> torch.Tensor:
            return inference(flownet, img0[i:i + size], img1[i:i + size])

        if workers == 1 or len(starts) == 1:
            return torch.cat([run(i) for i in starts])
        with intra_op_threads(max(1, torch.get_num_threads() // workers)), ThreadPoolExecutor(workers) as pool:
            return torch.cat(list(pool.map(run, starts)))
    return infer
