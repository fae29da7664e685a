"""A PyTorch VGG19 with torchvision's module layout, used only by the tests as the parity
reference for :mod:`jaxgan.nets.vgg`.

torchvision is not needed: the model is built from ``torch.nn`` layers in the order of
torchvision's ``vgg19`` (configuration "E"), so its ``state_dict`` has torchvision's key
names (``features.0.weight`` ... ``features.34.bias``, ``classifier.{0,3,6}.*``). The
classifier is built with a small hidden width (``hidden``) to keep the test light; the
loader does not use it.
"""

from __future__ import annotations

import torch
from torch import nn

CFG_E = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M")  # fmt: skip


class TorchVGG19(nn.Module):
    """``features`` exactly as torchvision's vgg19; a narrow ``classifier``."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in CFG_E:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, hidden),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(hidden, 1000),
        )

    def features_at(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """The output of ``features[index]`` (NCHW, ImageNet-normalised input).

        The ReLUs are in-place in torchvision, so a conv's output is cloned before the
        following ReLU overwrites it."""
        for i, layer in enumerate(self.features):
            x = layer(x.clone() if isinstance(layer, nn.ReLU) else x)
            if i == index:
                return x
        raise IndexError(index)
