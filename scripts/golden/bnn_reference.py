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
    "approx_sign",
    "approx_sign_polynomial",
    "RPReLU",
    "BinaryConv2d",
    "BasicBlock",
    "ClassicBasicBlock",
    "ResNet18",
    "build_from_config",
    "config_dict",
    "BLOCK_ORDERS",
    "BLOCK_ACTIVATIONS",
    "DOWNSAMPLES",
    "SIGN_GRADIENTS",
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


def approx_sign_polynomial(x: torch.Tensor) -> torch.Tensor:
    """Bi-Real Net's ApproxSign curve (Liu et al. 2018): -1 | x^2 + 2x | -x^2 + 2x | 1, breaks at -1, 0, 1."""
    one = torch.ones((), dtype=x.dtype, device=x.device)
    return torch.where(x < -1, -one, torch.where(x < 0, x * x + 2 * x, torch.where(x < 1, -x * x + 2 * x, one)))


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """The recipe's sign forward with the gradient autograd derives for the ApproxSign polynomial.

    No hand-written backward: the value is the sign exactly (poly - poly.detach() is 0), the gradient
    is d(poly)/dx, 2 - 2|x| inside (-1, 1) and 0 outside, which is what the native kernel must match.
    """
    poly = approx_sign_polynomial(x)
    return _sign_plus(x).detach() + (poly - poly.detach())


class BinaryConv2d(nn.Conv2d):
    """Conv2d (no bias) whose weight can be binarized with a per-output-channel scale.

    binary_weights False: a plain convolution with W.
    binary_weights True:  convolution with sign(W) * alpha, alpha = mean(|W|) over (in, kh, kw) per output
    channel, detached. Hence grad_W = alpha * (|W| <= 1) * grad_{W_b}.
    input_activation: None (the blocks binarize their input themselves), "sign" or "relu": applied to the
    input first (the binary downsample, a single nn.Sequential child, does its own sign).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False,
                 binary_weights=False, input_activation=None, sign_gradient="ste"):
        if bias:
            raise ValueError("BinaryConv2d has no bias")
        if input_activation not in (None, "sign", "relu"):
            raise ValueError(f"input_activation must be None, 'sign' or 'relu', got {input_activation!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.binary_weights = bool(binary_weights)
        self.input_activation = input_activation
        self.sign_gradient = sign_gradient

    def effective_weight(self) -> torch.Tensor:
        if not self.binary_weights:
            return self.weight
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        return binary_weight(self.weight) * alpha

    def forward(self, x):
        if self.input_activation is not None:
            x = _act(x, self.input_activation == "sign", self.sign_gradient)
        return F.conv2d(x, self.effective_weight(), None, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        extra = f", input={self.input_activation}" if self.input_activation else ""
        return super().extra_repr() + f", binary_weights={self.binary_weights}{extra}"


def _act(x: torch.Tensor, binary_activations: bool, sign_gradient: str = "ste") -> torch.Tensor:
    if not binary_activations:
        return F.relu(x)
    return approx_sign(x) if sign_gradient == "approx-sign" else binary_activation(x)


BLOCK_ORDERS = ("bn-sign-conv", "sign-conv-bn")
BLOCK_ACTIVATIONS = ("prelu", "relu", "none", "rprelu")
DOWNSAMPLES = ("avgpool", "strided", "binary")
SIGN_GRADIENTS = ("ste", "approx-sign")


class RPReLU(nn.Module):
    """ReActNet's RPReLU (Liu et al. 2020): y = PReLU(x - shift_in[c]; weight[c]) + shift_out[c].

    shift_in and shift_out are the paper's gamma and zeta (init 0, so a fresh RPReLU is a PReLU); weight
    keeps nn.PReLU's name and init (0.25). Registered where the PReLU is (`prelu`, `prelu1`, `prelu2`).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.weight = nn.Parameter(torch.full((channels,), 0.25))
        self.shift_out = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.prelu(x - self.shift_in.view(1, -1, 1, 1), self.weight) + self.shift_out.view(1, -1, 1, 1)


def make_downsample(inplanes: int, planes: int, stride: int, bn_momentum: float = 0.1, kind: str = "avgpool",
                    binary_activations: bool = True, sign_gradient: str = "ste"):
    """Shortcut of a block that changes shape; the children are always 0 (1x1 conv), 1 (BN), 2 (pool).

    avgpool (the recipe): full-precision 1x1 conv (stride 1) + BN, then a 2x2 average pool when stride is 2.
    strided (ResNet):     full-precision 1x1 conv with the block's stride + BN.
    binary:               sign (ReLU without binary activations) -> 1x1 BinaryConv2d + BN, then the pool.
    """
    if stride == 1 and inplanes == planes:
        return None
    if stride not in (1, 2):
        raise ValueError(f"unsupported block stride {stride}")
    if kind not in DOWNSAMPLES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {kind!r}")
    if kind == "strided":
        return nn.Sequential(nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                             nn.BatchNorm2d(planes, eps=1e-5, momentum=bn_momentum))
    if kind == "binary":
        conv = BinaryConv2d(inplanes, planes, 1, input_activation="sign" if binary_activations else "relu",
                            sign_gradient=sign_gradient)
    else:
        conv = nn.Conv2d(inplanes, planes, kernel_size=1, stride=1, bias=False)
    mods = [conv, nn.BatchNorm2d(planes, eps=1e-5, momentum=bn_momentum)]
    if stride == 2:
        mods.append(nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True, count_include_pad=False))
    return nn.Sequential(*mods)


def _activation(planes: int, kind: str):
    """The module after the residual add: PReLU (state `prelu*.weight`), or a stateless ReLU / identity."""
    if kind == "prelu":
        return nn.PReLU(planes)
    if kind == "relu":
        return nn.ReLU()
    if kind == "none":
        return nn.Identity()
    if kind == "rprelu":
        return RPReLU(planes)
    raise ValueError(f"block_activation must be one of {BLOCK_ACTIVATIONS}, got {kind!r}")


def _check_order(order: str) -> bool:
    if order not in BLOCK_ORDERS:
        raise ValueError(f"block_order must be one of {BLOCK_ORDERS}, got {order!r}")
    return order == "sign-conv-bn"


class BasicBlock(nn.Module):
    """Single-conv block of the recipe: out = act(conv(sign(bn(x))) + shortcut(x)), act = PReLU.

    block_order 'sign-conv-bn' (Bi-Real Net): out = act(bn(conv(sign(x))) + shortcut(x)), bn over `planes`.
    The activation module is `prelu` (nn.PReLU), `relu` (nn.ReLU) or `act` (nn.Identity); only PReLU has state.
    """

    def __init__(self, inplanes, planes, stride=1, downsample=None, binary_activations=True,
                 bn_momentum=0.1, block_order="bn-sign-conv", block_activation="prelu", sign_gradient="ste",
                 learnable_thresholds=False):
        super().__init__()
        self.bi_real = _check_order(block_order)
        self.sign_gradient = sign_gradient
        # RSign's threshold on the sign's input (in_planes channels in either order): a parameter of the
        # block itself, so it comes first in the block's state_dict.
        if learnable_thresholds:
            self.sign_threshold = nn.Parameter(torch.zeros(inplanes))
        else:
            self.sign_threshold = None
        # Registration order (bn, conv, prelu, downsample; conv first in Bi-Real's order) fixes the
        # state_dict order.
        if not self.bi_real:
            self.bn = nn.BatchNorm2d(inplanes, eps=1e-5, momentum=bn_momentum)
        self.conv = BinaryConv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        if self.bi_real:
            self.bn = nn.BatchNorm2d(planes, eps=1e-5, momentum=bn_momentum)
        self.act_name = {"prelu": "prelu", "rprelu": "prelu", "relu": "relu", "none": "act"}.get(block_activation, "act")
        setattr(self, self.act_name, _activation(planes, block_activation))
        self.downsample = downsample
        self.binary_activations = bool(binary_activations)

    def _sign_input(self, x):
        return x if self.sign_threshold is None else x - self.sign_threshold.view(1, -1, 1, 1)

    def forward(self, x):
        if self.bi_real:
            out = self.bn(self.conv(_act(self._sign_input(x), self.binary_activations, self.sign_gradient)))
        else:
            out = self.conv(_act(self._sign_input(self.bn(x)), self.binary_activations, self.sign_gradient))
        residual = self.downsample(x) if self.downsample is not None else x
        return getattr(self, self.act_name)(out + residual)


class ClassicBasicBlock(nn.Module):
    """Two-conv block with one skip (the doubleSkip=false ablation).

    out = act1(conv1(sign(bn1(x))))
    out = act2(conv2(sign(bn2(out))) + shortcut(x))
    In Bi-Real's order each conv is sign -> conv -> bn instead; the activation switch applies to both.
    """

    def __init__(self, inplanes, planes, stride=1, downsample=None, binary_activations=True,
                 bn_momentum=0.1, block_order="bn-sign-conv", block_activation="prelu", sign_gradient="ste",
                 learnable_thresholds=False):
        super().__init__()
        self.bi_real = _check_order(block_order)
        self.sign_gradient = sign_gradient
        if learnable_thresholds:
            self.sign_threshold1 = nn.Parameter(torch.zeros(inplanes))
            self.sign_threshold2 = nn.Parameter(torch.zeros(planes))
        else:
            self.sign_threshold1 = self.sign_threshold2 = None
        names = {"prelu": ("prelu1", "prelu2"), "rprelu": ("prelu1", "prelu2"), "relu": ("relu1", "relu2"),
                 "none": ("act1", "act2")}
        self.act_names = names.get(block_activation, ("act1", "act2"))
        if not self.bi_real:
            self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5, momentum=bn_momentum)
        self.conv1 = BinaryConv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        if self.bi_real:
            self.bn1 = nn.BatchNorm2d(planes, eps=1e-5, momentum=bn_momentum)
        setattr(self, self.act_names[0], _activation(planes, block_activation))
        if not self.bi_real:
            self.bn2 = nn.BatchNorm2d(planes, eps=1e-5, momentum=bn_momentum)
        self.conv2 = BinaryConv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if self.bi_real:
            self.bn2 = nn.BatchNorm2d(planes, eps=1e-5, momentum=bn_momentum)
        setattr(self, self.act_names[1], _activation(planes, block_activation))
        self.downsample = downsample
        self.binary_activations = bool(binary_activations)

    def _unit(self, bn, conv, x, threshold):
        def sign(v):
            v = v if threshold is None else v - threshold.view(1, -1, 1, 1)
            return _act(v, self.binary_activations, self.sign_gradient)
        if self.bi_real:
            return bn(conv(sign(x)))
        return conv(sign(bn(x)))

    def forward(self, x):
        out = getattr(self, self.act_names[0])(self._unit(self.bn1, self.conv1, x, self.sign_threshold1))
        out = self._unit(self.bn2, self.conv2, out, self.sign_threshold2)
        residual = self.downsample(x) if self.downsample is not None else x
        return getattr(self, self.act_names[1])(out + residual)


class ResNet18(nn.Module):
    """Binarized ResNet-18.

    stem 'small':    conv1 3x3/1 pad 1 -> bn1 -> ReLU
    stem 'imagenet': conv1 7x7/2 pad 3 -> bn1 -> ReLU -> MaxPool 3x3/2 pad 1
    layer1..layer4:  planes width*(1,2,4,8), first stride (1,2,2,2); with double_skip 4 BasicBlocks per
                     layer (each ResNet basic block split into two single-conv blocks), otherwise 2
                     ClassicBasicBlocks. Block 0 carries the stride and the downsample.
    head:            AdaptiveAvgPool2d(1) -> flatten -> fc (Linear with bias)
    Stem, downsample convs and fc are full precision; only the blocks' 3x3 convs are BinaryConv2d
    (and the 1x1 downsample convs with downsample='binary').
    Tricks-ablation switches (defaults are the recipe): block_order 'bn-sign-conv' | 'sign-conv-bn'
    (Bi-Real Net), block_activation 'prelu' | 'relu' | 'none' (after the residual add), downsample
    'avgpool' | 'strided' (ResNet's 1x1 stride-2 conv) | 'binary' (sign -> 1x1 binary conv -> BN -> pool).
    Alternative binarisers (issue 16): sign_gradient 'ste' | 'approx-sign' (Bi-Real Net's gradient, every
    sign), learnable_thresholds (ReActNet's RSign: blocks' signs see x - sign_threshold[c]), and
    block_activation 'rprelu' (ReActNet's RPReLU, module `prelu*` with shift_in, weight, shift_out).
    """

    def __init__(self, num_classes=10, in_channels=3, width=64, stem="small", double_skip=True,
                 binary_activations=True, binary_weights=False, bn_momentum=0.1, block_order="bn-sign-conv",
                 block_activation="prelu", downsample="avgpool", sign_gradient="ste", learnable_thresholds=False):
        super().__init__()
        if stem not in ("small", "imagenet"):
            raise ValueError(f"stem must be 'small' or 'imagenet', got {stem!r}")
        _check_order(block_order)
        if block_activation not in BLOCK_ACTIVATIONS:
            raise ValueError(f"block_activation must be one of {BLOCK_ACTIVATIONS}, got {block_activation!r}")
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {downsample!r}")
        if sign_gradient not in SIGN_GRADIENTS:
            raise ValueError(f"sign_gradient must be one of {SIGN_GRADIENTS}, got {sign_gradient!r}")
        if learnable_thresholds and downsample == "binary":
            raise ValueError("learnable_thresholds is not supported with downsample 'binary'")
        self.sign_gradient = sign_gradient
        self.learnable_thresholds = bool(learnable_thresholds)
        self.block_order = block_order
        self.block_activation = block_activation
        self.downsample_kind = downsample
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
        ds = make_downsample(self.inplanes, planes, stride, mom, self.downsample_kind, ba, self.sign_gradient)
        sw = dict(block_order=self.block_order, block_activation=self.block_activation,
                  sign_gradient=self.sign_gradient, learnable_thresholds=self.learnable_thresholds)
        if self.double_skip:
            blocks = [BasicBlock(self.inplanes, planes, stride, ds, ba, mom, **sw)]
            blocks += [BasicBlock(planes, planes, 1, None, ba, mom, **sw) for _ in range(3)]
        else:
            blocks = [ClassicBasicBlock(self.inplanes, planes, stride, ds, ba, mom, **sw),
                      ClassicBasicBlock(planes, planes, 1, None, ba, mom, **sw)]
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


# Config in the camelCase form used by the fixtures' metadata and the TypeScript API. CONFIG_KEYS are
# required; the ablation switches (VARIANT_DEFAULTS) are optional and, when absent, the recipe's, so
# configs written before they existed still describe their network.
CONFIG_KEYS = ("numClasses", "inChannels", "width", "stem", "doubleSkip", "binaryActivations",
               "binaryWeights", "bnMomentum")
VARIANT_DEFAULTS = {"blockOrder": "bn-sign-conv", "blockActivation": "prelu", "downsample": "avgpool",
                    "signGradient": "ste", "learnableThresholds": False}


def config_dict(model: ResNet18) -> dict:
    """The model's config; the ablation switches only where they differ from the recipe."""
    cfg = {
        "numClasses": model.num_classes,
        "inChannels": model.in_channels,
        "width": model.width,
        "stem": model.stem,
        "doubleSkip": model.double_skip,
        "binaryActivations": model.binary_activations,
        "binaryWeights": model.binary_weights,
        "bnMomentum": model.bn_momentum,
    }
    variant = {"blockOrder": model.block_order, "blockActivation": model.block_activation,
               "downsample": model.downsample_kind, "signGradient": model.sign_gradient,
               "learnableThresholds": model.learnable_thresholds}
    cfg.update({k: v for k, v in variant.items() if v != VARIANT_DEFAULTS[k]})
    return cfg


def build_from_config(cfg: dict) -> ResNet18:
    missing = set(CONFIG_KEYS) - set(cfg)
    if missing:
        raise KeyError(f"config lacks {sorted(missing)}")
    unknown = set(cfg) - set(CONFIG_KEYS) - set(VARIANT_DEFAULTS) - {"arch"}
    if unknown:
        raise KeyError(f"unknown config keys {sorted(unknown)}")
    v = {**VARIANT_DEFAULTS, **{k: cfg[k] for k in VARIANT_DEFAULTS if k in cfg}}
    return ResNet18(num_classes=cfg["numClasses"], in_channels=cfg["inChannels"], width=cfg["width"],
                    stem=cfg["stem"], double_skip=cfg["doubleSkip"],
                    binary_activations=cfg["binaryActivations"], binary_weights=cfg["binaryWeights"],
                    bn_momentum=cfg["bnMomentum"], block_order=v["blockOrder"],
                    block_activation=v["blockActivation"], downsample=v["downsample"],
                    sign_gradient=v["signGradient"], learnable_thresholds=v["learnableThresholds"])
