"""EfficientAT MobileNetV3 ("MN") audio tagging networks.

One width-parametrised implementation covers every released MN model
(mn01 ... mn40). Module attribute names follow the official checkpoint key
layout (``features.0 .. features.16``, ``classifier.2``, ``classifier.5``) so
released state dicts load with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import nn

from audiobench.models.channels import make_divisible

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block of the MobileNetV3-Large table (unscaled)."""

    in_ch: int
    kernel: int
    expanded: int
    out_ch: int
    use_se: bool
    hardswish: bool
    stride: int


# (in, kernel, expanded, out, SE, hardswish, stride); stride 0 marks the four
# configurable down-sampling positions.
_LARGE_TABLE: Tuple[Tuple[int, int, int, int, bool, bool, int], ...] = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 0),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 0),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 0),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 0),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)


def block_specs(width_mult: float, strides: Sequence[int] = (2, 2, 2, 2)) -> List[BlockSpec]:
    """Scaled block table for ``width_mult`` with the given four down-sampling strides."""
    if len(strides) != 4:
        raise ValueError(f"strides must have 4 entries, got {strides!r}")
    stride_iter = iter(strides)
    specs = []
    for in_ch, k, exp, out_ch, se, hs, s in _LARGE_TABLE:
        specs.append(BlockSpec(
            in_ch=make_divisible(in_ch * width_mult), kernel=k,
            expanded=make_divisible(exp * width_mult), out_ch=make_divisible(out_ch * width_mult),
            use_se=se, hardswish=hs, stride=int(next(stride_iter)) if s == 0 else s,
        ))
    return specs


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> optional activation; keys ``0``, ``1``, ``2``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, activation: type | None = nn.Hardswish) -> None:
        layers: List[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel squeeze-excitation: mean over (freq, time) -> fc1 -> ReLU -> fc2 -> Sigmoid.

    EfficientAT keeps the plain logistic Sigmoid gate here (torchvision's
    MobileNetV3 uses Hardsigmoid); the reference fixture only matches with Sigmoid.
    """

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(squeeze, channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = self.gate(self.fc2(self.act(self.fc1(s))))
        return x * s[:, :, None, None]


class ConcurrentSE(nn.Module):
    """Container matching the official ``conc_se_layers`` key layout (channel SE only)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([SqueezeExcitation(channels, squeeze)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    """MobileNetV3 block: [expand] -> depthwise -> [SE] -> project, with residual if shapes match."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        act = nn.Hardswish if spec.hardswish else nn.ReLU
        layers: List[nn.Module] = []
        if spec.expanded != spec.in_ch:
            layers.append(ConvBNAct(spec.in_ch, spec.expanded, 1, activation=act))
        layers.append(ConvBNAct(spec.expanded, spec.expanded, spec.kernel, spec.stride,
                                groups=spec.expanded, activation=act))
        if spec.use_se:
            layers.append(ConcurrentSE(spec.expanded, make_divisible(spec.expanded // 4, 8)))
        layers.append(ConvBNAct(spec.expanded, spec.out_ch, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = spec.stride == 1 and spec.in_ch == spec.out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


def mlp_head(in_ch: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """EfficientAT's "mlp" head: pool, flatten, Linear, Hardswish, Dropout, Linear (keys ``.2`` / ``.5``)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(in_ch, hidden), nn.Hardswish(),
                         nn.Dropout(p=dropout), nn.Linear(hidden, num_classes))


def init_mobilenet_weights(module: nn.Module) -> None:
    """Kaiming-normal convs, unit/zero norms, N(0, 0.01) linears (the MobileNetV3 initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


class MobileNet(nn.Module):
    """EfficientAT MN model (MobileNetV3-Large layout, mlp head).

    Args:
        width_mult: channel width multiplier (0.4 for mn04, 1.0 for mn10, ...).
        num_classes: output classes (527 for AudioSet).
        strides: the four configurable down-sampling strides.
        dropout: dropout probability in the classifier head.
    """

    def __init__(self, width_mult: float, num_classes: int = 527,
                 strides: Sequence[int] = (2, 2, 2, 2), dropout: float = 0.2) -> None:
        super().__init__()
        self.width_mult = float(width_mult)
        self.num_classes = int(num_classes)
        specs = block_specs(width_mult, strides)
        stem_ch = specs[0].in_ch
        last_ch = 6 * specs[-1].out_ch
        hidden = make_divisible(1280 * width_mult)
        layers: List[nn.Module] = [ConvBNAct(1, stem_ch, 3, stride=2, activation=nn.Hardswish)]
        layers += [InvertedResidual(s) for s in specs]
        layers.append(ConvBNAct(specs[-1].out_ch, last_ch, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.embed_dim = last_ch
        self.classifier = mlp_head(last_ch, hidden, num_classes, dropout)
        init_mobilenet_weights(self)

    def features_map(self, mel: torch.Tensor) -> torch.Tensor:
        """Feature map ``[B, C, F', T']`` after ``features.16`` (before pooling)."""
        if mel.dim() == 3:
            mel = mel.unsqueeze(1)
        return self.features(mel)

    def forward(self, mel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Map ``[B, 1, n_mels, T]`` log-mels to ``(logits [B, classes], embedding [B, C])``."""
        fmap = self.features_map(mel)
        logits = self.classifier(fmap)
        embedding = fmap.mean(dim=(2, 3))
        return logits, embedding
