"""CLIP image-to-image similarity: cosine of the ViT-B/32 image embeddings of prediction and ground truth.

The official script uses Hugging Face's ``openai/clip-vit-base-patch32`` with its image processor
(shortest side to 224 px bicubic, centre crop, OpenAI mean/std); open_clip's ViT-B/32 with the
OpenAI weights (QuickGELU) and its eval transform is the same network and the same steps. Either
file loads: open_clip's state dict as it is, the Hugging Face one renamed by :func:`open_clip_from_hf`.
"""
import logging
import re

import numpy as np
import torch
from PIL import Image

from evaluation.weights import check_keys, load_state_dict

ARCH = "ViT-B-32-quickgelu"
FRAMES_PER_BATCH = 16

# Hugging Face CLIPModel image-tower names (after "vision_model.") -> open_clip's (after "visual.").
_HF_RENAMES = (
    (r"embeddings\.class_embedding", "class_embedding"),
    (r"embeddings\.patch_embedding\.weight", "conv1.weight"),
    (r"embeddings\.position_embedding\.weight", "positional_embedding"),
    (r"pre_layrnorm\.(\w+)", r"ln_pre.\1"),
    (r"post_layernorm\.(\w+)", r"ln_post.\1"),
    (r"encoder\.layers\.(\d+)\.layer_norm1\.(\w+)", r"transformer.resblocks.\1.ln_1.\2"),
    (r"encoder\.layers\.(\d+)\.layer_norm2\.(\w+)", r"transformer.resblocks.\1.ln_2.\2"),
    (r"encoder\.layers\.(\d+)\.mlp\.fc1\.(\w+)", r"transformer.resblocks.\1.mlp.c_fc.\2"),
    (r"encoder\.layers\.(\d+)\.mlp\.fc2\.(\w+)", r"transformer.resblocks.\1.mlp.c_proj.\2"),
    (r"encoder\.layers\.(\d+)\.self_attn\.out_proj\.(\w+)", r"transformer.resblocks.\1.attn.out_proj.\2"),
)
_HF_QKV = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")


def open_clip_from_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image tower of a Hugging Face ``CLIPModel`` (or ``CLIPVisionModelWithProjection``) state dict
    in open_clip's names. The network is the same; only the storage differs: open_clip keeps q, k and v
    as one ``in_proj`` (stacked in that order) and the projection transposed. Keys it cannot map are
    left out, so a foreign file fails the key check that follows."""
    out, qkv = {}, {}
    if "visual_projection.weight" in state:
        out["visual.proj"] = state["visual_projection.weight"].t().contiguous()
    for key, value in state.items():
        if not key.startswith("vision_model."):
            continue
        name = key[len("vision_model."):]
        if match := _HF_QKV.fullmatch(name):
            layer, part, kind = match.groups()
            qkv.setdefault((layer, kind), {})[part] = value
            continue
        for pattern, replacement in _HF_RENAMES:
            if re.fullmatch(pattern, name):
                out["visual." + re.sub(pattern, replacement, name)] = value
                break
    for (layer, kind), parts in qkv.items():
        if len(parts) == 3:
            out[f"visual.transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts[p] for p in "qkv"])
    return out


class CLIPMetric:
    """``metric(pred, gt)``: (N,H,W,3) uint8 pairs -> (N,) cosine similarities of the image embeddings."""

    def __init__(self, visual: torch.nn.Module, transform, device: torch.device):
        self.visual = visual.to(device).eval()
        self.transform = transform
        self.device = device

    @classmethod
    def from_file(cls, path, device: torch.device, arch: str = ARCH) -> "CLIPMetric":
        """The image tower of ``arch`` with the weights of an open_clip or a Hugging Face CLIP state dict."""
        import open_clip

        # On the meta device: only the image tower is used, and its weights come from the file. open_clip
        # warns that the model is "initialized randomly", which is untrue once the file is loaded.
        logging.disable(logging.WARNING)
        try:
            model = open_clip.create_model(arch, pretrained=None, device="meta")
        finally:
            logging.disable(logging.NOTSET)
        expected = {k: v for k, v in model.state_dict().items() if k.startswith("visual.")}
        state = load_state_dict(path, "CLIP")
        if any(k.startswith("vision_model.") for k in state):
            state = open_clip_from_hf(state)
        check_keys(path, f"open_clip {arch}", expected, state)
        model.visual.load_state_dict({k[len("visual."):]: state[k].float() for k in expected}, strict=True, assign=True)
        transform = open_clip.image_transform(model.visual.image_size, is_train=False)
        return cls(model.visual, transform, device)

    @torch.no_grad()
    def embed(self, frames: np.ndarray) -> torch.Tensor:
        """(N,H,W,3) uint8 -> (N,D) image embeddings (not normalised)."""
        out = []
        for start in range(0, len(frames), FRAMES_PER_BATCH):
            batch = torch.stack([self.transform(Image.fromarray(f)) for f in frames[start:start + FRAMES_PER_BATCH]])
            out.append(self.visual(batch.to(self.device)).float())
        return torch.cat(out)

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        similarity = torch.nn.functional.cosine_similarity(self.embed(pred), self.embed(gt), dim=-1)
        return similarity.double().cpu().numpy()
