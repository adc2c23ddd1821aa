"""LPIPS and CLIP loaded from weight files, against independent computations with the same random weights."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from evaluation.clip_score import ARCH, CLIPMetric
from evaluation.lpips import LPIPSMetric
from utils.errors import UserError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _frames(seed: int, n: int = 2, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-60, 61, gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """A random lpips.LPIPS(vgg) and its weights split the way they are published: a torchvision
    VGG16 file (features.* plus a classifier we must ignore) and LPIPS' heads file."""
    import lpips

    torch.manual_seed(0)
    reference = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False).eval()
    for k, lin in enumerate(reference.lins):
        lin.model[1].weight.data = torch.rand_like(lin.model[1].weight)  # heads are non-negative
    state = reference.state_dict()
    vgg = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in state.items() if k.startswith("net.")}
    vgg["classifier.0.weight"] = torch.zeros(4, 4)
    heads = {k: v for k, v in state.items() if k.startswith("lin") and not k.startswith("lins")}
    folder = tmp_path_factory.mktemp("lpips")
    torch.save(vgg, folder / "vgg16.pth")
    torch.save(heads, folder / "vgg.pth")
    return reference, folder / "vgg16.pth", folder / "vgg.pth"


def test_lpips_equals_the_lpips_package_on_inputs_in_minus_one_to_one(lpips_files):
    reference, vgg_path, heads_path = lpips_files
    metric = LPIPSMetric.from_files(vgg_path, heads_path, torch.device("cpu"))
    pred, gt = _frames(0)
    with torch.no_grad():
        to_unit = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
        expected = reference(to_unit(pred), to_unit(gt)).flatten().numpy()
    got = metric(pred, gt)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert metric(gt, gt) == pytest.approx([0.0, 0.0], abs=1e-7)


def test_lpips_backbone_file_with_wrong_keys_is_one_line(lpips_files, tmp_path):
    _, vgg_path, heads_path = lpips_files
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"bad.pth does not hold torchvision VGG16 weights \(missing features.0.bias"):
        LPIPSMetric.from_files(tmp_path / "bad.pth", heads_path, torch.device("cpu"))


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model(ARCH, pretrained=None).eval()
    path = tmp_path_factory.mktemp("clip") / "open_clip_model.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def test_clip_score_equals_a_direct_open_clip_forward(clip_file):
    model, path = clip_file
    metric = CLIPMetric.from_file(path, torch.device("cpu"))
    pred, gt = _frames(1, size=256)
    mean, std = torch.tensor(OPENAI_MEAN)[:, None, None], torch.tensor(OPENAI_STD)[:, None, None]

    def embed(frames):
        # the processor's steps written out: bicubic resize to 224 (square, so no crop), [0,1], OpenAI mean/std
        images = [np.asarray(Image.fromarray(f).resize((224, 224), Image.BICUBIC)) for f in frames]
        batch = torch.stack([(torch.from_numpy(i).permute(2, 0, 1).float() / 255 - mean) / std for i in images])
        with torch.no_grad():
            return model.encode_image(batch)

    expected = F.cosine_similarity(embed(pred), embed(gt)).numpy()
    np.testing.assert_allclose(metric(pred, gt), expected, atol=2e-5)
    assert metric(gt, gt) == pytest.approx([1.0, 1.0], abs=1e-5)
