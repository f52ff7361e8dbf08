"""CP-Mobile: the CP-JKU low-complexity acoustic scene classifier (DCASE 2023 Task 1).

Reimplementation of the student network of Schmid et al., "CP-JKU submission to
DCASE23: Efficient acoustic scene classification with CP-Mobile" (DCASE 2023
technical report; public code fschmid56/cpjku_dcase23). Module attribute names
follow the released PyTorch-Lightning checkpoint (keys under ``model.``, the
``key_prefix`` on the catalog card) so its tensors load with ``strict=True`` through
:func:`audiobench.models.checkpoints.load_weights`.

Structure (default configuration, 126,952 parameters):

* ``in_c``: two 3x3 stride-2 Conv-BN-ReLU layers, 1 -> 8 -> 32 channels.
* ``stages``: three stages with 3 / 2 / 1 CP-Mobile blocks (``b1`` .. ``b6``), widths
  32 / 72 / 168 (``make_divisible(32 * 2.3 ** s, 8)``). A block is an inverted
  bottleneck (1x1 expand x3 -> 3x3 depthwise with the block's stride -> 1x1 project,
  BN after every conv, ReLU after the first two), plus a residual when the channel
  count is unchanged (3x3 average pooling on the shortcut when strided), followed by
  global response normalisation (GRN, ConvNeXt-V2) and ReLU. Strides: ``b2`` (2, 2),
  ``b4`` (2, 1) (frequency, time).
* ``feed_forward``: 1x1 conv 168 -> 10 (no bias), BN, global average pooling.

Embedding: the classifier is linear (1x1 conv + eval BN + average pooling commute),
so the natural embedding is the 168-d global average of the last stage's feature map;
the logits are an affine function of it.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import torch
from torch import nn

from audiobench.frontends import MelConfig
from audiobench.labels import TAU22_SCENES
from audiobench.models.channels import make_divisible

#: Scene classes in the checkpoint's output order (TAU Urban Acoustic Scenes 2022 Mobile).
CPMOBILE_CLASSES: Tuple[str, ...] = TAU22_SCENES

#: Evaluation-mode front-end (DC23 run_training.py defaults; fmax = 16000 - 1000 // 2).
CPMOBILE_MEL_CONFIG = MelConfig(
    sample_rate=32000, n_fft=4096, win_length=3072, hop_length=500, n_mels=256,
    fmin=0.0, fmax=15500.0, preemphasis=0.97, log_offset=1e-5, norm_shift=4.5, norm_scale=5.0,
)

#: Default per-block strides (frequency, time); blocks not listed use (1, 1).
DEFAULT_STRIDES: Dict[str, Tuple[int, int]] = {"b2": (2, 2), "b4": (2, 1)}


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> optional ReLU; keys ``0``, ``1`` (``2``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: Tuple[int, int] | int = 1,
                 groups: int = 1, relu: bool = True) -> None:
        layers: List[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt-V2) with scalar ``gamma`` / ``beta``.

    ``g = ||x||_2`` over (freq, time) per channel, ``n = g / (mean_c g + 1e-6)``,
    output ``gamma * x * n + beta + x``. Zero-initialised, i.e. identity at start.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.linalg.vector_norm(x, ord=2, dim=(2, 3), keepdim=True)
        n = g / (g.mean(dim=1, keepdim=True) + self.eps)
        return self.gamma * (x * n) + self.beta + x


class CPMobileBlock(nn.Module):
    """Inverted bottleneck with optional (pooled) residual, then GRN and ReLU."""

    def __init__(self, in_ch: int, out_ch: int, expansion_rate: float,
                 stride: Tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        exp_ch = make_divisible(in_ch * expansion_rate, 8)
        # registration order matches the checkpoint's key order (GRN before the convs)
        self.after_block_norm = GRN()
        self.after_block_activation = nn.ReLU()
        self.block = nn.Sequential(
            ConvBNReLU(in_ch, exp_ch, 1),
            ConvBNReLU(exp_ch, exp_ch, 3, stride=stride, groups=exp_ch),
            ConvBNReLU(exp_ch, out_ch, 1, relu=False),
        )
        self.use_shortcut = in_ch == out_ch
        strided = tuple(stride) != (1, 1)
        self.shortcut: nn.Module = (
            nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if strided else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.use_shortcut:
            y = y + self.shortcut(x)
        return self.after_block_activation(self.after_block_norm(y))


class CPMobile(nn.Module):
    """CP-Mobile network: ``forward(mel [B, 1, n_mels, T]) -> (logits [B, C], embedding [B, D])``.

    Args:
        n_classes: number of output classes (10 TAU22 scenes).
        in_channels: input channels (1 for a log-mel).
        base_channels: width after the input convolutions.
        channels_multiplier: width growth factor per stage.
        expansion_rate: inverted-bottleneck expansion.
        n_blocks: blocks per stage.
        strides: per-block (freq, time) strides by block name ``b1``, ``b2``, ...
    """

    def __init__(self, n_classes: int = 10, in_channels: int = 1, base_channels: int = 32,
                 channels_multiplier: float = 2.3, expansion_rate: float = 3.0,
                 n_blocks: Sequence[int] = (3, 2, 1),
                 strides: Mapping[str, Tuple[int, int]] | None = None) -> None:
        super().__init__()
        strides = dict(DEFAULT_STRIDES if strides is None else strides)
        base = make_divisible(base_channels, 8)
        widths = [base] + [make_divisible(base * channels_multiplier ** s, 8)
                           for s in range(len(n_blocks))]
        self.num_classes = int(n_classes)
        self.embed_dim = widths[-1]
        self.in_c = nn.Sequential(
            ConvBNReLU(in_channels, base // 4, 3, stride=2),
            ConvBNReLU(base // 4, base, 3, stride=2),
        )
        self.stages = nn.Sequential()
        block_id = 0
        for s, count in enumerate(n_blocks):
            stage = nn.Sequential()
            in_ch = widths[s]
            for _ in range(count):
                block_id += 1
                name = f"b{block_id}"
                stride = tuple(strides.get(name, (1, 1)))
                stage.add_module(name, CPMobileBlock(in_ch, widths[s + 1], expansion_rate, stride))
                in_ch = widths[s + 1]
            self.stages.add_module(f"s{s + 1}", stage)
        self.feed_forward = nn.Sequential(
            nn.Conv2d(widths[-1], n_classes, kernel_size=1, bias=False),
            nn.BatchNorm2d(n_classes),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features_map(self, mel: torch.Tensor) -> torch.Tensor:
        """Last-stage feature map ``[B, embed_dim, F', T']`` (before the classifier)."""
        if mel.dim() == 3:
            mel = mel.unsqueeze(1)
        return self.stages(self.in_c(mel))

    def forward(self, mel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Map log-mels ``[B, 1, n_mels, T]`` to ``(logits [B, n_classes], embedding [B, 168])``."""
        fmap = self.features_map(mel)
        logits = self.feed_forward(fmap).flatten(1)
        embedding = fmap.mean(dim=(2, 3))
        return logits, embedding

