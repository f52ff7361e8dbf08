"""Input-dependent layers of the EfficientAT Dynamic MobileNet (DyMN).

Schmid, Koutini, Widmer, "Dynamic Convolutional Neural Networks as Efficient Pre-trained
Audio Models" (TASLP 2024). Every dynamic layer of a block is parametrised by one context
vector ``h`` of size H (``context_dim``) that :class:`ContextGen` computes from the block input:

* :class:`DynamicConv` -- K kernels mixed per example by ``softmax(Linear(h) / temperature)``.
* :class:`DyReLUB` -- Dy-ReLU type B: ``max_m(a_m(h) * x + b_m(h))`` with per-channel coefficients.
* :class:`ContextGen` -- pools the input along time and along frequency, transforms both
  sequences jointly, and yields ``h`` plus the frequency / time gates of coordinate attention.

All computations use functional ops (``F.conv2d``, ``torch.bmm``, ``torch.mm``) so that
operator-level counters such as :class:`torch.utils.flop_counter.FlopCounterMode` see them.
Parameter names and layouts follow the official checkpoints (``weight``, ``residuals.0``,
``lambdas``, ``init_v``, ``coef_net.0``, ``joint_conv`` ...).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F

from audiobench.models.efficientat import BN_EPS, BN_MOMENTUM


class DynamicConv(nn.Module):
    """Dynamic 2-D convolution: per-example mixture of ``k`` kernels (no bias).

    ``weight`` has the checkpoint layout ``[1, 1, k, out * in/groups * kernel * kernel]``
    (the ``1, 1`` being batch and attention-group axes); ``residuals.0`` maps the context
    vector to the ``k`` attention logits, which are divided by :attr:`temperature` before
    the softmax. The mixed kernels are applied with one batched matmul (1x1, stride 1,
    ungrouped) or one grouped ``F.conv2d`` over the batch (all other cases).
    """

    def __init__(self, in_ch: int, out_ch: int, context_dim: int, kernel: int = 1,
                 stride: int = 1, groups: int = 1, k: int = 4, temperature: float = 1.0) -> None:
        super().__init__()
        if in_ch % groups:
            raise ValueError(f"in_ch={in_ch} not divisible by groups={groups}")
        self.in_ch, self.out_ch, self.kernel = in_ch, out_ch, kernel
        self.stride, self.groups, self.k = stride, groups, k
        self.padding = (kernel - 1) // 2
        self.temperature = float(temperature)
        self.residuals = nn.Sequential(nn.Linear(context_dim, k))
        n = out_ch * (in_ch // groups) * kernel * kernel
        self.weight = nn.Parameter(torch.empty(1, 1, k, n))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out) initialisation of each of the ``k`` kernels."""
        std = math.sqrt(2.0 / (self.out_ch * self.kernel * self.kernel))
        nn.init.normal_(self.weight, 0.0, std)

    def attention(self, context: torch.Tensor) -> torch.Tensor:
        """Kernel attention ``[B, k]`` for context vectors ``[B, H]``."""
        return F.softmax(self.residuals(context) / self.temperature, dim=-1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` ``[B, C, F, T]`` with kernels mixed from ``context`` ``[B, H]``."""
        b, c, f, t = x.shape
        att = self.attention(context)
        mixed = torch.mm(att, self.weight.view(self.k, -1))  # [B, out * in/g * kk]
        if self.kernel == 1 and self.stride == 1 and self.groups == 1:
            w = mixed.view(b, self.out_ch, self.in_ch)
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                # [B, F*T, C] @ [B, C, out] keeps the channels-last layout without copies
                xt = x.permute(0, 2, 3, 1).reshape(b, f * t, c)
                y = torch.bmm(xt, w.transpose(1, 2))
                return y.view(b, f, t, self.out_ch).permute(0, 3, 1, 2)
            y = torch.bmm(w, x.reshape(b, c, f * t))
            return y.view(b, self.out_ch, f, t)
        w = mixed.view(b * self.out_ch, self.in_ch // self.groups, self.kernel, self.kernel)
        y = F.conv2d(x.reshape(1, b * c, f, t), w, None, self.stride, self.padding,
                     groups=self.groups * b)
        return y.view(b, self.out_ch, y.shape[-2], y.shape[-1])

    def extra_repr(self) -> str:
        return (f"{self.in_ch}, {self.out_ch}, kernel={self.kernel}, stride={self.stride}, "
                f"groups={self.groups}, k={self.k}, temperature={self.temperature}")


class DyReLUB(nn.Module):
    """Dy-ReLU type B (channel-wise): ``y = max_m(a_m * x + b_m)`` with ``m = 1..M``.

    ``coef_net.0`` predicts ``2M`` numbers per channel; after ``2 * sigmoid - 1`` they are scaled
    by the ``lambdas`` buffer (1 for slopes, 0.5 for intercepts) and offset by ``init_v``
    (slope 1 for the first mapping, 0 otherwise), so an untrained layer starts as a ReLU.
    """

    def __init__(self, channels: int, context_dim: int, m: int = 2) -> None:
        super().__init__()
        self.channels, self.m = channels, m
        self.coef_net = nn.Sequential(nn.Linear(context_dim, 2 * m * channels))
        self.register_buffer("lambdas", torch.tensor([1.0] * m + [0.5] * m))
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (2 * m - 1)))

    def coefficients(self, context: torch.Tensor) -> torch.Tensor:
        """Slopes and intercepts ``[B, C, 2M]`` (first ``M`` slopes, last ``M`` intercepts)."""
        theta = 2.0 * torch.sigmoid(self.coef_net(context)) - 1.0
        return theta.view(-1, self.channels, 2 * self.m) * self.lambdas + self.init_v

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Apply the context-dependent piecewise-linear activation to ``x`` ``[B, C, F, T]``."""
        coef = self.coefficients(context)[:, :, None, None, :]  # [B, C, 1, 1, 2M]
        out = x * coef[..., 0] + coef[..., self.m]
        for i in range(1, self.m):
            out = torch.maximum(out, x * coef[..., i] + coef[..., self.m + i])
        return out


class ContextGen(nn.Module):
    """Context generator shared by all dynamic layers of a block.

    The block input is averaged over time (a frequency sequence ``[B, C, F]``) and over
    frequency (a time sequence ``[B, C, T]``); both sequences go through one shared 1x1
    conv + BN + Hardswish (``joint_*``). Their positions averaged together give the context
    vector ``h`` ``[B, H]``; ``conv_f`` / ``conv_t`` turn the sequences (average-pooled with
    kernel 3 to the block's stride) into coordinate-attention logits for the expanded channels.
    """

    def __init__(self, context_dim: int, in_ch: int, exp_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.joint_conv = nn.Conv2d(in_ch, context_dim, 1, bias=False)
        self.joint_norm = nn.BatchNorm2d(context_dim, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.joint_act = nn.Hardswish()
        self.conv_f = nn.Conv2d(context_dim, exp_ch, 1)
        self.conv_t = nn.Conv2d(context_dim, exp_ch, 1)

    def _pool(self, seq: torch.Tensor) -> torch.Tensor:
        # sequence laid out along dim 2 as [B, H, L, 1]; zero padding counts in the average
        if self.stride == 1:
            return seq
        return F.avg_pool2d(seq, (3, 1), (self.stride, 1), (1, 0))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(h [B, H], g_f [B, E, F', 1], g_t [B, E, 1, T'])`` for ``x`` ``[B, C, F, T]``."""
        f = x.shape[2]
        seq_f = x.mean(dim=3, keepdim=True)                      # [B, C, F, 1]
        seq_t = x.mean(dim=2, keepdim=True).transpose(2, 3)      # [B, C, T, 1]
        joint = torch.cat([seq_f, seq_t], dim=2)
        joint = self.joint_act(self.joint_norm(self.joint_conv(joint)))
        h = joint.mean(dim=(2, 3))
        h_f, h_t = joint[:, :, :f], joint[:, :, f:]
        g_f = self.conv_f(self._pool(h_f))
        g_t = self.conv_t(self._pool(h_t)).transpose(2, 3)
        return h, g_f, g_t
