"""CPU forward passes in cache-sized chunks: the chunk rule, and outputs equal whatever the chunking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audiobench.datasets.base import Clip
from audiobench.forward_chunks import (CPU_FORWARD_SAMPLES_ENV, DEFAULT_CPU_FORWARD_SAMPLES, forward_chunk,
                                       forward_in_chunks)
from generated_audio import noise_clips


def test_chunk_rule() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert forward_chunk(cpu, 32, 160_000) == DEFAULT_CPU_FORWARD_SAMPLES // 160_000 == 4  # 5 s at 32 kHz
    assert forward_chunk(cpu, 32, 320_000) == 2  # 10 s
    assert forward_chunk(cpu, 32, 32_000) == 24  # 1 s
    assert forward_chunk(cpu, 8, 1_000) == 8  # never more than the batch
    assert forward_chunk(cpu, 32, 10_000_000) == 1  # a long clip: one at a time
    assert forward_chunk(cpu, 32, None) == 32  # unknown length: the loader's batch
    assert forward_chunk(cuda, 32, 160_000) == 32  # accelerators take the whole batch


def test_budget_can_be_overridden(monkeypatch) -> None:
    monkeypatch.setenv(CPU_FORWARD_SAMPLES_ENV, "320000")
    assert forward_chunk(torch.device("cpu"), 32, 160_000) == 2


def test_forward_in_chunks_concatenates_in_order() -> None:
    inputs = torch.arange(10.0)[:, None]
    calls: list[int] = []

    def forward(part: torch.Tensor) -> torch.Tensor:
        calls.append(len(part))
        return part * 2

    assert torch.equal(forward_in_chunks(forward, inputs, 4), inputs * 2)
    assert calls == [4, 4, 2]


@pytest.fixture
def clips(tmp_path: Path) -> list[Clip]:
    return noise_clips(tmp_path, 6, seed=1)


@pytest.mark.parametrize("name", ["mn01", "dymn04"])
def test_embeddings_do_not_depend_on_the_chunking(name: str, clips, monkeypatch) -> None:
    from audiobench import load_model
    from audiobench.embeddings import extract_embeddings

    model = load_model(name)
    monkeypatch.setenv(CPU_FORWARD_SAMPLES_ENV, str(10 ** 9))
    whole, _ = extract_embeddings(model, clips, 1.0, None, batch_size=6, num_workers=0, use_audio_cache=False)
    monkeypatch.setenv(CPU_FORWARD_SAMPLES_ENV, "64000")  # two clips per forward pass
    chunked, _ = extract_embeddings(model, clips, 1.0, None, batch_size=6, num_workers=0, use_audio_cache=False)
    np.testing.assert_allclose(whole, chunked, rtol=1e-6, atol=1e-9)  # a batch's size may change the rounding


def test_frames_do_not_depend_on_the_chunking(clips, monkeypatch) -> None:
    from audiobench import load_model
    from audiobench.events.frames import extract_frames

    model = load_model("mn01")
    monkeypatch.setenv(CPU_FORWARD_SAMPLES_ENV, str(10 ** 9))
    whole, _ = extract_frames(model, clips, 1.0, None, batch_size=6, num_workers=0)
    monkeypatch.setenv(CPU_FORWARD_SAMPLES_ENV, "32000")
    chunked, _ = extract_frames(model, clips, 1.0, None, batch_size=6, num_workers=0)
    for a, b in zip(whole.frames, chunked.frames):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
