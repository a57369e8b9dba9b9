"""Plain-PyTorch reference of the bnn-torch network (binarized ResNet-18 with the recipe's tricks).

This module is the ground truth the native (LibTorch) model is tested against: the golden fixtures in
test/fixtures/ are produced from it by scripts/golden/generate.py. Module structure and registration
order are part of the contract, because they fix the state_dict names the C++ model must reproduce
(see scripts/golden/NAMES.md).

Importable on its own (no fixture code here), e.g. by a benchmark:

    import sys; sys.path.insert(0, "scripts/golden")
    from bnn_reference import ResNet18
    model = ResNet18(num_classes=10, in_channels=3, width=64).cuda()
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "BinaryActivationF",
    "BinaryWeightF",
    "binary_activation",
    "binary_weight",
    "BinaryConv2d",
    "BasicBlock",
    "ClassicBasicBlock",
    "ResNet18",
    "build_from_config",
    "config_dict",
]


def _sign_plus(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0 (0 included), -1 where x < 0, NaN stays NaN."""
    one = torch.ones((), dtype=x.dtype, device=x.device)
    out = torch.where(x >= 0, one, -one)
    return torch.where(torch.isnan(x), x, out)


class BinaryActivationF(torch.autograd.Function):
    """Sign activation with the clipped straight-through estimator.

    forward:  +1 where x >= 0, -1 where x < 0 (0 -> +1, unlike torch.sign), NaN stays NaN.
    backward: grad where -1 < x < 1 (strict), 0 where |x| >= 1 (and where x is NaN).
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _sign_plus(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        keep = (x > -1) & (x < 1)
        return torch.where(keep, grad_output, torch.zeros_like(grad_output))


class BinaryWeightF(torch.autograd.Function):
    """Weight binarization: sign with 0 -> +1 forward; backward grad * (|W| <= 1) (inclusive)."""

    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return _sign_plus(w)

    @staticmethod
    def backward(ctx, grad_output):
        (w,) = ctx.saved_tensors
        keep = w.abs() <= 1
        return torch.where(keep, grad_output, torch.zeros_like(grad_output))


def binary_activation(x: torch.Tensor) -> torch.Tensor:
    return BinaryActivationF.apply(x)


def binary_weight(w: torch.Tensor) -> torch.Tensor:
    return BinaryWeightF.apply(w)


class BinaryConv2d(nn.Conv2d):
    """Conv2d (no bias) whose weight can be binarized with a per-output-channel scale.

    binary_weights False: a plain convolution with W.
    binary_weights True:  convolution with sign(W) * alpha, alpha = mean(|W|) over (in, kh, kw) per output
    channel, detached. Hence grad_W = alpha * (|W| <= 1) * grad_{W_b}.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False,
                 binary_weights=False):
        if bias:
            raise ValueError("BinaryConv2d has no bias")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.binary_weights = bool(binary_weights)

    def effective_weight(self) -> torch.Tensor:
        if not self.binary_weights:
            return self.weight
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        return binary_weight(self.weight) * alpha

    def forward(self, x):
        return F.conv2d(x, self.effective_weight(), None, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return super().extra_repr() + f", binary_weights={self.binary_weights}"


def _act(x: torch.Tensor, binary_activations: bool) -> torch.Tensor:
    return binary_activation(x) if binary_activations else F.relu(x)


def make_downsample(inplanes: int, planes: int, stride: int, bn_momentum: float = 0.1):
    """Full-precision shortcut: 1x1 conv (stride 1) + BN, then a 2x2 average pool when stride is 2."""
    if stride == 1 and inplanes == planes:
        return None
    if stride not in (1, 2):
        raise ValueError(f"unsupported block stride {stride}")
    mods = [
        nn.Conv2d(inplanes, planes, kernel_size=1, stride=1, bias=False),
        nn.BatchNorm2d(planes, eps=1e-5, momentum=bn_momentum),
    ]
    if stride == 2:
        mods.append(nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True, count_include_pad=False))
    return nn.Sequential(*mods)


class BasicBlock(nn.Module):
    """Single-conv block of the recipe: out = prelu(conv(act(bn(x))) + shortcut(x))."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, binary_activations=True,
                 bn_momentum=0.1):
        super().__init__()
        # Registration order (bn, conv, prelu, downsample) fixes the state_dict order.
        self.bn = nn.BatchNorm2d(inplanes, eps=1e-5, momentum=bn_momentum)
        self.conv = BinaryConv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.prelu = nn.PReLU(planes)
        self.downsample = downsample
        self.binary_activations = bool(binary_activations)

    def forward(self, x):
        out = self.conv(_act(self.bn(x), self.binary_activations))
        residual = self.downsample(x) if self.downsample is not None else x
        return self.prelu(out + residual)


class ClassicBasicBlock(nn.Module):
    """Two-conv block with one skip (the doubleSkip=false ablation).

    out = prelu1(conv1(act(bn1(x))))
    out = prelu2(conv2(act(bn2(out))) + shortcut(x))
    """

    def __init__(self, inplanes, planes, stride=1, downsample=None, binary_activations=True,
                 bn_momentum=0.1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5, momentum=bn_momentum)
        self.conv1 = BinaryConv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.prelu1 = nn.PReLU(planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5, momentum=bn_momentum)
        self.conv2 = BinaryConv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.prelu2 = nn.PReLU(planes)
        self.downsample = downsample
        self.binary_activations = bool(binary_activations)

    def forward(self, x):
        out = self.prelu1(self.conv1(_act(self.bn1(x), self.binary_activations)))
        out = self.conv2(_act(self.bn2(out), self.binary_activations))
        residual = self.downsample(x) if self.downsample is not None else x
        return self.prelu2(out + residual)


class ResNet18(nn.Module):
    """Binarized ResNet-18.

    stem 'small':    conv1 3x3/1 pad 1 -> bn1 -> ReLU
    stem 'imagenet': conv1 7x7/2 pad 3 -> bn1 -> ReLU -> MaxPool 3x3/2 pad 1
    layer1..layer4:  planes width*(1,2,4,8), first stride (1,2,2,2); with double_skip 4 BasicBlocks per
                     layer (each ResNet basic block split into two single-conv blocks), otherwise 2
                     ClassicBasicBlocks. Block 0 carries the stride and the downsample.
    head:            AdaptiveAvgPool2d(1) -> flatten -> fc (Linear with bias)
    Stem, downsample convs and fc are full precision; only the blocks' 3x3 convs are BinaryConv2d.
    """

    def __init__(self, num_classes=10, in_channels=3, width=64, stem="small", double_skip=True,
                 binary_activations=True, binary_weights=False, bn_momentum=0.1):
        super().__init__()
        if stem not in ("small", "imagenet"):
            raise ValueError(f"stem must be 'small' or 'imagenet', got {stem!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.width = width
        self.stem = stem
        self.double_skip = bool(double_skip)
        self.binary_activations = bool(binary_activations)
        self.bn_momentum = bn_momentum

        if stem == "small":
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=1e-5, momentum=bn_momentum)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else None

        self.inplanes = width
        self.layer1 = self._make_layer(width, 1)
        self.layer2 = self._make_layer(2 * width, 2)
        self.layer3 = self._make_layer(4 * width, 2)
        self.layer4 = self._make_layer(8 * width, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * width, num_classes)
        self.set_binary_weights(binary_weights)

    def _make_layer(self, planes, stride):
        ba, mom = self.binary_activations, self.bn_momentum
        ds = make_downsample(self.inplanes, planes, stride, mom)
        if self.double_skip:
            blocks = [BasicBlock(self.inplanes, planes, stride, ds, ba, mom)]
            blocks += [BasicBlock(planes, planes, 1, None, ba, mom) for _ in range(3)]
        else:
            blocks = [ClassicBasicBlock(self.inplanes, planes, stride, ds, ba, mom),
                      ClassicBasicBlock(planes, planes, 1, None, ba, mom)]
        self.inplanes = planes
        return nn.Sequential(*blocks)

    def binary_convs(self):
        return [m for m in self.modules() if isinstance(m, BinaryConv2d)]

    def set_binary_weights(self, on: bool):
        for m in self.binary_convs():
            m.binary_weights = bool(on)
        self.binary_weights = bool(on)
        return self

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# Config in the camelCase form used by the fixtures' metadata and the TypeScript API.
CONFIG_KEYS = ("numClasses", "inChannels", "width", "stem", "doubleSkip", "binaryActivations",
               "binaryWeights", "bnMomentum")


def config_dict(model: ResNet18) -> dict:
    return {
        "numClasses": model.num_classes,
        "inChannels": model.in_channels,
        "width": model.width,
        "stem": model.stem,
        "doubleSkip": model.double_skip,
        "binaryActivations": model.binary_activations,
        "binaryWeights": model.binary_weights,
        "bnMomentum": model.bn_momentum,
    }


def build_from_config(cfg: dict) -> ResNet18:
    missing = set(CONFIG_KEYS) - set(cfg)
    if missing:
        raise KeyError(f"config lacks {sorted(missing)}")
    return ResNet18(num_classes=cfg["numClasses"], in_channels=cfg["inChannels"], width=cfg["width"],
                    stem=cfg["stem"], double_skip=cfg["doubleSkip"],
                    binary_activations=cfg["binaryActivations"], binary_weights=cfg["binaryWeights"],
                    bn_momentum=cfg["bnMomentum"])
