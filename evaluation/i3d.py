"""Inception-v1 I3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?"), the FVD feature network.

Our own module with the parameter names of the ``InceptionI3d`` that the official FVD script loads
(``i3d_pretrained_400.pt``: ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ...,
``logits.conv3d.bias``), so that file loads with strict key matching. Convolutions and max-pools
use TensorFlow's "SAME" padding, computed from the input size at run time, as the original port.
"""
import torch
import torch.nn.functional as F
from torch import nn

# (name, in channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels) of each Inception block.
INCEPTION_BLOCKS = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)
FEATURES = 1024
NUM_CLASSES = 400


def same_padding(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad (B,C,T,H,W) so a kernel/stride gives ceil(size / stride) outputs; the odd pixel goes after."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """SAME-padded Conv3d, then BatchNorm (eps 1e-3) and ReLU; the logits unit has a bias and neither."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), norm_and_relu: bool = True):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=not norm_and_relu)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if norm_and_relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        return x if self.bn is None else F.relu(self.bn(x))


class MaxPool3dSame(nn.Module):
    """Max-pool over zero SAME padding (inputs follow a ReLU, so zeros never win over real values)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(same_padding(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max-pool -> 1x1; concatenated on channels."""

    def __init__(self, cin: int, out: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, out[0])
        self.b1a, self.b1b = Unit3D(cin, out[1]), Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, out[3]), Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """(B,3,T,224,224) video in [-1,1] -> (B,400) Kinetics-400 logits averaged over time."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        layers = {
            "Conv3d_1a_7x7": Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2)),
        }
        for name, cin, out in INCEPTION_BLOCKS:
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            layers[name] = InceptionBlock(cin, out)
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.body = list(layers)
        self.logits = Unit3D(FEATURES, num_classes, norm_and_relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.body:
            x = getattr(self, name)(x)
        # 7x7 average pool: the whole 224 px frame; dropout is the identity in evaluation.
        x = self.logits(F.avg_pool3d(x, (1, 7, 7), stride=1))
        return x.squeeze(4).squeeze(3).mean(2)
