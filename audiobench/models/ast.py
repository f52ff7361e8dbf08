"""AST (Audio Spectrogram Transformer, Gong et al. 2021) on the Hugging Face ``transformers`` implementation.

Network: ``ASTForAudioClassification`` built from an ``ASTConfig`` (no network access). Front-end: the Kaldi
fbank AST was trained with (torchaudio's ``kaldi.fbank``, Hann window, 128 bands, no dither), in plain torch.

Checkpoint layout: ``network.state_dict()`` always uses the keys of the Hugging Face checkpoint files
(``...encoder.layer.N.attention.attention.query.weight``), which is also what ``save_pretrained``
writes. transformers >= 5 names the modules differently in memory (``...layers.N.attention.q_proj``);
state-dict hooks translate, so the generic strict loader (:func:`audiobench.models.checkpoints.load_weights`)
reads the released ``model.safetensors`` or a ``save_pretrained`` directory with both.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch
from torch import nn

from audiobench.frontends import autocast_disabled, kaldi_mel_banks
from audiobench.models.base import AudioModel, as_waveforms, frames_on_grid
from audiobench.models.cards import ModelCard

try:
    from transformers import ASTConfig, ASTForAudioClassification
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("The AST model needs the optional dependency 'transformers': "
                      "pip install 'audiobench[ast]'") from error

CONFIG_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                 "frequency_stride", "time_stride", "max_length", "num_mel_bins", "layer_norm_eps", "qkv_bias")


@dataclass(frozen=True)
class KaldiFbankConfig:
    """Kaldi fbank as AST uses it, plus AST's AudioSet normalisation and fixed input length."""

    sample_rate: int = 16000
    frame_length: int = 400  # 25 ms
    frame_shift: int = 160  # 10 ms
    n_fft: int = 512  # frame length rounded up to a power of two
    n_mels: int = 128
    fmin: float = 20.0
    fmax: float = 0.0  # <= 0: relative to Nyquist (Kaldi high_freq)
    preemphasis: float = 0.97
    norm_mean: float = -4.2677393
    norm_std: float = 4.5689974  # features are (fbank - mean) / (2 * std)
    max_frames: int = 1024

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KaldiFbank(nn.Module):
    """``[B, N]`` waveform -> normalised ``[B, max_frames, n_mels]`` AST input (and the real frame count).

    Per frame (snip_edges, no dither): remove the DC offset, pre-emphasis (first sample against itself),
    symmetric Hann window, zero-pad to ``n_fft``, power spectrum, Kaldi mel banks, log floored at float32
    eps. Clips shorter than one frame are zero-padded to one frame.
    """

    window: torch.Tensor
    mel_banks: torch.Tensor

    def __init__(self, config: KaldiFbankConfig = KaldiFbankConfig()) -> None:
        super().__init__()
        self.config = config
        banks = kaldi_mel_banks(config.n_mels, config.n_fft, config.sample_rate, config.fmin, config.fmax)
        self.register_buffer("window", torch.hann_window(config.frame_length, periodic=False), persistent=False)
        self.register_buffer("mel_banks", banks, persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames Kaldi computes for ``num_samples`` (snip_edges=True), before padding or cutting."""
        cfg = self.config
        return 1 + (max(num_samples, cfg.frame_length) - cfg.frame_length) // cfg.frame_shift

    def fbank(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log mel filterbank energies ``[B, T, n_mels]`` (not normalised, not padded)."""
        cfg = self.config
        x = waveforms.float()
        if x.shape[-1] < cfg.frame_length:
            x = nn.functional.pad(x, (0, cfg.frame_length - x.shape[-1]))
        frames = x.unfold(-1, cfg.frame_length, cfg.frame_shift)  # [B, T, frame_length]
        frames = frames - frames.mean(dim=-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - cfg.preemphasis * previous) * self.window
        spectrum = torch.fft.rfft(frames, n=cfg.n_fft)
        power = spectrum.real.square() + spectrum.imag.square()
        mel = torch.matmul(power, self.mel_banks.T)
        return mel.clamp_min(torch.finfo(torch.float32).eps).log()

    def forward(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, int]:
        waveforms = waveforms.unsqueeze(0) if waveforms.dim() == 1 else waveforms
        with autocast_disabled(waveforms.device.type):
            fbank = self.fbank(waveforms)
        cfg = self.config
        frames = min(fbank.shape[1], cfg.max_frames)
        fbank = nn.functional.pad(fbank[:, :cfg.max_frames], (0, 0, 0, cfg.max_frames - frames))
        return (fbank - cfg.norm_mean) / (2.0 * cfg.norm_std), frames


# Checkpoint layout. Per-layer module names: Hugging Face checkpoint files (and transformers < 5) -> transformers >= 5.
HUB_TO_V5 = {"attention.attention.query": "attention.q_proj", "attention.attention.key": "attention.k_proj",
             "attention.attention.value": "attention.v_proj", "attention.output.dense": "attention.o_proj",
             "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
             "layernorm_before": "layernorm_before", "layernorm_after": "layernorm_after"}
V5_TO_HUB = {v: k for k, v in HUB_TO_V5.items()}
_HUB_KEY = re.compile(r"^(?P<pre>(?:.*\.)?)encoder\.layer\.(?P<i>\d+)\.(?P<name>.+)\.(?P<param>weight|bias)$")
_V5_KEY = re.compile(r"^(?P<pre>(?:.*\.)?)layers\.(?P<i>\d+)\.(?P<name>.+)\.(?P<param>weight|bias)$")


def _rename(key: str, pattern: re.Pattern[str], table: Mapping[str, str], layer_path: str) -> str:
    match = pattern.match(key)
    return key if match is None or match["name"] not in table else \
        f"{match['pre']}{layer_path}.{match['i']}.{table[match['name']]}.{match['param']}"


def to_hub_key(key: str) -> str:
    """A transformers >= 5 key in the checkpoint-file layout (other keys unchanged)."""
    return _rename(key, _V5_KEY, V5_TO_HUB, "encoder.layer")


def to_v5_key(key: str) -> str:
    """A checkpoint-file key in the transformers >= 5 layout (other keys unchanged)."""
    return _rename(key, _HUB_KEY, HUB_TO_V5, "layers")


def _rename_in_place(state_dict: dict[str, Any], prefix: str, rename) -> None:
    items = [((prefix + rename(k[len(prefix):])) if k.startswith(prefix) else k, v) for k, v in state_dict.items()]
    state_dict.clear()
    state_dict.update(items)


def use_checkpoint_layout(network: nn.Module) -> nn.Module:
    """Make ``network.state_dict()`` / ``load_state_dict`` use the checkpoint-file keys (no-op before v5)."""
    if any(".encoder.layer." in name for name, _ in network.named_parameters()):
        return network  # transformers < 5: modules already carry the checkpoint names
    network.register_state_dict_post_hook(
        lambda module, state_dict, prefix, local_metadata: _rename_in_place(state_dict, prefix, to_hub_key))
    network.register_load_state_dict_pre_hook(
        lambda module, state_dict, prefix, *args: _rename_in_place(state_dict, prefix, to_v5_key))
    return network


class ASTModel(AudioModel):
    """Waveform (16 kHz) -> Kaldi fbank -> AST. Embedding: the pooled output (mean of cls and distillation tokens)."""

    def __init__(self, card: ModelCard, network: ASTForAudioClassification) -> None:
        super().__init__(card, network)
        cfg = network.config
        self.frontend = KaldiFbank(KaldiFbankConfig(sample_rate=card.sample_rate, n_mels=cfg.num_mel_bins,
                                                    max_frames=cfg.max_length))
        self.grid = ((cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1,
                     (cfg.max_length - cfg.patch_size) // cfg.time_stride + 1)

    def features(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Network input ``[B, max_length, num_mel_bins]`` and the number of frames that hold audio."""
        return self.frontend(waveforms)

    def network_input(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.features(waveforms)[0]

    def _encode(self, waveforms: torch.Tensor) -> tuple[Any, int]:
        features, frames = self.features(waveforms)
        return self.network.audio_spectrogram_transformer(input_values=features), frames

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        waveforms = as_waveforms(waveforms, self.device)
        return self._encode(waveforms)[0].pooler_output

    def logits(self, waveforms: torch.Tensor) -> torch.Tensor:
        waveforms = as_waveforms(waveforms, self.device)
        return self.network.classifier(self.embed(waveforms))

    def embed_frames(self, waveforms: torch.Tensor, window_ms: float = 160.0,
                     hop_ms: float = 50.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame embeddings ``[B, T, D]`` at the fixed timestamps ``t * hop_ms`` (``T = 1 + N // hop``).

        AST's native frames are its patch columns (patch tokens averaged over frequency), one every
        ``time_stride`` mel frames (100 ms), centred at ``(column * stride + (patch - 1) / 2)`` frames; only
        columns that start inside the audio are used. They are linearly interpolated onto the common
        timestamp grid of :meth:`AudioModel.embed_frames` (the base class's windowing would cost one pass
        over the 1024-frame padded input per window). ``window_ms`` does not apply: a patch spans 16 frames.
        """
        waveforms = as_waveforms(waveforms, self.device)
        output, frames = self._encode(waveforms)
        f_dim, t_dim = self.grid
        tokens = output.last_hidden_state[:, 2:]
        tokens = tokens.reshape(tokens.shape[0], f_dim, t_dim, tokens.shape[-1]).mean(dim=1)
        cfg, fb = self.network.config, self.frontend.config
        keep = max(1, min(t_dim, math.ceil(frames / cfg.time_stride)))
        centre_frame = torch.arange(keep, dtype=torch.float64) * cfg.time_stride + (cfg.patch_size - 1) / 2.0
        native_ms = (centre_frame * fb.frame_shift + fb.frame_length / 2.0) * 1000.0 / fb.sample_rate
        _, hop, count = self.frame_geometry(waveforms.shape[-1], window_ms, hop_ms)
        timestamps = torch.arange(count, dtype=torch.float64) * (1000.0 * hop / self.sample_rate)
        return frames_on_grid(tokens[:, :keep], native_ms.to(tokens.device), timestamps.to(tokens.device)), timestamps

def ast_config(card: ModelCard) -> ASTConfig:
    """``ASTConfig`` of the card (fields of ``card.config``; head size from ``card.num_classes``)."""
    fields = {k: v for k, v in card.config.items() if k in CONFIG_FIELDS}
    return ASTConfig(**fields, num_labels=card.num_classes or 527)


def build_ast(card: ModelCard) -> ASTModel:
    """AST of the card's configuration with random weights (load the checkpoint with ``load_model``)."""
    network = use_checkpoint_layout(ASTForAudioClassification(ast_config(card)))
    return ASTModel(card, network)
