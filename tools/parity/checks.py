"""Each stage on the fixtures' inputs, compared with the original's recorded outputs.

A check is ``check_<stage>(ref) -> list[Deviation]``; ``ref`` is a :class:`Reference`, which loads the
fixtures, the tiny model and RIFE once and runs them on its device. On CUDA everything runs in fp32
with TF32 off. Free-running samples draw their noise from the CPU generator the fixtures were made
with, so they are compared on the CPU only; on CUDA each step is compared given its input instead.
"""
import contextlib
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import numpy as np
import torch

from confidence.maps import as_batch, strip_views, write_confidence_maps
from convert.dataset import convert_dataset
from ldm.checkpoint import load_checkpoint
from ldm.data import prepare_frames, select_frames
from ldm.models import sampler as sampler_module
from ldm.models.sampler import SyncDDIMSampler, get_w
from ldm.models.syncdreamer import build_model, load_config
from ldm.modules.attention import attention_backend
from ldm.pipeline import to_strips
from rife.interpolate import interpolation_schedule, read_cv2_order, to_tensor, to_uint8
from rife.model import chunked_inference, inference, load_flownet, pad_to_multiple
from tools.parity.compare import Deviation, compare
from tools.parity.tolerances import (EXACT, GUIDED_STEP, IMAGES, JSON_NUMBERS, LATENTS, NETWORK, NETWORK_UINT8,
                                     SCHEDULE, SSIM_MAP, UINT8)
from utils.images import read_gray, read_rgb, write_png
from utils.ssim import ssim

REPO_ROOT = Path(__file__).resolve().parents[2]
DG = (2.0, 1.0)
# fixture run -> (guidance, views per UNet call, smooth_filter), as the fixture's meta lists them.
# The original's bvn4 run equals main bit for bit, so main runs with 4 views per call and checks both.
RUNS = {"main": (DG, 4, True), "cfg": (2.0, 16, True), "nosmooth": (DG, 16, False)}


def _to(obj, device: torch.device):
    """Tensors (also inside dicts, keys kept) moved to ``device``."""
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj.to(device) if torch.is_tensor(obj) else obj


@contextlib.contextmanager
def exact_fp32(device: torch.device) -> Iterator[None]:
    """No TF32 on CUDA (its 10-bit mantissa is not the original's fp32) and no gradients."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


class Reference:
    """The fixtures under ``root`` (../shared/reference) and the networks they were made with, on ``device``."""

    def __init__(self, root: str | Path, device: str | torch.device = "cpu"):
        self.root = Path(root)
        self.device = torch.device(device)

    def fixture(self, name: str) -> dict:
        return _load_fixture(self.root / "fixtures" / name)

    @functools.cached_property
    def tiny_model(self) -> torch.nn.Module:
        model = build_model(load_config(REPO_ROOT / "configs" / "tiny.yaml"))
        return load_checkpoint(model, self.root / "fixtures" / "tiny" / "state_dict.pt").to(self.device)

    @functools.cached_property
    def flownet(self) -> torch.nn.Module:
        return load_flownet(self.root / "fixtures" / "rife", self.device)

    @property
    def egret(self) -> Path:
        return self.root.parent / "data" / "walking_white_faced_egret"


@functools.lru_cache(maxsize=None)
def _load_fixture(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _compare_dicts(stage: str, quantity: str, got: dict, ref: dict, tolerance) -> list[Deviation]:
    return [compare(stage, f"{quantity}[{k}]", got.get(k), ref[k], tolerance) if k in got
            else compare(stage, f"{quantity}[{k}] missing", torch.empty(0), ref[k], tolerance) for k in ref]


def check_unet(ref: Reference) -> list[Deviation]:
    """One UNet forward (tiny/unet.pt) on the original's computation and on the fast path."""
    fx = _to(ref.fixture("tiny/unet.pt"), ref.device)
    unet = ref.tiny_model.model.diffusion_model
    out = []
    for backend in ("plain", "sdpa"):
        with attention_backend(backend):
            got = unet(fx["x"], fx["timesteps"], fx["context"], source_dict=fx["source_dict"])
        out.append(compare("unet", f"out ({backend} attention)", got, fx["out"].cpu(), NETWORK))
    return out


def check_volumes(ref: Reference) -> list[Deviation]:
    """Embeddings, the spatial volume, the frustum volumes and the target-view features (tiny/volume.pt)."""
    fx = _to(ref.fixture("tiny/volume.pt"), ref.device)
    model, cpu = ref.tiny_model, ref.fixture("tiny/volume.pt")
    net = model.spatial_volume
    out = [compare("volumes", "t_embed", model.embed_time(fx["timesteps"]), cpu["t_embed"], NETWORK),
           compare("volumes", "v_embed", model.get_viewpoint_embedding(3, fx["elevation"]), cpu["v_embed"], NETWORK),
           compare("volumes", "poses (built from utils/cameras.py)", model.poses, cpu["poses"], NETWORK)]
    volume = net.construct_spatial_volume(fx["x"], fx["t_embed"], fx["v_embed"], model.poses, model.Ks)
    out.append(compare("volumes", "spatial_volume", volume, cpu["spatial_volume"], NETWORK))
    feats, depth = net.construct_view_frustum_volume(fx["spatial_volume"], fx["t_embed"], fx["v_embed"], model.poses,
                                                     model.Ks, fx["target_indices"])
    out += _compare_dicts("volumes", "frustum_volume_feats", feats, cpu["frustum_volume_feats"], NETWORK)
    out.append(compare("volumes", "frustum_volume_depth", depth, cpu["frustum_volume_depth"], NETWORK))
    inputs, expected = fx["target_view_feats_inputs"], cpu["target_view_feats"]
    clip_embed, volume_feats, x_concat = model.get_target_view_feats(
        inputs["x_input"], fx["spatial_volume"], inputs["clip_embed"], fx["t_embed"], fx["v_embed"],
        fx["target_indices"])
    out.append(compare("volumes", "target clip_embed", clip_embed, expected["clip_embed"], NETWORK))
    out += _compare_dicts("volumes", "target volume_feats", volume_feats, expected["volume_feats"], NETWORK)
    out.append(compare("volumes", "target x_concat", x_concat, expected["x_concat"], NETWORK))
    return out


def check_vae(ref: Reference) -> list[Deviation]:
    """The VAE posterior, its seeded sample, encode and decode (tiny/vae.pt)."""
    cpu = ref.fixture("tiny/vae.pt")
    fx = _to(cpu, ref.device)
    model = ref.tiny_model
    posterior = model.first_stage_model.encode(fx["x"])
    out = [compare("vae", f"posterior {name}", value, cpu[f"posterior_{name}"], NETWORK)
           for name, value in (("mean", posterior.mean), ("logvar", posterior.logvar), ("std", posterior.std),
                               ("mode", posterior.mode()))]
    torch.manual_seed(int(cpu["posterior_sample_seed"]))  # the sample draws from the global CPU generator
    out.append(compare("vae", "posterior sample", posterior.sample(), cpu["posterior_sample"], NETWORK))
    out.append(compare("vae", "encode_first_stage", model.encode_first_stage(fx["x"], sample=False),
                       cpu["encode_first_stage_mode"], NETWORK))
    out.append(compare("vae", "decode", model.first_stage_model.decode(fx["z"]), cpu["decode"], NETWORK))
    out.append(compare("vae", "decode_first_stage", model.decode_first_stage(fx["decode_first_stage_input"]),
                       cpu["decode_first_stage"], NETWORK))
    return out


def check_clip(ref: Reference) -> list[Deviation]:
    """CLIP preprocessing and image embedding at 64 and 256 px (tiny/clip.pt)."""
    cpu = ref.fixture("tiny/clip.pt")
    encoder = ref.tiny_model.clip_image_encoder
    out = []
    for size in (64, 256):
        x = cpu[f"x{size}"].to(ref.device)
        out.append(compare("clip", f"preprocess {size} px", encoder.preprocess(x), cpu[f"preprocess{size}"], NETWORK))
        out.append(compare("clip", f"embedding {size} px", encoder.encode(x), cpu[f"encode{size}"], NETWORK))
    return out


@contextlib.contextmanager
def original_get_w(sample: dict) -> Iterator[None]:
    """Run with the smoothing matrix the original used. Ours differs only for 5 and 6 frames (the
    documented 5-tap fix); for such a fixture the original's matrix is fed so the rest is still compared."""
    meta = sample["meta"]
    ours = get_w(meta["frame_num"], meta["is_cyc"])
    if ours.dtype == sample["get_w"].dtype and torch.equal(ours, sample["get_w"]):
        yield
        return
    with mock.patch.object(sampler_module, "get_w", lambda frame_num, is_cyc: sample["get_w"].clone()):
        yield


def _sampler(ref: Reference) -> SyncDDIMSampler:
    meta = ref.fixture("tiny/sample.pt")["meta"]
    return SyncDDIMSampler(ref.tiny_model, meta["ddim_steps"], latent_size=meta["latent_size"], progress=False)


def check_schedule(ref: Reference) -> list[Deviation]:
    """The DDIM schedule (timesteps exactly, float32 values within an ulp)."""
    sampler = _sampler(ref)
    out = []
    for name, expected in ref.fixture("tiny/sample.pt")["schedule"].items():
        got = torch.as_tensor(getattr(sampler, name))
        out.append(compare("schedule", name, got, expected, SCHEDULE if expected.is_floating_point() else EXACT))
    return out


def _frames(ref: Reference) -> dict:
    meta = ref.fixture("tiny/sample.pt")["meta"]
    files = select_frames(ref.egret, meta["frame_num"])[:meta["frame_num"]]
    return prepare_frames(files, meta["elevation_deg"], meta["crop_size"], meta["image_size"])


def check_prepare(ref: Reference) -> list[Deviation]:
    """Input frames, CLIP and VAE conditioning, and the first two random draws (RNG order steps 1-2)."""
    sample = ref.fixture("tiny/sample.pt")
    meta, expected = sample["meta"], sample["main"]
    batch = _frames(ref)
    out = [compare("prepare", "input_image", batch["input_image"], sample["input_image"], EXACT),
           compare("prepare", "input_elevation", batch["input_elevation"], sample["input_elevation"], EXACT)]
    model = ref.tiny_model  # built (and its init's draws made) before the seed
    torch.manual_seed(meta["seed"])
    clip_embed, x_input, elevation = model.prepare(_to(batch, ref.device))
    x_T = torch.randn(expected["x_T"].shape)
    out += [compare("prepare", "elevation", elevation, expected["prepare"]["elevation"], EXACT),
            compare("prepare", "clip_embed", clip_embed, expected["prepare"]["clip_embed"], NETWORK),
            compare("prepare", "x_input (posterior sample)", x_input, expected["prepare"]["x_input"], NETWORK),
            # randn's vectorised kernels round differently per CPU capability: float, not bit, equality
            compare("prepare", "x_T (the draw after prepare)", x_T, expected["x_T"], NETWORK)]
    return out


def check_steps(ref: Reference, runs: dict = RUNS, num_steps: int | None = None) -> list[Deviation]:
    """Teacher-forced: each DDIM step starts from the original's latent, and its guided noise is compared.

    ``runs`` maps fixture runs to (guidance, views per call, smooth_filter); ``num_steps`` limits the steps."""
    sample = ref.fixture("tiny/sample.pt")
    meta = sample["meta"]
    sampler = _sampler(ref)
    out = []
    for run, (guidance, batch_view_num, smooth_filter) in runs.items():
        expected = _to(sample[run], ref.device)
        prepared = expected["prepare"]
        x_t = expected["x_T"].expand(meta["frame_num"], -1, -1, -1, -1)
        with original_get_w(sample), attention_backend("plain"):
            for i, index in enumerate(expected["step_index"].tolist()[:num_steps]):
                _, e_t = sampler.denoise_apply(x_t, prepared["x_input"], prepared["clip_embed"], prepared["elevation"],
                                               expected["step_time_steps"][i], index, guidance, batch_view_num,
                                               smooth_filter, meta["is_cyc"])
                out.append(compare("steps", f"{run} e_t, step {i}", e_t, sample[run]["e_t"][i], GUIDED_STEP))
                x_t = expected["x_t"][i]
    return out


def _replay_prepare(recorded: dict) -> Callable[[dict], tuple]:
    """model.prepare returning the original's recorded conditioning, with the same single CPU draw.

    The samples are then compared on identical conditioning (check_prepare compares ours)."""
    def prepare(batch):
        torch.randn(recorded["x_input"].shape)
        return recorded["clip_embed"].clone(), recorded["x_input"].clone(), recorded["elevation"].clone()
    return prepare


def check_samples(ref: Reference, runs: dict = RUNS) -> list[Deviation]:
    """Free-running, as generate.py samples: same seed, same draws; every step, the images and the grid.

    CPU only: the DDIM noise is drawn on the sampler's device, and the fixtures drew it on the CPU."""
    if ref.device.type != "cpu":
        return []
    sample = ref.fixture("tiny/sample.pt")
    meta = sample["meta"]
    model, sampler, batch = ref.tiny_model, _sampler(ref), _frames(ref)
    out = []
    for run, (guidance, batch_view_num, smooth_filter) in runs.items():
        expected = sample[run]
        steps = []
        with original_get_w(sample), attention_backend("plain"), \
                mock.patch.object(model, "prepare", _replay_prepare(expected["prepare"])):
            torch.manual_seed(meta["seed"])
            images = sampler.sample(model, batch, guidance, batch_view_num, smooth_filter=smooth_filter,
                                    is_cyc=meta["is_cyc"], callback=steps.append)
        out += [compare("samples", f"{run} step indices", torch.tensor([s.index for s in steps]),
                        expected["step_index"], EXACT),
                compare("samples", f"{run} e_t", torch.stack([s.e_t for s in steps]), expected["e_t"], LATENTS),
                compare("samples", f"{run} x_t", torch.stack([s.x_prev for s in steps]), expected["x_t"], LATENTS)]
        if "images" in expected:
            out.append(compare("samples", f"{run} images", images, expected["images"], IMAGES))
        out.append(compare("samples", f"{run} grid (uint8)", to_strips(images), expected["grid_uint8"], UINT8))
    return out


def check_rife(ref: Reference) -> list[Deviation]:
    """IFNet's flow, mask and frame (rife/inference.pt), and the --cycle2 frames on a padded pair."""
    record = ref.fixture("rife/inference.pt")
    img0 = (record["img0_uint8"].permute(2, 0, 1)[None] / 255).to(ref.device)
    img1 = (record["img1_uint8"].permute(2, 0, 1)[None] / 255).to(ref.device)
    flow, mask, merged = ref.flownet(torch.cat((img0, img1), 1))
    out = [compare("rife", label, value, record[key], NETWORK)
           for label, key, value in (("flow", "flow", flow), ("mask", "mask", mask), ("frame", "inference", merged),
                                     ("inference()", "inference", inference(ref.flownet, img0, img1)))]
    case = record["cycle2_padded"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, rgb in enumerate(case["input_rgb_uint8"].numpy()):
            paths.append(Path(tmp) / f"{i}.png")
            write_png(paths[-1], rgb)
        pair = np.stack([read_cv2_order(p) for p in paths])
    img0, img1 = pad_to_multiple(to_tensor(pair, ref.device))
    frames = interpolation_schedule(chunked_inference(ref.flownet, 1), img0[None], img1[None], cycle2=True)
    out.append(compare("rife", "cycle2 frames, padded BGR", torch.cat(frames[1:4]), case["img_list_bgr_padded"],
                       NETWORK))
    height, width = case["input_rgb_uint8"].shape[1:3]
    out.append(compare("rife", "cycle2 files (uint8 BGR)", to_uint8(torch.cat(frames), height, width),
                       case["saved_bgr_uint8"], NETWORK_UINT8))
    return out


def check_ssim(ref: Reference) -> list[Deviation]:
    """The original's SSIM (ssim.pt): full maps and means, at three value ranges and a small image."""
    record = ref.fixture("ssim.pt")
    out = []
    for case in (None, "range255", "range_pm1", "small"):
        rec = record if case is None else record[case]
        img1, img2 = rec["img1"].detach().to(ref.device), rec["img2"].detach().to(ref.device)
        name = case or "256 px"
        out.append(compare("ssim", f"{name} map", ssim(img1, img2, full=True), rec["ssim_full"].detach(), SSIM_MAP))
        if "ssim_mean" in rec:
            out.append(compare("ssim", f"{name} mean", ssim(img1, img2), rec["ssim_mean"].detach(), NETWORK))
    return out


def check_confidence(ref: Reference, num_views: int = 16) -> list[Deviation]:
    """The confidence maps of the fixture's 6 frames as video_confidence.py writes them (uint8 PNGs), and
    frame 2 view 0's warps and SSIM map. ``num_views`` < 16 scores only the first views (each view's
    maps depend on that view alone), for quick checks."""
    data = ref.root / "fixtures" / "confidence" / "data"
    paths = sorted(data.glob("[0-9][0-9].png"))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            strip = read_rgb(path)
            write_png(Path(tmp) / "data" / path.name, strip[:, :num_views * strip.shape[0]])
        written = write_confidence_maps(tmp, ref.root / "fixtures" / "rife", ref.device, num_views)
        for name in sorted(p.name for p in (data / "conf_map").glob("*.png")):
            expected = read_gray(data / "conf_map" / name)
            got = read_gray(written / name) if (written / name).is_file() else np.zeros(0, np.uint8)
            out.append(compare("confidence", name, got, expected[:, :num_views * expected.shape[0]],
                               NETWORK_UINT8))
    strips = [read_rgb(p) for p in paths]
    record = ref.fixture("confidence.pt")
    frame, view = record["meta"]["debug_frame_view"]
    views = {k: strip_views(strips[k], 16, ref.device)[view] for k in range(frame - 2, frame + 3)}
    for pair in (1, 2):
        warped = inference(ref.flownet, as_batch([views[frame - pair]]), as_batch([views[frame + pair]]))
        out.append(compare("confidence", f"frame {frame} view {view} pair {pair} warp", warped,
                           record["debug"][f"pair{pair}_warped"], NETWORK))
    ssim_map = ssim(as_batch([views[frame]]), record["debug"]["pair1_warped"].to(ref.device), full=True)
    out.append(compare("confidence", f"frame {frame} view {view} SSIM map", ssim_map, record["debug"]["pair1_ssim_map"],
                       SSIM_MAP))
    return out


def _json_skeleton(value):
    """The document with every number replaced by 0: keys, their order, strings and list lengths."""
    if isinstance(value, dict):
        return {k: _json_skeleton(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_skeleton(v) for v in value]
    return 0 if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _json_numbers(value) -> list[float]:
    """Every number of a JSON document, in document order."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _json_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _json_numbers(v)]
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def check_converter(ref: Reference) -> list[Deviation]:
    """The converter's JSON with --confidence on the fixture's first 3 frames (convertor/confidence)."""
    source = ref.root / "fixtures" / "confidence" / "data"
    expected_root = ref.root / "fixtures" / "convertor" / "confidence"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "in" / "data"
        (data / "conf_map").mkdir(parents=True)
        for k in range(3):
            shutil.copy(source / f"{k:02d}.png", data)
            for kind in ("ssim", "rgb"):
                shutil.copy(source / "conf_map" / f"{k:02d}_{kind}.png", data / "conf_map")
        convert_dataset(Path(tmp) / "in", Path(tmp) / "out", confidence=True, log=lambda message: None)
        for expected in sorted(expected_root.rglob("*.json")):
            name = str(expected.relative_to(expected_root))
            got_path = Path(tmp) / "out" / name
            got = json.loads(got_path.read_text()) if got_path.is_file() else None
            want = json.loads(expected.read_text())
            skeletons = [np.frombuffer(json.dumps(_json_skeleton(doc)).encode(), np.uint8) for doc in (got, want)]
            out.append(compare("converter", f"{name} keys and strings", *skeletons, EXACT))
            out.append(compare("converter", f"{name} numbers", np.asarray(_json_numbers(got), np.float64),
                               np.asarray(_json_numbers(want), np.float64), JSON_NUMBERS))
    return out


CHECKS: dict[str, Callable[[Reference], list[Deviation]]] = {
    "unet": check_unet, "volumes": check_volumes, "vae": check_vae, "clip": check_clip,
    "schedule": check_schedule, "prepare": check_prepare, "steps": check_steps, "samples": check_samples,
    "rife": check_rife, "ssim": check_ssim, "confidence": check_confidence, "converter": check_converter,
}


def run_check(ref: Reference, stage: str) -> list[Deviation]:
    """``CHECKS[stage]`` in exact fp32 on the reference's device."""
    with exact_fp32(ref.device):
        return CHECKS[stage](ref)
