"""Where the metric networks' weights are found. Nothing is ever downloaded.

Each weight file is either passed as a path or found where its library keeps it; a missing file
is one line naming the path looked at and where the file is published.
"""
from pathlib import Path

import torch

from utils.errors import UserError
from utils.safe_load import UnsafeCheckpointError, safe_torch_load

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_HEADS_URL = "https://github.com/richzhang/PerceptualSimilarity (lpips/weights/v0.1/vgg.pth; `pip install lpips` ships it)"
# OpenAI's CLIP ViT-B/32 in open_clip's format, then the Hugging Face copy the official script loads.
CLIP_HUB_FILES = (
    ("timm/vit_base_patch32_clip_224.openai", ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")),
    ("openai/clip-vit-base-patch32", ("model.safetensors", "pytorch_model.bin")),
)
I3D_DEFAULT = Path("ckpt/i3d_pretrained_400.pt")
I3D_URL = "https://drive.google.com/file/d/1J8w3fGj6H6kmcW9G8Ff6tRQofblaG5Vn/view (the link in the Consistent4D README, from DisCo)"


def _require(path: Path, what: str, flag: str, published: str) -> Path:
    if not path.is_file():
        raise UserError(f"{what} weights not found at {path}; download {published} and put it there, or pass {flag} FILE")
    return path


def lpips_vgg(path: str | None = None) -> Path:
    """torchvision's ImageNet VGG16 (the LPIPS backbone), by default from torch hub's cache."""
    default = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    return _require(Path(path) if path else default, "LPIPS VGG16 backbone", "--lpips_vgg", VGG16_URL)


def lpips_heads(path: str | None = None) -> Path:
    """The LPIPS v0.1 VGG linear heads, by default the copy the ``lpips`` package installs."""
    if path:
        return _require(Path(path), "LPIPS linear-head", "--lpips_heads", LPIPS_HEADS_URL)
    try:
        import lpips
    except ImportError:
        raise UserError("the lpips metric needs the lpips package; run `pip install lpips`") from None
    return _require(Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth", "LPIPS linear-head", "--lpips_heads", LPIPS_HEADS_URL)


def clip(path: str | None = None) -> Path:
    """OpenAI CLIP ViT-B/32 (open_clip or Hugging Face state dict): a file, a downloaded repository
    folder holding one, or by default the Hugging Face cache."""
    repo, files = CLIP_HUB_FILES[0]  # where to download from, when nothing is found
    if path and Path(path).is_dir():  # a downloaded repository folder
        names = [name for _, repo_files in CLIP_HUB_FILES for name in repo_files]
        found = next((Path(path) / name for name in names if (Path(path) / name).is_file()), None)
        if found is None:
            raise UserError(f"--clip_model {path} is a folder without CLIP weights (looked for {', '.join(names)})")
        return found
    if path:
        return _require(Path(path), "CLIP ViT-B/32", "--clip_model", f"https://huggingface.co/{repo}")
    from huggingface_hub import try_to_load_from_cache

    for cached_repo, names in CLIP_HUB_FILES:
        for name in names:
            cached = try_to_load_from_cache(cached_repo, name)
            if isinstance(cached, str):
                return Path(cached)
    searched = " or ".join(r for r, _ in CLIP_HUB_FILES)
    raise UserError(f"CLIP ViT-B/32 weights not found in the Hugging Face cache ({searched}); "
                    f"download {files[0]} from https://huggingface.co/{repo}, or pass --clip_model FILE")


def i3d(path: str | None = None) -> Path:
    """The I3D-400 network of the official FVD script (``i3d_pretrained_400.pt``)."""
    return _require(Path(path) if path else I3D_DEFAULT, "I3D (FVD)", "--model_path", I3D_URL)


def load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file, read without running pickled code."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = safe_torch_load(path)
    except UnsafeCheckpointError as err:
        raise UserError(f"{what} weights {err}") from None
    except Exception as err:  # truncated or foreign file: name it
        raise UserError(f"cannot read {what} weights {path} ({type(err).__name__}); download the file again") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state dict of {what} weights; download the file again")
    return state


def check_keys(path: Path, what: str, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    """One line naming up to 5 missing, unexpected or mis-shaped keys."""
    missing = [k for k in expected if k not in found]
    shapes = [k for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    if missing or shapes:
        detail = f"missing {', '.join(missing[:5])}" if missing else f"wrong shape {', '.join(shapes[:5])}"
        raise UserError(f"{path} does not hold {what} weights ({detail}); pass the file named in the README")
