"""LPIPS and CLIP loaded from weight files, against independent computations with the same random weights."""
from pathlib import Path

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


def test_clip_score_from_hugging_face_weights_equals_the_official_transformers_computation(hf_clip_file):
    """The official script's steps: transformers' CLIP image processor, the image embeddings, their cosine.
    The converted network is also compared on the same pixels: a random network puts every cosine near 1
    (here 0.9995), where a misplaced weight (q and k swapped moves the embeddings by 0.5 %) would hide."""
    from transformers import CLIPImageProcessor

    model, path = hf_clip_file
    metric = CLIPMetric.from_file(path, torch.device("cpu"))
    pred, gt = _frames(2, size=256)
    processor = CLIPImageProcessor()  # openai/clip-vit-base-patch32's settings are the defaults
    with torch.no_grad():
        pixels = {side: processor(images=list(f), return_tensors="pt").pixel_values for side, f in (("pred", pred), ("gt", gt))}
        official = {side: model(pixel_values=p).image_embeds for side, p in pixels.items()}
        np.testing.assert_allclose(metric.visual(pixels["gt"]), official["gt"], rtol=1e-5, atol=1e-5)
    # and nearly the same pixels: open_clip's eval transform against the official processor differ by
    # resampling round-off (measured on noise: 1 grey level at 0.4 % of values at 512 px; at 256 px 0.6 %,
    # a few of them by 2)
    ours = torch.stack([metric.transform(Image.fromarray(f)) for f in gt])
    levels = (ours - pixels["gt"]).abs() * torch.tensor(OPENAI_STD)[:, None, None] * 255
    assert levels.max() < 2.01 and (levels > 0.5).float().mean() < 0.01
    expected = F.cosine_similarity(official["pred"], official["gt"]).numpy()
    np.testing.assert_allclose(metric(pred, gt), expected, atol=2e-5)


def test_hugging_face_clip_file_missing_a_layer_is_one_line(hf_clip_file, tmp_path):
    from safetensors.torch import load_file, save_file

    _, path = hf_clip_file
    state = {k: v for k, v in load_file(str(path)).items() if ".layers.11." not in k}
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match=r"model.safetensors does not hold open_clip ViT-B-32-quickgelu weights "
                                        r"\(missing visual.transformer.resblocks.11.ln_1.weight"):
        CLIPMetric.from_file(tmp_path / "model.safetensors", torch.device("cpu"))


def _cache_file(cache: Path, repo: str, name: str) -> Path:
    """A file as huggingface_hub caches it: models--ORG--NAME/snapshots/REV/NAME, with refs/main naming REV."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text("abc123")
    path = folder / "snapshots" / "abc123" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    return path


def test_clip_weights_are_found_in_the_hugging_face_cache_open_clip_file_first(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from evaluation import weights

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match=r"not found in the Hugging Face cache \(timm/vit_base_patch32_clip_224.openai or "
                                        r"openai/clip-vit-base-patch32\)"):
        weights.clip()
    official = _cache_file(tmp_path, "openai/clip-vit-base-patch32", "model.safetensors")
    assert weights.clip() == official
    open_clip_file = _cache_file(tmp_path, "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
    assert weights.clip() == open_clip_file


def test_clip_model_may_be_a_downloaded_repository_folder(tmp_path):
    from evaluation import weights

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match=r"is a folder without CLIP weights \(looked for open_clip_model.safetensors, "):
        weights.clip(str(tmp_path))
    (tmp_path / "pytorch_model.bin").write_bytes(b"weights")
    assert weights.clip(str(tmp_path)) == tmp_path / "pytorch_model.bin"
