"""Event-task building blocks: frame targets, frame spans, the median filter, thresholding, the predictions file."""

from __future__ import annotations

import numpy as np
import pytest

from audiobench.events import postprocess
from audiobench.events.predictions import EventPredictions, load_event_predictions
from audiobench.events.targets import frame_bounds, frame_targets, frames_within
from audiobench.errors import AudiobenchError


def test_frame_targets_use_the_frame_centre_within_onset_and_offset():
    stamps = np.arange(8) * 50.0  # centres 0, 50, ..., 350 ms
    targets = frame_targets([(0.05, 0.15, 0), (0.30, 0.40, 1), (0.0, 0.01, 1)], stamps, 2)
    assert targets.dtype == np.float32 and targets.shape == (8, 2)
    assert targets[:, 0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]  # 50 in, 100 in, 150 out (offset excluded)
    assert targets[:, 1].tolist() == [1, 0, 0, 0, 0, 0, 1, 1]  # 0 in [0, 0.01); 300, 350 in [0.3, 0.4)


def test_frames_within_and_bounds_cover_the_clip_contiguously():
    stamps = np.arange(11) * 50.0  # 0.5 s padded clip
    assert frames_within(stamps, 0.32) == 7  # centres 0..300 < 320 ms
    onsets, offsets = frame_bounds(stamps[:7], 50.0, 0.32)
    assert onsets[0] == 0.0 and offsets[-1] == pytest.approx(0.32)
    assert np.array_equal(onsets[1:], offsets[:-1]) and (offsets > onsets).all()


def test_median_filter_removes_short_blips_per_class():
    scores = np.zeros((20, 2))
    scores[5, 0] = 1.0  # one-frame blip: removed by a 5-frame filter
    scores[8:16, 1] = 1.0  # 8-frame event: kept
    filtered = postprocess.median_filter(scores, 5)
    assert filtered[:, 0].max() == 0.0
    assert filtered[8:16, 1].tolist() == [1.0] * 8 and filtered[:8, 1].max() == 0.0
    assert np.array_equal(postprocess.median_filter(scores, 1), scores)
    assert postprocess.filter_frames(450, 50) == 9 and postprocess.filter_frames(10, 50) == 1


def test_thresholding_turns_runs_into_events_and_50_operating_points():
    onsets, offsets = frame_bounds(np.arange(6) * 50.0, 50.0, 0.3)
    scores = np.array([[0.1, 0.9], [0.7, 0.9], [0.7, 0.2], [0.2, 0.2], [0.8, 0.2], [0.5, 0.2]])
    events = postprocess.to_events(scores, 0.5, onsets, offsets)
    assert events == [(0.025, 0.125, 0), (0.175, 0.225, 0), (0.0, 0.075, 1)]  # 0.5 itself is not above 0.5
    assert len(postprocess.PSDS_THRESHOLDS) == 50 and postprocess.PSDS_THRESHOLDS[:2] == (0.01, 0.03)
    assert postprocess.PSDS_THRESHOLDS[-1] == 0.99


def _predictions() -> EventPredictions:
    rng = np.random.default_rng(0)
    stamps = [np.arange(4) * 50.0, np.arange(3) * 50.0]
    return EventPredictions.from_clips(["a", "b"], ["test", "test"], [0.2, 0.15], ["dog", "cat"], stamps,
                                       [rng.random((4, 2)).astype(np.float32), rng.random((3, 2)).astype(np.float32)],
                                       [((0.0, 0.1, 1),), ()])


def test_event_predictions_round_trip(tmp_path):
    predictions = _predictions()
    path = tmp_path / "x.predictions.npz"
    path.write_bytes(predictions.to_bytes())
    again = load_event_predictions(path)
    for name in ("clip_id", "split", "duration", "classes", "frame_offsets", "timestamps_ms", "scores",
                 "events_clip", "events_onset", "events_offset", "events_label"):
        assert np.array_equal(getattr(again, name), getattr(predictions, name)), name
    assert again.clip_events(0) == [(0.0, 0.1, 1)] and again.clip_events(1) == []
    assert again.clip_frames(1)[1].shape == (3, 2)
    with pytest.raises(AudiobenchError, match="sha256"):
        load_event_predictions(path, "0" * 64)


def test_event_predictions_refuse_inconsistent_arrays():
    good = _predictions()
    with pytest.raises(ValueError, match="disagree"):
        EventPredictions(**{**good.__dict__, "frame_offsets": np.array([0, 4, 6])})
    with pytest.raises(ValueError, match="clip or class"):
        EventPredictions(**{**good.__dict__, "events_label": np.array([5])})


def test_frame_cache_refuses_an_entry_that_is_not_whole_frames(tmp_path):
    from audiobench.events.frames import FrameCache

    cache = FrameCache(tmp_path, {"model": "x", "output": "frames"}, shape=None)
    cache.put("ab12", np.ones(12, np.float32))
    assert cache.get_frames("ab12", 4, 3).shape == (3, 4)
    assert cache.get_frames("ab12", 4, 5) is None  # wrong frame count: removed, reported, recomputed
    assert len(cache.take_damaged()) == 1 and cache.get("ab12") is None


@pytest.mark.parametrize("head_class", ["FrameGRU", "FrameLinear"])
def test_a_clips_frame_scores_do_not_depend_on_the_clips_sharing_its_batch(head_class):
    """Clips of different lengths are zero-padded into a batch; the GRU runs packed, so its backward direction
    starts at each clip's last frame and a short clip scores the same alone or beside a long one."""
    from audiobench.events import heads

    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(int(n), 8)).astype(np.float32) for n in rng.integers(10, 40, size=12)]
    targets = [(rng.random((len(c), 2)) > 0.5).astype(np.float32) for c in clips]
    head = getattr(heads, head_class)(epochs=2, batch_size=4, hidden=16) if head_class == "FrameGRU" else \
        getattr(heads, head_class)(epochs=2, batch_size=4)
    head.fit(clips, targets)
    short, long = rng.normal(size=(10, 8)).astype(np.float32), rng.normal(size=(50, 8)).astype(np.float32)
    alone = head.predict([short])[0]
    beside = head.predict([long, short])[1]
    assert alone.shape == beside.shape == (10, 2)
    np.testing.assert_allclose(beside, alone, atol=1e-6)


def test_the_torch_free_frame_grid_is_the_models():
    """Cached frames are checked and placed without the model (``audiobench.frame_grid``): its hop and frame
    count must be those of ``AudioModel.frame_geometry``, which no model overrides."""
    import re
    from pathlib import Path

    import audiobench.models
    from audiobench import load_model
    from audiobench.frame_grid import frame_count, real_hop_ms
    from audiobench.events.frames import model_hop_ms

    package = Path(audiobench.models.__file__).parent
    defining = [path.name for path in package.rglob("*.py") if re.search(r"def frame_geometry\b", path.read_text())]
    assert defining == ["base.py"]
    for name in ("logmel-stats", "mn04", "cpmobile"):  # 16, 32 and 44.1 kHz
        model = load_model(name)
        for hop_ms in (50.0, 10.0, 33.3):
            assert model_hop_ms(model, hop_ms) == real_hop_ms(model.sample_rate, hop_ms)
            for samples in (0, 1, 799, 800, 44_100, 160_000, 441_001):
                assert model.frame_geometry(samples, 160.0, hop_ms)[2] == frame_count(model.sample_rate, samples, hop_ms)
