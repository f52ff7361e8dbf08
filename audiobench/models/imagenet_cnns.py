"""ImageNet CNNs (DenseNet, ResNet, Inception v3) in the exact state_dict layout of the torchvision releases.

Written here from the architecture facts (torchvision is not a dependency), so the released ImageNet weights
load with ``strict=True``. Every network has ``forward`` (logits, torchvision semantics), ``forward_features``
(pooled penultimate features ``[B, num_features]``), ``reset_classifier(num_classes)`` (a new linear head) and
``adapt_checkpoint(state_dict)`` (a released file in this layout: legacy DenseNet keys renamed, missing BatchNorm
``num_batches_tracked`` counters set to 0 as torch does on load). Build one with :func:`build_imagenet_cnn`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from audiobench.errors import AudiobenchError

# Old torchvision DenseNet files name the layers of a dense layer "norm.1", "conv.2", ...
_LEGACY_DENSE_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$")


def _modern_key(key: str) -> str:
    match = _LEGACY_DENSE_KEY.match(key)
    return match.group(1) + match.group(2) if match else key


def rename_legacy_densenet_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``...denselayerN.norm.1.weight`` -> ``...denselayerN.norm1.weight`` (other keys unchanged, order kept)."""
    return {_modern_key(key): value for key, value in state_dict.items()}


def _rename_in_place(state_dict: dict[str, torch.Tensor]) -> None:
    renamed = rename_legacy_densenet_keys(state_dict)
    state_dict.clear()
    state_dict.update(renamed)


class ImageNetCNN(nn.Module):
    """What the three families share: the classifier attribute, pooled features, checkpoint adaptation."""

    classifier_name = "fc"
    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def head(self) -> nn.Linear:
        return getattr(self, self.classifier_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head()(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> nn.Linear:
        """Replace the classifier by a new ``nn.Linear(num_features, num_classes)`` (default init)."""
        head = nn.Linear(self.num_features, num_classes).to(self.head().weight.device)
        setattr(self, self.classifier_name, head)
        return head

    def adapt_checkpoint(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Tensors of a released file in this network's layout (see the module docstring)."""
        adapted = rename_legacy_densenet_keys(state_dict)
        for name, module in self.named_modules():
            counter = f"{name}.num_batches_tracked"
            if isinstance(module, nn.BatchNorm2d) and f"{name}.running_mean" in adapted and counter not in adapted:
                adapted[counter] = torch.tensor(0, dtype=torch.long)
        return adapted


class DenseLayer(nn.Sequential):
    """BN-ReLU-1x1 conv (``bn_size * growth`` channels) - BN-ReLU-3x3 conv (``growth``) on the concatenated inputs."""

    def __init__(self, in_ch: int, growth: int, bn_size: int) -> None:
        super().__init__(OrderedDict(
            norm1=nn.BatchNorm2d(in_ch), relu1=nn.ReLU(inplace=True),
            conv1=nn.Conv2d(in_ch, bn_size * growth, 1, bias=False), norm2=nn.BatchNorm2d(bn_size * growth),
            relu2=nn.ReLU(inplace=True), conv2=nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return super().forward(torch.cat(features, 1))


class DenseBlock(nn.ModuleDict):
    """``denselayer1 .. denselayerN``; every layer sees the concatenation of all earlier outputs."""

    def __init__(self, layers: int, in_ch: int, growth: int, bn_size: int) -> None:
        super().__init__({f"denselayer{i + 1}": DenseLayer(in_ch + i * growth, growth, bn_size) for i in range(layers)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


def transition(in_ch: int, out_ch: int) -> nn.Sequential:
    """BN-ReLU-1x1 conv-2x2 average pooling between dense blocks (keys ``norm``, ``conv``)."""
    return nn.Sequential(OrderedDict(norm=nn.BatchNorm2d(in_ch), relu=nn.ReLU(inplace=True),
                              conv=nn.Conv2d(in_ch, out_ch, 1, bias=False), pool=nn.AvgPool2d(2, 2)))


class DenseNet(ImageNetCNN):
    """DenseNet-BC (Huang et al. 2017) as torchvision builds it; classifier ``classifier``."""

    classifier_name = "classifier"

    def __init__(self, growth: int, blocks: tuple[int, ...], init_features: int, num_classes: int = 1000,
                 bn_size: int = 4, init_weights: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv0=nn.Conv2d(3, init_features, 7, 2, 3, bias=False), norm0=nn.BatchNorm2d(init_features),
            relu0=nn.ReLU(inplace=True), pool0=nn.MaxPool2d(3, 2, 1)))
        channels = init_features
        for i, layers in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(layers, channels, growth, bn_size))
            channels += layers * growth
            if i < len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.num_features = channels
        self.classifier = nn.Linear(channels, num_classes)
        for m in self.modules() if init_weights else ():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        # load_state_dict accepts the legacy key names too, as torchvision's DenseNet loader does
        self.register_load_state_dict_pre_hook(lambda module, state_dict, *args: _rename_in_place(state_dict))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(F.relu(self.features(x)), 1).flatten(1)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out_ch)


class ResidualBlock(nn.Module):
    """``relu(convs(x) + shortcut(x))``; basic (two 3x3, ResNet-18/34) or bottleneck (1x1, 3x3 with the stride as
    torchvision's "ResNet V1.5", 1x1 to 4x planes; ResNet-50+). ReLU after every BN but the last."""

    def __init__(self, in_ch: int, planes: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        self.expansion = 4 if bottleneck else 1
        convs = ([(in_ch, planes, 1, 1), (planes, planes, 3, stride), (planes, 4 * planes, 1, 1)] if bottleneck
                 else [(in_ch, planes, 3, stride), (planes, planes, 3, 1)])
        for i, spec in enumerate(convs, 1):
            conv, bn = _conv_bn(*spec)
            self.add_module(f"conv{i}", conv)
            self.add_module(f"bn{i}", bn)
        self.depth = len(convs)
        self.relu = nn.ReLU(inplace=True)
        out_ch = planes * self.expansion
        self.downsample = (nn.Sequential(*_conv_bn(in_ch, out_ch, 1, stride))
                           if stride != 1 or in_ch != out_ch else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i in range(1, self.depth + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            out = self.relu(out) if i < self.depth else out
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(ImageNetCNN):
    """ResNet (He et al. 2016) as torchvision builds it; classifier ``fc``."""

    def __init__(self, layers: tuple[int, ...], bottleneck: bool, num_classes: int = 1000,
                 init_weights: bool = True) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(3, 64, 7, 2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = 64
        for i, count in enumerate(layers):
            planes, blocks = 64 * 2 ** i, []
            for j in range(count):
                blocks.append(ResidualBlock(channels, planes, 2 if i > 0 and j == 0 else 1, bottleneck))
                channels = planes * blocks[-1].expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules() if init_weights else ():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class BasicConv2d(nn.Module):
    """Conv (no bias) - BatchNorm (eps 1e-3) - ReLU; keys ``conv``, ``bn``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


ConvSpec = tuple  # (name, in, out, kernel, stride, padding)

@dataclass(frozen=True)
class Branch:
    """One branch of a mixed block: optional pooling, convs in sequence, then optional parallel convs."""

    convs: tuple[ConvSpec, ...] = ()
    pool: str | None = None  # "avg": 3x3 stride 1 pad 1 before the convs; "max": 3x3 stride 2, alone
    split: tuple[ConvSpec, ...] = ()  # applied in parallel to the branch output and concatenated


def _c(name: str, cin: int, cout: int, k: int | tuple[int, int], s: int = 1, p: int | tuple[int, int] = 0) -> ConvSpec:
    return name, cin, cout, k, s, p


def _seven(prefix: str, c: int, out: int, kernels: str, first_in: int) -> tuple[ConvSpec, ...]:
    """A 1x1 then factorised 7-tap convs ("h" = (1,7), "v" = (7,1)), the last one to ``out`` channels."""
    convs = [_c(f"{prefix}_1", first_in, c, 1)]
    for i, axis in enumerate(kernels):
        k, p = ((1, 7), (0, 3)) if axis == "h" else ((7, 1), (3, 0))
        convs.append(_c(f"{prefix}_{i + 2}", c, out if i == len(kernels) - 1 else c, k, 1, p))
    return tuple(convs)


def inception_a(cin: int, pool_features: int) -> list[Branch]:
    return [Branch((_c("branch1x1", cin, 64, 1),)),
            Branch((_c("branch5x5_1", cin, 48, 1), _c("branch5x5_2", 48, 64, 5, 1, 2))),
            Branch((_c("branch3x3dbl_1", cin, 64, 1), _c("branch3x3dbl_2", 64, 96, 3, 1, 1),
                    _c("branch3x3dbl_3", 96, 96, 3, 1, 1))),
            Branch((_c("branch_pool", cin, pool_features, 1),), pool="avg")]


def inception_b(cin: int) -> list[Branch]:
    return [Branch((_c("branch3x3", cin, 384, 3, 2),)),
            Branch((_c("branch3x3dbl_1", cin, 64, 1), _c("branch3x3dbl_2", 64, 96, 3, 1, 1),
                    _c("branch3x3dbl_3", 96, 96, 3, 2))),
            Branch(pool="max")]


def inception_c(cin: int, c7: int) -> list[Branch]:
    return [Branch((_c("branch1x1", cin, 192, 1),)), Branch(_seven("branch7x7", c7, 192, "hv", cin)),
            Branch(_seven("branch7x7dbl", c7, 192, "vhvh", cin)),
            Branch((_c("branch_pool", cin, 192, 1),), pool="avg")]


def inception_d(cin: int) -> list[Branch]:
    return [Branch((_c("branch3x3_1", cin, 192, 1), _c("branch3x3_2", 192, 320, 3, 2))),
            Branch(_seven("branch7x7x3", 192, 192, "hv", cin) + (_c("branch7x7x3_4", 192, 192, 3, 2),)),
            Branch(pool="max")]


def inception_e(cin: int) -> list[Branch]:
    split = (lambda name: (_c(f"{name}a", 384, 384, (1, 3), 1, (0, 1)), _c(f"{name}b", 384, 384, (3, 1), 1, (1, 0))))
    return [Branch((_c("branch1x1", cin, 320, 1),)),
            Branch((_c("branch3x3_1", cin, 384, 1),), split=split("branch3x3_2")),
            Branch((_c("branch3x3dbl_1", cin, 448, 1), _c("branch3x3dbl_2", 448, 384, 3, 1, 1)),
                   split=split("branch3x3dbl_3")),
            Branch((_c("branch_pool", cin, 192, 1),), pool="avg")]


class MixedBlock(nn.Module):
    """An Inception module from its branch table; outputs of the branches are concatenated in table order."""

    def __init__(self, branches: list[Branch]) -> None:
        super().__init__()
        self.branches = branches
        for branch in branches:
            for name, *args in branch.convs + branch.split:
                self.add_module(name, BasicConv2d(*args))

    def _branch(self, branch: Branch, x: torch.Tensor) -> torch.Tensor:
        if branch.pool == "max":
            return F.max_pool2d(x, 3, 2)
        if branch.pool == "avg":
            x = F.avg_pool2d(x, 3, 1, 1)
        for spec in branch.convs:
            x = getattr(self, spec[0])(x)
        return torch.cat([getattr(self, spec[0])(x) for spec in branch.split], 1) if branch.split else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._branch(branch, x) for branch in self.branches], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on ``Mixed_6e``: 5x5/3 average pool, 1x1 conv, 5x5 conv, pool, ``fc``."""

    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.conv0, self.conv1, self.fc = BasicConv2d(in_ch, 128, 1), BasicConv2d(128, 768, 5), nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.conv1(self.conv0(F.avg_pool2d(x, 5, 3))), 1).flatten(1))


def inception_transform_input(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``transform_input``: ImageNet-mean/std-normalised images to the [-1, 1] scaling of Inception."""
    mean, std = x.new_tensor((0.485, 0.456, 0.406))[:, None, None], x.new_tensor((0.229, 0.224, 0.225))[:, None, None]
    return x * (std / 0.5) + (mean - 0.5) / 0.5


_STEM = (("Conv2d_1a_3x3", 3, 32, 3, 2, 0), ("Conv2d_2a_3x3", 32, 32, 3, 1, 0), ("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
         ("maxpool1",), ("Conv2d_3b_1x1", 64, 80, 1, 1, 0), ("Conv2d_4a_3x3", 80, 192, 3, 1, 0), ("maxpool2",))
_MIXED = (("Mixed_5b", inception_a(192, 32)), ("Mixed_5c", inception_a(256, 64)), ("Mixed_5d", inception_a(288, 64)),
          ("Mixed_6a", inception_b(288)), ("Mixed_6b", inception_c(768, 128)), ("Mixed_6c", inception_c(768, 160)),
          ("Mixed_6d", inception_c(768, 160)), ("Mixed_6e", inception_c(768, 192)))
_MIXED_7 = (("Mixed_7a", inception_d(768)), ("Mixed_7b", inception_e(1280)), ("Mixed_7c", inception_e(2048)))


class InceptionV3(ImageNetCNN):
    """Inception v3 (Szegedy et al. 2016) as torchvision's ``Inception3``; classifier ``fc``, aux ``AuxLogits``.

    The auxiliary branch (in the released file) runs only in training mode and needs >= 5x5 maps after ``Mixed_6e``
    (~299 px inputs): on 128-high spectrograms set ``aux_logits = False`` or :meth:`drop_aux_logits` (as RCNN did).
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, transform_input: bool = False,
                 dropout: float = 0.5, init_weights: bool = True) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        for name, *args in _STEM:
            self.add_module(name, BasicConv2d(*args) if args else nn.MaxPool2d(3, 2))
        for name, branches in _MIXED:
            self.add_module(name, MixedBlock(branches))
        self.AuxLogits: nn.Module | None = InceptionAux(768, num_classes) if aux_logits else None
        for name, branches in _MIXED_7:
            self.add_module(name, MixedBlock(branches))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.num_features = 2048
        self.fc = nn.Linear(2048, num_classes)
        with torch.no_grad():  # torchvision: normal(0, 0.1) truncated to [-2, 2]; aux conv1 0.01, aux fc 0.001
            for m in self.modules() if init_weights else ():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.weight.normal_(0.0, 0.1).clamp_(-2.0, 2.0)
            if self.AuxLogits is not None and init_weights:
                self.AuxLogits.conv1.conv.weight.normal_(0.0, 0.01)
                self.AuxLogits.fc.weight.normal_(0.0, 0.001)

    def drop_aux_logits(self) -> None:
        """Remove the auxiliary branch (torchvision's state after loading weights with ``aux_logits=False``)."""
        self.aux_logits = False
        self.AuxLogits = None

    def _mixed_6(self, x: torch.Tensor) -> torch.Tensor:
        x = inception_transform_input(x) if self.transform_input else x
        for name, *_ in _STEM + _MIXED:
            x = getattr(self, name)(x)
        return x

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        for name, _ in _MIXED_7:
            x = getattr(self, name)(x)
        return self.avgpool(x).flatten(1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._pooled(self._mixed_6(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        mixed_6 = self._mixed_6(x)
        logits = self.fc(self.dropout(self._pooled(mixed_6)))
        if self.training and self.aux_logits and self.AuxLogits is not None:
            return logits, self.AuxLogits(mixed_6)
        return logits


# name -> factory(num_classes, **options); configurations as torchvision's model builders set them
ARCHITECTURES: dict[str, Callable[..., ImageNetCNN]] = {
    "densenet121": lambda n, **o: DenseNet(32, (6, 12, 24, 16), 64, n, **o),
    "densenet161": lambda n, **o: DenseNet(48, (6, 12, 36, 24), 96, n, **o),
    "densenet169": lambda n, **o: DenseNet(32, (6, 12, 32, 32), 64, n, **o),
    "densenet201": lambda n, **o: DenseNet(32, (6, 12, 48, 32), 64, n, **o),
    "resnet18": lambda n, **o: ResNet((2, 2, 2, 2), False, n, **o),
    "resnet34": lambda n, **o: ResNet((3, 4, 6, 3), False, n, **o),
    "resnet50": lambda n, **o: ResNet((3, 4, 6, 3), True, n, **o),
    "resnet101": lambda n, **o: ResNet((3, 4, 23, 3), True, n, **o),
    "resnet152": lambda n, **o: ResNet((3, 8, 36, 3), True, n, **o),
    "inception_v3": lambda n, **o: InceptionV3(n, **o),
}


def build_imagenet_cnn(arch: str, num_classes: int = 1000, **options: object) -> ImageNetCNN:
    """Network ``arch`` of :data:`ARCHITECTURES`; ``options`` go to its class (``init_weights=False`` skips
    torchvision's weight initialisation, leaving PyTorch's layer defaults: quicker when weights are loaded next)."""
    if arch not in ARCHITECTURES:
        raise AudiobenchError(f"Unknown ImageNet architecture {arch!r}.",
                              hint=f"Use one of: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[arch](num_classes, **options)
