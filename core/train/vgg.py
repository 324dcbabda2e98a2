"""VGG19 feature extractor for the perceptual, feature-matching and contextual losses.

Defined here as a plain ``nn.Sequential`` under ``features`` with torchvision's key layout, so
torchvision's ImageNet file ``vgg19-dcbb9e9d.pth`` loads into it without torchvision. Nothing is
downloaded: ``find_vgg_weights`` looks at a given path, then ``$TORCH_HOME/hub/checkpoints/``.
Without the file, the trainer turns these losses off and says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.errors import CheckpointError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
# torchvision's configuration "E": conv widths, "M" = max pool
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# relu1_2, relu2_2, relu3_2, relu4_2, relu5_2: indices in torchvision's ``features``
LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_2": 13, "relu4_2": 22, "relu5_2": 31}
_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics torchvision's weights expect (RGB in [0, 1])
_STD = (0.229, 0.224, 0.225)
# How images are scaled before the first convolution. The official CoCosNet losses feed Caffe-style
# input (BGR to Caffe weights, ImageNet mean subtracted, x255, no division by the deviation), and
# their weights (weight_vgg, weight_perceptual, ...) were tuned on features of that magnitude:
# about 255 x 0.23 = 58 times those of torchvision-style input. "caffe" gives torchvision's RGB
# weights that scale (each channel in the order its weights expect); "torchvision" is their own.
VGG_INPUTS = ("caffe", "torchvision")


def _features(last: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
            cin = v
    return nn.Sequential(*layers[: last + 1])


class VGG19(nn.Module):
    """Frozen VGG19 trunk up to relu5_2; ``forward`` takes images in [-1, 1] and returns the
    relu{1..5}_2 features (shallowest first). ``input_scaling``: see ``VGG_INPUTS``."""

    def __init__(self, input_scaling: str = "caffe"):
        super().__init__()
        if input_scaling not in VGG_INPUTS:
            raise ValueError(f"VGG input scaling must be one of {VGG_INPUTS}, got {input_scaling!r}")
        self.input_scaling = input_scaling
        self.features = _features(max(LAYERS.values()))
        std = torch.tensor(_STD) if input_scaling == "torchvision" else torch.full((3,), 1 / 255)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19:  # always frozen
        return super().train(False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [-1, 1] -> the first convolution's input."""
        return ((image + 1) / 2 - self.mean.to(image.dtype)) / self.std.to(image.dtype)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = self.preprocess(image)  # (B, 3, H, W)
        outs, taps = [], set(LAYERS.values())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                outs.append(x)
        return outs

    @classmethod
    def from_file(cls, path: str | Path, input_scaling: str = "caffe") -> VGG19:
        """Load torchvision's ``vgg19-*.pth`` (a state dict; the classifier is ignored)."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated file, not a torch file, pickled objects...
            raise CheckpointError(f"{path} cannot be read as torchvision's VGG19 weights: {exc}") from exc
        model = cls(input_scaling)
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or wrong:
            raise CheckpointError(f"{path} is not torchvision's VGG19 ({VGG19_FILE}): "
                                  f"{len(missing)} missing and {len(wrong)} mis-shaped weights "
                                  f"(e.g. {(missing + wrong)[0]}).")
        model.load_state_dict({k: state[k].float() for k in own})
        return model


def find_vgg_weights(path: str | Path | None = None) -> Path | None:
    """The VGG19 file to use: ``path`` if given (must exist), else the torch hub cache, else None."""
    if path:
        p = Path(path).expanduser()
        if p.is_dir():
            p = p / VGG19_FILE
        if not p.is_file():
            raise CheckpointError(f"VGG19 weights not found at {p}. Give torchvision's {VGG19_FILE}, "
                                  "or leave the option out to train without the VGG losses.")
        return p
    candidate = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE  # honours $TORCH_HOME
    return candidate if candidate.is_file() else None
