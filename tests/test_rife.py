"""RIFE HD v3 (rife/): key layout, weight loading, inference and the pair-mode script vs the reference fixtures."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rife.ifnet import IFNet
from rife.model import chunked_inference, inference, load_flownet, pad_to_multiple
from rife.warp import warp
from utils.errors import UserError
from tolerances import uint8_close
from tools.parity.tolerances import NETWORK_UINT8


@pytest.fixture(scope="module")
def rife_dir(reference_dir: Path) -> Path:
    return reference_dir / "fixtures" / "rife"


@pytest.fixture(scope="module")
def record(rife_dir: Path) -> dict:
    return torch.load(rife_dir / "inference.pt", weights_only=True)


@pytest.fixture(scope="module")
def flownet(rife_dir: Path) -> IFNet:
    return load_flownet(rife_dir, "cpu")


def test_state_dict_keys_equal_manifest(reference_dir):
    manifest = json.loads((reference_dir / "rife_flownet_state_dict.json").read_text())["module_state_dict"]
    state = IFNet().state_dict()
    assert list(state) == list(manifest)
    assert {k: list(v.shape) for k, v in state.items()} == {k: v["shape"] for k, v in manifest.items()}


def test_loads_prefixed_pkl_exactly(rife_dir):
    raw = torch.load(rife_dir / "flownet.pkl", weights_only=True)
    assert all(k.startswith("module.") for k in raw)
    loaded = load_flownet(rife_dir / "flownet.pkl").state_dict()
    assert all(torch.equal(loaded[k.removeprefix("module.")], v) for k, v in raw.items())


@pytest.mark.parametrize("case", ["cycle2_256", "cycle2_padded"])
def test_pair_script_writes_fixture_images(case, record, rife_dir, repo_root, tmp_path):
    rec = record[case]
    inputs = []
    for name, rgb in zip(("a.png", "b.png"), rec["input_rgb_uint8"].numpy()):
        inputs.append(str(tmp_path / name))
        Image.fromarray(rgb).save(inputs[-1])
    out = tmp_path / "out"
    subprocess.run([sys.executable, "frame_interpolation.py", "--img", *inputs, "--cycle2", "--model", str(rife_dir),
                    "--save_path", str(out), "--device", "cpu"], cwd=repo_root, check=True, capture_output=True)
    assert sorted(p.name for p in out.iterdir()) == rec["written_files"]
    # The fixture read the files back with cv2 (BGR); our files are ordinary RGB PNGs.
    saved_rgb = rec["saved_bgr_uint8"].numpy()[..., ::-1]
    got = np.stack([np.asarray(Image.open(out / name)) for name in rec["written_files"]])
    uint8_close(got, saved_rgb, NETWORK_UINT8)
    np.testing.assert_array_equal(got[[0, 4]], rec["input_rgb_uint8"].numpy())


@pytest.mark.parametrize("layout", ["nchw", "nhwc_strided"])
def test_fast_kernels_equal_plain_kernels(rife_dir, layout):
    gen = torch.Generator().manual_seed(1)
    pair = torch.rand(2, 2, 3, 64, 96, generator=gen)
    if layout == "nhwc_strided":  # as the original's tensors made from HWC arrays
        pair = pair.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    fast, plain = load_flownet(rife_dir), load_flownet(rife_dir, plain_kernels=True)
    assert torch.equal(inference(fast, *pair), inference(plain, *pair))


def test_padding_crops_back_to_input_size(rife_dir):
    flownet = load_flownet(rife_dir)
    img = torch.rand(2, 3, 40, 70)
    assert pad_to_multiple(img).shape[-2:] == (64, 96)
    assert inference(flownet, img, img.flip(0)).shape == (2, 3, 40, 70)


def test_concurrent_chunks_equal_one_by_one(rife_dir):
    flownet = load_flownet(rife_dir)
    gen = torch.Generator().manual_seed(0)
    img0, img1 = torch.rand(2, 3, 3, 32, 64, generator=gen)
    serial = chunked_inference(flownet, batch_size=1, workers=1)(img0, img1)
    concurrent = chunked_inference(flownet, batch_size=2, workers=2)(img0, img1)
    torch.testing.assert_close(concurrent, serial, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_warp_follows_input_dtype_and_shifts_by_pixels(dtype):
    image = torch.arange(4 * 6, dtype=dtype).reshape(1, 1, 4, 6)
    flow = torch.zeros(1, 2, 4, 6, dtype=dtype)
    torch.testing.assert_close(warp(image, flow), image)
    flow[:, 0] = 1.0  # sample one pixel to the right; the last column clamps at the border
    shifted = warp(image, flow)
    assert shifted.dtype == dtype
    torch.testing.assert_close(shifted[..., :-1], image[..., 1:])
    torch.testing.assert_close(shifted[..., -1], image[..., -1])


def test_random_weights_are_seeded_and_announced(capsys):
    first, second = load_flownet("random"), load_flownet("random")
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert "RANDOM weights" in capsys.readouterr().err


def test_missing_weights_say_where_to_get_them(tmp_path):
    with pytest.raises(UserError, match=r"model/flownet\.pkl.*ckpt/"):
        load_flownet(tmp_path)


def test_corrupt_weights_are_a_user_error(tmp_path):
    (tmp_path / "flownet.pkl").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt"):
        load_flownet(tmp_path)


def test_wrong_keys_are_listed(rife_dir, tmp_path):
    raw = torch.load(rife_dir / "flownet.pkl", weights_only=True)
    raw.pop("module.block0.conv0.0.0.weight")
    raw["module.extra.weight"] = torch.zeros(1)
    torch.save(raw, tmp_path / "flownet.pkl")
    with pytest.raises(UserError, match=r"missing block0\.conv0\.0\.0\.weight; unexpected extra\.weight"):
        load_flownet(tmp_path)
