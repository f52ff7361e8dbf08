"""Embedding extraction gives the same numbers whether the input stage runs in workers or in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiobench import load_model
from audiobench.datasets.base import Clip
from audiobench.embeddings import extract_embeddings
from generated_audio import noise_clips


@pytest.fixture
def clips(tmp_path: Path) -> list[Clip]:
    return noise_clips(tmp_path, 5, sample_rate=44100, seconds=2.0, prefix="clip")


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


@pytest.mark.parametrize("name", ["logmel-stats", "mn04"])
def test_frame_timestamps_have_a_fixed_50_ms_hop_for_every_length_and_batch(name: str) -> None:
    import torch

    model = load_model(name).prepare_for_inference()
    hop = model.sample_rate // 20  # 50 ms
    for seconds, batch in [(1.0, 1), (3.7, 2), (5.0, 3), (10.0, 1)]:
        num_samples = int(seconds * model.sample_rate)
        with torch.inference_mode():
            frames, timestamps = model.embed_frames(torch.randn(batch, num_samples) * 0.1)
        count = 1 + num_samples // hop
        assert frames.shape == (batch, count, model.embedding_dim)
        assert timestamps.dtype == torch.float64 and timestamps[0].item() == 0.0  # window 0 centred on sample 0
        assert torch.equal(timestamps, torch.arange(count, dtype=torch.float64) * 50.0)


def test_frames_are_centred_windows_and_the_same_alone_or_in_a_batch() -> None:
    import torch

    model = load_model("mn04").prepare_for_inference()
    model.frame_chunk_windows = 7  # several embed calls per clip, split across clip boundaries
    torch.manual_seed(0)
    clips = torch.randn(2, int(3.7 * model.sample_rate)) * 0.1
    with torch.inference_mode():
        together, stamps = model.embed_frames(clips)
        alone, alone_stamps = model.embed_frames(clips[1:])
        window, hop = int(0.16 * model.sample_rate), model.sample_rate // 20
        padded = torch.nn.functional.pad(clips[1:].unsqueeze(1), (window // 2, window // 2), mode="reflect")[:, 0]
        centred = model.embed(torch.stack([padded[0, t * hop: t * hop + window] for t in (0, 5, 73)]))
    assert torch.equal(stamps, alone_stamps)
    torch.testing.assert_close(together[1], alone[0], rtol=0, atol=1e-6)  # observed: bit-identical on CPU
    torch.testing.assert_close(alone[0, [0, 5, 73]], centred, rtol=0, atol=1e-6)


def test_clips_shorter_than_half_a_window_are_zero_padded() -> None:
    import torch

    model = load_model("logmel-stats")
    short = torch.randn(1, 1000) * 0.1  # 31 ms: too short to reflect 80 ms
    with torch.inference_mode():
        frames, timestamps = model.embed_frames(short)
        window = int(0.16 * model.sample_rate)
        expected = model.embed(torch.nn.functional.pad(short, (window // 2, window // 2))[:, :window])
    assert frames.shape == (1, 1, model.embedding_dim) and timestamps.tolist() == [0.0]
    torch.testing.assert_close(frames[:, 0], expected)


def test_models_declare_the_shortest_window_they_take() -> None:
    import torch

    passt = load_model("passt-s").prepare_for_inference()
    assert passt.min_frame_window_ms == pytest.approx(150.03, abs=0.01)  # one 16-frame patch at hop 10 ms
    assert load_model("cpmobile").min_frame_window_ms == 0.0  # windows are padded to its 1 s segments
    with torch.inference_mode():
        frames, timestamps = passt.embed_frames(torch.randn(1, 9600) * 0.1, window_ms=40.0)  # widened to 150 ms
    assert frames.shape == (1, 7, passt.embedding_dim) and timestamps[-1].item() == 300.0


def test_hear_timestamps_follow_the_fixed_hop() -> None:
    import torch

    from audiobench import hear_api

    model = hear_api.load_model("", model_name="logmel-stats")
    for seconds in (1.0, 2.3):
        audio = torch.randn(3, int(seconds * 32000)) * 0.1
        frames, timestamps = hear_api.get_timestamp_embeddings(audio, model)
        count = 1 + audio.shape[1] // 1600
        assert frames.shape == (3, count, 256) and timestamps.shape == (3, count)
        assert timestamps.dtype == torch.float32
        assert torch.equal(timestamps, (torch.arange(count, dtype=torch.float32) * 50.0).expand(3, -1))


def test_frames_on_grid_interpolates_and_holds_the_edges() -> None:
    import torch

    from audiobench.models.base import frames_on_grid

    frames = torch.tensor([[[0.0], [10.0], [20.0]]])  # at 100, 200, 300 ms
    grid = torch.tensor([0.0, 50.0, 100.0, 150.0, 250.0, 300.0, 400.0])
    out = frames_on_grid(frames, torch.tensor([100.0, 200.0, 300.0]), grid)
    assert out[0, :, 0].tolist() == [0.0, 0.0, 0.0, 5.0, 15.0, 20.0, 20.0]
    single = frames_on_grid(frames[:, :1], torch.tensor([100.0]), grid)
    assert single.shape == (1, 7, 1) and bool((single == 0).all())
