"""The fixed timestamp grid of frame embeddings (``AudioModel.embed_frames``), without torch.

Frame ``t`` is centred on sample ``t * hop``, and a clip of ``N`` samples has ``T = 1 + N // hop`` frames;
the hop (and so ``T``) depends only on the sample rate and the hop in ms, so a run that reads cached frames
can check and place them without building the model. ``AudioModel.frame_geometry`` computes the same (a test
checks it for every catalog model); it keeps its own lines because editing ``models/base.py`` changes the code
version of every model and so invalidates every cached embedding.
"""

from __future__ import annotations

HOP_MS = 50.0  # the fixed timestamp hop of every model's embed_frames
WINDOW_MS = 160.0  # window centred on each timestamp (EfficientAT_HEAR / hear21passt convention)


def hop_samples(sample_rate: int, hop_ms: float = HOP_MS) -> int:
    """The hop in whole samples (at least one)."""
    return max(int(round(hop_ms * sample_rate / 1000.0)), 1)


def frame_count(sample_rate: int, num_samples: int, hop_ms: float = HOP_MS) -> int:
    """Frames of a clip of ``num_samples``."""
    return 1 + num_samples // hop_samples(sample_rate, hop_ms)


def real_hop_ms(sample_rate: int, hop_ms: float = HOP_MS) -> float:
    """The hop in ms that frames really have (the hop in whole samples)."""
    return 1000.0 * hop_samples(sample_rate, hop_ms) / sample_rate
