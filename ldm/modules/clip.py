"""The CLIP image encoder that conditions SyncDreamer (OpenAI CLIP ViT-L/14 for the full model).

The architecture is built with open-clip-torch from an OpenAI-style description (the ``clip_config``
keys below, QuickGELU activations as OpenAI CLIP); the weights come from the SyncDreamer
checkpoint, so no ``ViT-L-14.pt`` is needed. As in the original, the text transformer is deleted
but the other text-side tensors (token_embedding, positional_embedding, ln_final,
text_projection, logit_scale) stay, because the checkpoint stores them.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

# OpenAI CLIP ViT-L/14, the original's ``clip.load('ViT-L-14.pt')``
VIT_L_14 = dict(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024, vision_patch_size=14,
                context_length=77, vocab_size=49408, transformer_width=768, transformer_heads=12,
                transformer_layers=12)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_openai_clip(embed_dim: int, image_resolution: int, vision_layers: int, vision_width: int,
                      vision_patch_size: int, context_length: int, vocab_size: int, transformer_width: int,
                      transformer_heads: int, transformer_layers: int) -> nn.Module:
    """open_clip ``CLIP`` with OpenAI CLIP's architecture (64-channel heads, QuickGELU) and without the
    text transformer. The arguments are those OpenAI's ``clip.model.build_model`` reads from a checkpoint."""
    import open_clip  # here, not at the top: it takes 1.5 s to import, which every run.sh check would pay

    vision_cfg = open_clip.model.CLIPVisionCfg(layers=vision_layers, width=vision_width, head_width=64,
                                               patch_size=vision_patch_size, image_size=image_resolution)
    text_cfg = open_clip.model.CLIPTextCfg(context_length=context_length, vocab_size=vocab_size,
                                           width=transformer_width, heads=transformer_heads, layers=transformer_layers)
    model = open_clip.model.CLIP(embed_dim, vision_cfg, text_cfg, quick_gelu=True)
    del model.transformer
    return model


class FrozenCLIPImageEmbedder(nn.Module):
    """Images (B,3,H,W) in [-1,1] -> CLIP image embeddings (B,1,embed_dim).

    Preprocessing as the original: bicubic resize to 224 x 224 (align_corners=True, no antialias),
    (x+1)/2, then CLIP's per-channel mean/std.
    """

    def __init__(self, clip_config: Optional[dict] = None):
        super().__init__()
        config = VIT_L_14 | (clip_config or {})
        self.model = build_openai_clip(**config)
        self.image_resolution = config["image_resolution"]
        self.register_buffer("mean", torch.tensor(CLIP_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B,3,224,224) normalised for CLIP."""
        size = (self.image_resolution, self.image_resolution)
        x = F.interpolate(x, size, mode="bicubic", align_corners=True)
        x = (x + 1.0) / 2.0
        return (x - self.mean[None, :, None, None]) / self.std[None, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B,embed_dim) float32."""
        return self.model.encode_image(self.preprocess(x)).float()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B,1,embed_dim)."""
        return self(x).unsqueeze(1)
