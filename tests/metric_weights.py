"""Random weight files for evaluate.py's networks, written in the layouts they are published in.

Each fixture returns the independent reference network beside its file, so tests compare our
loader's scores with that network's own forward on the same random weights.
"""
import pytest
import torch


@pytest.fixture(scope="session")
def lpips_files(tmp_path_factory):
    """A random lpips.LPIPS(vgg) and its weights split the way they are published: a torchvision
    VGG16 file (features.* plus a classifier we must ignore) and LPIPS' heads file."""
    import lpips

    torch.manual_seed(0)
    reference = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False).eval()
    for lin in reference.lins:
        lin.model[1].weight.data = torch.rand_like(lin.model[1].weight)  # heads are non-negative
    state = reference.state_dict()
    vgg = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in state.items() if k.startswith("net.")}
    vgg["classifier.0.weight"] = torch.zeros(4, 4)
    heads = {k: v for k, v in state.items() if k.startswith("lin") and not k.startswith("lins")}
    folder = tmp_path_factory.mktemp("lpips")
    torch.save(vgg, folder / "vgg16.pth")
    torch.save(heads, folder / "vgg.pth")
    return reference, folder / "vgg16.pth", folder / "vgg.pth"


@pytest.fixture(scope="session")
def clip_file(tmp_path_factory):
    """A random open_clip ViT-B/32 (QuickGELU) and its state dict as open_clip's safetensors file."""
    import open_clip
    from safetensors.torch import save_file

    from evaluation.clip_score import ARCH

    torch.manual_seed(0)
    model = open_clip.create_model(ARCH, pretrained=None).eval()
    path = tmp_path_factory.mktemp("clip") / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


@pytest.fixture(scope="session")
def hf_clip_file(tmp_path_factory):
    """A random Hugging Face CLIP ViT-B/32 image tower (transformers' CLIPVisionModelWithProjection, the
    network of ``openai/clip-vit-base-patch32``) and its state dict as that repository's file.
    Every 1-D weight is perturbed, so layer norms that start as identities cannot hide a swapped name."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig()).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(0.1 * torch.randn_like(parameter))
    path = tmp_path_factory.mktemp("hf_clip") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


@pytest.fixture(scope="session")
def i3d_file(tmp_path_factory):
    """A random I3D-400 with non-trivial batch-norm statistics (as a trained file has), saved as the
    official ``i3d_pretrained_400.pt``."""
    from evaluation.i3d import InceptionI3d

    torch.manual_seed(0)
    network = InceptionI3d()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(network.state_dict(), path)
    return network.eval(), path
