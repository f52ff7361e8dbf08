"""PaSST: Patchout faSt Spectrogram Transformer (Koutini et al., Interspeech 2022).

A ViT over overlapping 16x16 spectrogram patches with *separate* frequency and time positional
embeddings, cls + distillation tokens (DeiT) and Patchout (dropping whole time columns / frequency
rows of the patch grid, or random patches) during training only.

Module and parameter names follow the official checkpoint layout (``patch_embed.proj``,
``freq_new_pos_embed``, ``time_new_pos_embed``, ``new_pos_embed``, ``blocks.N.attn.qkv``, ``norm``,
``head.0`` (LayerNorm), ``head.1`` (Linear), ``head_dist``) so released state dicts load with
``strict=True``. Details that matter numerically (checked against the hear21passt fixture):

* positional embeddings are added to the patch grid *before* flattening and before patchout; the
  cls / dist tokens get their own ``new_pos_embed`` and are prepended after patchout;
* block and final LayerNorms use eps 1e-6, the head LayerNorm the PyTorch default 1e-5;
* exact (erf) GELU, qkv with bias, pre-norm residual blocks;
* the time embedding is cut to the input length (first columns in eval, a random window in
  training); a longer input is cut to the length of the time embedding;
* ``features = (cls + dist) / 2`` after the final norm, ``logits = head(features)``; ``head_dist``
  exists in the checkpoints but is unused at inference.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from audiobench.models.passt_releases import PASST_RELEASES, PaSSTRelease

__all__ = ["PaSSTConfig", "PaSST", "PaSSTRelease", "PASST_RELEASES", "passt_from_release", "token_grid"]


@dataclass(frozen=True)
class PaSSTConfig:
    """Hyper-parameters of a PaSST network (defaults = PaSST-S, ``passt_s_swa_p16_128_ap476``)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    stride: Tuple[int, int] = (10, 10)  # (frequency, time) patch stride
    input_fdim: int = 128
    input_tdim: int = 998  # number of frames the time positional embedding is built for
    in_chans: int = 1
    num_classes: int = 527
    qkv_bias: bool = True
    distilled: bool = True  # cls + distillation token (all released AudioSet models)
    layer_norm_eps: float = 1e-6  # blocks and final norm
    head_norm_eps: float = 1e-5  # LayerNorm of the classification head
    s_patchout_t: int = 0  # structured patchout: time columns dropped in training
    s_patchout_f: int = 0  # structured patchout: frequency rows dropped in training
    u_patchout: int = 0  # unstructured patchout: patches dropped in training
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    # F.scaled_dot_product_attention instead of explicit matmuls (faster; audiobench.complexity counts
    # the CPU fused kernel too, so MAC counts are the same either way)
    use_sdpa: bool = False

    @property
    def grid_size(self) -> Tuple[int, int]:
        """(F', T') of the positional embeddings: input size // stride, as in the official code."""
        return self.input_fdim // self.stride[0], self.input_tdim // self.stride[1]

    @property
    def num_tokens(self) -> int:
        """Number of prepended tokens (2 with distillation token, else 1)."""
        return 2 if self.distilled else 1


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float,
                 use_sdpa: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.use_sdpa = use_sdpa
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.use_sdpa:
            p = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            attn = self.attn_drop((q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1))
            out = attn @ v
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class Mlp(nn.Module):
    """Two-layer feed-forward network with exact GELU."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block (attention + MLP, each with a residual), optional drop path."""

    def __init__(self, cfg: PaSSTConfig, drop_path: float) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.attn = Attention(d, cfg.num_heads, cfg.qkv_bias, cfg.attn_drop_rate, cfg.drop_rate, cfg.use_sdpa)
        self.norm2 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio), cfg.drop_rate)
        self.drop_path = drop_path

    def _dp(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._dp(self.attn(self.norm1(x)))
        return x + self._dp(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: one Conv2d, output kept as a grid ``[B, D, F', T']``."""

    def __init__(self, cfg: PaSSTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PaSST(nn.Module):
    """PaSST network: ``forward(mel [B,1,F,T]) -> (logits [B,C], embedding [B,D])``.

    The embedding is the mean of the final (normalised) cls and distillation tokens (the cls token
    alone when ``distilled=False``); logits are raw AudioSet scores (apply a sigmoid).
    """

    def __init__(self, config: Optional[PaSSTConfig] = None, **overrides: object) -> None:
        super().__init__()
        cfg = config or PaSSTConfig()
        if overrides:
            cfg = replace(cfg, **overrides)
        self.config = cfg
        d, (gf, gt) = cfg.embed_dim, cfg.grid_size
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d)) if cfg.distilled else None
        self.new_pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, d))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, d, gf, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, d, 1, gt))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.Sequential(*[Block(cfg, r) for r in rates])
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.head = nn.Sequential(nn.LayerNorm(d, eps=cfg.head_norm_eps), nn.Linear(d, cfg.num_classes))
        self.head_dist = nn.Linear(d, cfg.num_classes) if cfg.distilled else None
        self.reset_parameters()

    @property
    def embedding_dim(self) -> int:
        """Dimension of the pooled embedding."""
        return self.config.embed_dim

    def reset_parameters(self) -> None:
        """ViT/DeiT initialisation: truncated normal (std .02) for tokens, embeddings and linears."""
        for p in (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed,
                  self.time_new_pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02, a=-2.0, b=2.0)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _embed_patches(self, mel: torch.Tensor) -> torch.Tensor:
        """Patch grid ``[B, D, F', T']`` with frequency/time positional embeddings added."""
        x = self.patch_embed(mel)
        if x.shape[2] != self.freq_new_pos_embed.shape[2]:
            raise ValueError(f"input gives {x.shape[2]} frequency patches, the model was built for "
                             f"{self.freq_new_pos_embed.shape[2]} (input_fdim={self.config.input_fdim})")
        t_emb = self.time_new_pos_embed
        t, t_max = x.shape[-1], t_emb.shape[-1]
        if t < t_max:
            offset = int(torch.randint(t_max - t + 1, (1,)).item()) if self.training else 0
            t_emb = t_emb[..., offset:offset + t]
        elif t > t_max:
            warnings.warn(f"{t} time patches exceed the time positional embedding ({t_max}); input is cut")
            x = x[..., :t_max]
        return x + t_emb + self.freq_new_pos_embed

    def _structured_patchout(self, x: torch.Tensor) -> torch.Tensor:
        """Drop ``s_patchout_t`` random time columns and ``s_patchout_f`` frequency rows (training only)."""
        cfg = self.config
        if self.training and cfg.s_patchout_t:
            n = x.shape[3]
            keep = torch.randperm(n)[: max(n - cfg.s_patchout_t, 1)].sort().values.to(x.device)
            x = x[:, :, :, keep]
        if self.training and cfg.s_patchout_f:
            n = x.shape[2]
            keep = torch.randperm(n)[: max(n - cfg.s_patchout_f, 1)].sort().values.to(x.device)
            x = x[:, :, keep, :]
        return x

    def _encode(self, mel: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Final normalised sequence ``[B, num_tokens + N, D]`` and the (F', T') patch grid (pre-u-patchout)."""
        x = self._structured_patchout(self._embed_patches(mel))
        b, _, gf, gt = x.shape
        x = x.flatten(2).transpose(1, 2)
        if self.training and self.config.u_patchout:
            n = x.shape[1]
            keep = torch.randperm(n)[: max(n - self.config.u_patchout, 1)].sort().values.to(x.device)
            x = x[:, keep, :]
        tokens = [self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:2])
        x = self.pos_drop(torch.cat(tokens + [x], dim=1))
        return self.norm(self.blocks(x)), (gf, gt)

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``[B, D]``: mean of the final cls and dist tokens."""
        x, _ = self._encode(mel)
        return x[:, : self.config.num_tokens].mean(dim=1) if self.dist_token is not None else x[:, 0]

    def forward_tokens(self, mel: torch.Tensor) -> torch.Tensor:
        """Final (normalised) patch tokens as a grid ``[B, F', T', D]`` for frame-level use.

        F' = frequency patches (12 for 128 mels at stride 10), T' = time patches (99 for 998/1000
        frames at stride 10, i.e. one token every ``stride[1]`` frames covering ``patch_size`` frames).
        In training, structured patchout shrinks F'/T'; unstructured patchout destroys the grid and
        is refused here.
        """
        if self.training and self.config.u_patchout:
            raise RuntimeError("forward_tokens needs a patch grid; disable u_patchout or use eval mode")
        x, (gf, gt) = self._encode(mel)
        return x[:, self.config.num_tokens:].reshape(x.shape[0], gf, gt, x.shape[-1])

    def forward(self, mel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``mel [B, 1, F, T]`` -> ``(logits [B, num_classes], embedding [B, embed_dim])``."""
        features = self.forward_features(mel)
        return self.head(features), features


def passt_from_release(name: str = "passt-s", **overrides: object) -> PaSST:
    """Randomly initialised PaSST with the architecture of a released checkpoint (no weights loaded)."""
    rel = PASST_RELEASES[name]
    cfg = PaSSTConfig(stride=(rel.stride, rel.stride), input_tdim=rel.input_tdim, depth=rel.depth)
    return PaSST(cfg, **overrides)


def token_grid(cfg: PaSSTConfig, frames: int) -> Tuple[int, int]:
    """(F', T') of ``forward_tokens`` in eval mode for ``frames`` input frames (T' capped at the embedding)."""
    f = (cfg.input_fdim - cfg.patch_size) // cfg.stride[0] + 1
    t = (frames - cfg.patch_size) // cfg.stride[1] + 1
    return f, max(0, min(t, cfg.grid_size[1]))

