"""The ``rembg`` matting method: rembg's ONNX models, run through onnxruntime as rembg runs them.

SV4D and DreamGaussian4D remove backgrounds with rembg. Its models are ONNX files that rembg
keeps in ``$U2NET_HOME`` (default ``~/.u2net``): ``u2net.onnx``, ``isnet-general-use.onnx``,
``birefnet-general.onnx``, ... We run them the way rembg's sessions do, with onnxruntime (which
rembg itself installs): the frame resized (Lanczos) to the model's square input, divided by its
brightest value, normalised per channel, NCHW float32; the first output's channel 0 (through a
sigmoid for BiRefNet), scaled to [0,1] by its min and max, to uint8, resized back (Lanczos). A
file named like none of rembg's models is taken as a rembg *custom* model (``u2net_custom``:
320 px, ImageNet normalisation). rembg itself (and its pymatting/numba dependencies) is not
needed, and nothing is ever downloaded: the model is a file on the user's disk.
"""
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from utils.errors import UserError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RELEASES = "github.com/danielgatis/rembg/releases"


@dataclass(frozen=True)
class Layout:
    """How a rembg model wants its input and gives its mask."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sigmoid: bool = False


CUSTOM = Layout(320, IMAGENET_MEAN, IMAGENET_STD)  # rembg's u2net_custom, and the u2net family
LAYOUTS = {  # file-name prefix -> layout, as rembg's sessions of those names
    "isnet": Layout(1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)),
    "birefnet": Layout(1024, IMAGENET_MEAN, IMAGENET_STD, sigmoid=True),
}


def default_model_path(environ: dict[str, str]) -> Path:
    """rembg's own model folder (``$U2NET_HOME``, else ``$XDG_DATA_HOME/.u2net``, else ``~/.u2net``)
    with its default model, ``u2net.onnx``."""
    home = environ.get("U2NET_HOME") or os.path.join(environ.get("XDG_DATA_HOME", "~"), ".u2net")
    return Path(home).expanduser() / "u2net.onnx"


def layout_for(path: Path) -> Layout:
    """The layout rembg uses for a model file of this name (``CUSTOM`` for any other name)."""
    return next((layout for prefix, layout in LAYOUTS.items() if path.name.lower().startswith(prefix)), CUSTOM)


def _providers(device: str, available: list[str]) -> list:
    """onnxruntime execution providers for ``cpu``, ``cuda`` or ``cuda:N`` (the CPU where CUDA's is absent)."""
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def check_model(path: str | os.PathLike) -> Path:
    """The model file, or one line naming it and where rembg users get it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"matting model {path} not found; rembg users get {path.name} from the rembg releases "
                        f"({RELEASES}): save it there, or pass --matting_model PATH (nothing is downloaded for you)")
    return path


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("--matting rembg needs onnxruntime: run `pip install onnxruntime` "
                        "(installing rembg brings it too)") from None
    return onnxruntime


def check_runtime() -> None:
    """onnxruntime is importable (one line saying how to install it otherwise)."""
    _onnxruntime()


class RembgModel:
    """One ONNX session; ``alpha(frame)`` gives the model's mask for a frame."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", log=print) -> None:
        ort = _onnxruntime()
        path = check_model(path)
        try:
            self.session = ort.InferenceSession(str(path), providers=_providers(device, ort.get_available_providers()))
        except Exception as err:  # onnxruntime raises its own exception types for a bad file
            raise UserError(f"cannot load matting model {path} ({str(err).splitlines()[0]}); "
                            f"download it again from the rembg releases ({RELEASES})") from None
        self.layout = layout_for(path)
        self.input = self.session.get_inputs()[0]
        height, width = self.input.shape[2:4]
        # a model with a fixed input size says it; rembg's sessions hard-code the same numbers
        self.size = (width, height) if isinstance(height, int) and isinstance(width, int) else (self.layout.size,) * 2
        log(f"rembg: {path.name} on {self.session.get_providers()[0]}, input {self.size[0]}x{self.size[1]}")

    def alpha(self, frame: np.ndarray) -> np.ndarray:
        """(H,W,3) uint8 RGB -> (H,W) uint8 mask, as rembg's ``predict``."""
        image = Image.fromarray(frame, "RGB")
        pixels = np.asarray(image.resize(self.size, Image.LANCZOS), np.float64)
        pixels = pixels / max(pixels.max(), 1e-6)
        pixels = (pixels - self.layout.mean) / self.layout.std
        batch = pixels.transpose(2, 0, 1)[None].astype(np.float32)
        prediction = self.session.run(None, {self.input.name: batch})[0][:, 0]
        if self.layout.sigmoid:
            prediction = 1 / (1 + np.exp(-prediction))
        low, high = prediction.min(), prediction.max()
        prediction = np.squeeze((prediction - low) / max(high - low, 1e-12))
        mask = Image.fromarray((prediction * 255).astype(np.uint8), "L").resize(image.size, Image.LANCZOS)
        return np.asarray(mask)
