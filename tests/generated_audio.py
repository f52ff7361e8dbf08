"""Small generated audio for tests: noise clips written as 16-bit WAV files, as dataset ``Clip`` s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from audiobench.datasets.base import Clip


def noise_clips(directory: Path, count: int, sample_rate: int = 32000, seconds: float = 1.0, seed: int = 0,
                prefix: str = "c") -> list[Clip]:
    """``count`` clips of white noise (std 0.1), ``<prefix><i>.wav`` in ``directory``, all labelled 0."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(count):
        path = Path(directory) / f"{prefix}{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(sample_rate * seconds))).astype(np.float32), sample_rate,
                 subtype="PCM_16")
        clips.append(Clip(clip_id=path.name, path=path, label=0))
    return clips
