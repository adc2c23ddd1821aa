"""CLIP image-to-image similarity: cosine of the ViT-B/32 image embeddings of prediction and ground truth.

The official script uses Hugging Face's ``openai/clip-vit-base-patch32`` with its image processor
(shortest side to 224 px bicubic, centre crop, OpenAI mean/std); open_clip's ViT-B/32 with the
OpenAI weights (QuickGELU) and its eval transform is the same network and the same steps.
"""
import logging

import numpy as np
import torch
from PIL import Image

from evaluation.weights import check_keys, load_state_dict

ARCH = "ViT-B-32-quickgelu"
FRAMES_PER_BATCH = 16


class CLIPMetric:
    """``metric(pred, gt)``: (N,H,W,3) uint8 pairs -> (N,) cosine similarities of the image embeddings."""

    def __init__(self, visual: torch.nn.Module, transform, device: torch.device):
        self.visual = visual.to(device).eval()
        self.transform = transform
        self.device = device

    @classmethod
    def from_file(cls, path, device: torch.device, arch: str = ARCH) -> "CLIPMetric":
        """The image tower of ``arch`` with the ``visual.*`` weights of an open_clip state dict."""
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
