"""EfficientAT Dynamic MobileNet ("DyMN") audio tagging networks.

One width-parametrised implementation covers dymn04 (DyMN-S), dymn10 (DyMN-M) and dymn20
(DyMN-L). The layout is the MobileNetV3-Large table of the static MN
(:func:`audiobench.models.efficientat.block_specs`), with every inverted-residual block replaced
by a dynamic block (:class:`DyBlock`): dynamic convolutions (K=4 kernels), Dy-ReLU-B (M=2) after
the depthwise conv, and coordinate attention instead of squeeze-excitation, all driven by a
per-block context generator. Module names follow the official checkpoint key layout (``layers.i``,
``in_c``, ``out_c``, ``classifier.2``, ``classifier.5``) so released state dicts load strictly.

Temperature: the softmax over the K kernels of every dynamic conv is divided by a temperature.
Training from scratch anneals it from 30 to 1; AudioSet checkpoints were trained to the end of that
schedule and must be evaluated at 1.0 (the default here); ImageNet-pretrained DyMN checkpoints were
left at 30. Change it for the whole network with ``model.temperature = value``.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from audiobench.models.channels import make_divisible
from audiobench.models.dymn_layers import ContextGen, DynamicConv, DyReLUB
from audiobench.models.efficientat import (BN_EPS, BN_MOMENTUM, BlockSpec, ConvBNAct, block_specs,
                                           init_mobilenet_weights, mlp_head)


def context_dim(expanded: int, width_mult: float, ratio: int = 4,
                min_size: int = 32, max_size: int = 128) -> int:
    """Context size H of a block: ``expanded // ratio`` rounded to 8, clipped to the width-scaled
    ``[min_size, max_size]`` range (both bounds also rounded to multiples of 8)."""
    lo = make_divisible(min_size * width_mult)
    hi = make_divisible(max_size * width_mult)
    return int(min(max(make_divisible(expanded // ratio), lo), hi))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class DyBlock(nn.Module):
    """Dynamic inverted-residual block.

    ``context_gen(x) -> h, g_f, g_t``; then [expand: DyConv 1x1 -> BN -> ReLU/Hardswish] ->
    depthwise DyConv -> BN -> Dy-ReLU-B -> ``* sigmoid(g_f) * sigmoid(g_t)`` (coordinate
    attention) -> DyConv 1x1 projection -> BN, plus the identity when stride 1 and in == out.
    """

    def __init__(self, spec: BlockSpec, width_mult: float, dyconv_k: int = 4, dyrelu_m: int = 2,
                 temperature: float = 1.0, context_ratio: int = 4, min_context: int = 32,
                 max_context: int = 128) -> None:
        super().__init__()
        if spec.stride not in (1, 2):
            raise ValueError(f"illegal stride {spec.stride}")
        h = context_dim(spec.expanded, width_mult, context_ratio, min_context, max_context)
        self.context_dim = h
        self.expand = spec.expanded != spec.in_ch
        if self.expand:
            self.exp_conv = DynamicConv(spec.in_ch, spec.expanded, h, 1, k=dyconv_k,
                                        temperature=temperature)
            self.exp_norm = _bn(spec.expanded)
            self.exp_act = nn.Hardswish() if spec.hardswish else nn.ReLU()
        self.depth_conv = DynamicConv(spec.expanded, spec.expanded, h, spec.kernel, spec.stride,
                                      groups=spec.expanded, k=dyconv_k, temperature=temperature)
        self.depth_norm = _bn(spec.expanded)
        self.depth_act = DyReLUB(spec.expanded, h, m=dyrelu_m)
        self.proj_conv = DynamicConv(spec.expanded, spec.out_ch, h, 1, k=dyconv_k,
                                     temperature=temperature)
        self.proj_norm = _bn(spec.out_ch)
        self.context_gen = ContextGen(h, spec.in_ch, spec.expanded, spec.stride)
        self.use_residual = spec.stride == 1 and spec.in_ch == spec.out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, C_in, F, T]`` to ``[B, C_out, F / s, T / s]``."""
        h, g_f, g_t = self.context_gen(x)
        y = x
        if self.expand:
            y = self.exp_act(self.exp_norm(self.exp_conv(y, h)))
        y = self.depth_act(self.depth_norm(self.depth_conv(y, h)), h)
        y = y * torch.sigmoid(g_f) * torch.sigmoid(g_t)
        y = self.proj_norm(self.proj_conv(y, h))
        return x + y if self.use_residual else y


class DyMN(nn.Module):
    """EfficientAT Dynamic MobileNet with the ``mlp`` head.

    Args:
        width_mult: channel width multiplier (0.4 dymn04, 1.0 dymn10, 2.0 dymn20).
        num_classes: output classes (527 for AudioSet).
        strides: the four configurable down-sampling strides of the MobileNetV3 table.
        dropout: dropout probability in the classifier head.
        temperature: softmax temperature of the dynamic convs' kernel attention (1.0 for
            AudioSet checkpoints, 30 for ImageNet-pretrained ones).
        dyconv_k: number of kernels per dynamic conv; dyrelu_m: linear pieces of Dy-ReLU.
    """

    def __init__(self, width_mult: float = 1.0, num_classes: int = 527,
                 strides: Sequence[int] = (2, 2, 2, 2), dropout: float = 0.2,
                 temperature: float = 1.0, dyconv_k: int = 4, dyrelu_m: int = 2) -> None:
        super().__init__()
        self.width_mult = float(width_mult)
        self.num_classes = int(num_classes)
        specs = block_specs(width_mult, strides)
        # registration order reproduces the official state_dict key order
        self.layers = nn.ModuleList([
            DyBlock(s, width_mult, dyconv_k, dyrelu_m, temperature) for s in specs])
        self.in_c = ConvBNAct(1, specs[0].in_ch, 3, stride=2, activation=nn.Hardswish)
        last_ch = 6 * specs[-1].out_ch
        self.out_c = ConvBNAct(specs[-1].out_ch, last_ch, 1, activation=nn.Hardswish)
        self.embed_dim = last_ch
        hidden = make_divisible(1280 * width_mult)
        self.classifier = mlp_head(last_ch, hidden, num_classes, dropout)
        init_mobilenet_weights(self)
        for conv in self.dynamic_convs():
            conv.reset_parameters()

    def dynamic_convs(self) -> List[DynamicConv]:
        """All dynamic convolutions of the network."""
        return [m for m in self.modules() if isinstance(m, DynamicConv)]

    @property
    def temperature(self) -> float:
        """Kernel-attention softmax temperature shared by all dynamic convs."""
        convs = self.dynamic_convs()
        return convs[0].temperature if convs else 1.0

    @temperature.setter
    def temperature(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f"temperature must be positive, got {value}")
        for m in self.dynamic_convs():
            m.temperature = float(value)

    def features_map(self, mel: torch.Tensor) -> torch.Tensor:
        """Feature map ``[B, 6 * C_last, F / 32, T / 32]`` after ``out_c`` (before pooling)."""
        if mel.dim() == 3:
            mel = mel.unsqueeze(1)
        x = self.in_c(mel)
        for layer in self.layers:
            x = layer(x)
        return self.out_c(x)

    def forward(self, mel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Map ``[B, 1, n_mels, T]`` log-mels to ``(logits [B, classes], embedding [B, C])``."""
        fmap = self.features_map(mel)
        logits = self.classifier(fmap)
        embedding = fmap.mean(dim=(2, 3))
        return logits, embedding

