"""Embedding extraction gives the same numbers whether the input stage runs in workers or in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench import load_model
from audiobench.datasets.base import Clip
from audiobench.embeddings import extract_embeddings


@pytest.fixture
def clips(tmp_path: Path) -> list[Clip]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(5):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, (rng.standard_normal(44100 * 2) * 0.1).astype(np.float32), 44100, subtype="PCM_16")
        out.append(Clip(clip_id=path.name, path=path, label=0))
    return out


@pytest.mark.parametrize("name", ["mn04", "cpmobile"])  # cpmobile: 1 s segments averaged
def test_workers_running_the_input_stage_match_in_process(name: str, clips: list[Clip]) -> None:
    model = load_model(name)
    assert model.input_stage() is not None
    in_process, _ = extract_embeddings(model, clips, 2.0, batch_size=2, num_workers=0)
    in_workers, _ = extract_embeddings(model, clips, 2.0, batch_size=2, num_workers=1)
    assert in_process.shape == (5, model.embedding_dim)
    np.testing.assert_allclose(in_workers, in_process, atol=1e-5, rtol=0)


def test_embed_equals_embed_inputs_of_the_stage(clips: list[Clip]) -> None:
    import torch

    model = load_model("cpmobile")
    waveforms = torch.randn(3, 32000 * 2 + 500)  # a trailing partial segment is dropped
    with torch.inference_mode():
        staged = model.input_stage()(waveforms)
        assert staged.shape[:3] == (3, 2, 1)
        torch.testing.assert_close(model.embed(waveforms), model.embed_inputs(staged))


@pytest.mark.parametrize("name", ["mn04", "dymn04", "passt-s", "ast-audioset", "cpmobile", "logmel-stats"])
def test_every_family_gives_frame_embeddings_with_timestamps(name: str) -> None:
    import torch

    if name == "ast-audioset":
        pytest.importorskip("transformers")
    model = load_model(name)
    waveforms = torch.randn(2, model.sample_rate * 3) * 0.1
    with torch.inference_mode():
        frames, timestamps = model.embed_frames(waveforms)
        clip = model.embed(waveforms)
    assert frames.shape[0] == 2 and frames.shape[1] == timestamps.shape[0] > 1
    assert frames.shape[2] == clip.shape[1] == model.embedding_dim
    assert torch.all(timestamps[1:] > timestamps[:-1]) and 0 <= timestamps[0] and timestamps[-1] <= 3000
