"""The events runner path end to end on a tiny generated dataset with known tone events."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.datasets.base import Clip, DatasetIndex
from audiobench.registry import DATASETS, RegistryEntry

RATE = 16_000
TONES = {0: 800.0, 1: 3000.0}  # class -> tone frequency (Hz)
CLASSES = ["beep", "whistle"]


def _write_toy(root: Path, count: int = 36, seconds: float = 2.0, seed: int = 0) -> None:
    """``count`` clips of noise with 1-2 tone events of known class and times; events.json lists them."""
    rng = np.random.default_rng(seed)
    listing = []
    t = np.arange(int(seconds * RATE)) / RATE
    for n in range(count):
        audio = 0.01 * rng.standard_normal(len(t))
        events = []
        for label in rng.choice(2, size=int(rng.integers(1, 3)), replace=False).tolist():
            onset = round(float(rng.uniform(0.0, seconds - 0.8)), 3)
            offset = round(onset + float(rng.uniform(0.4, 0.8)), 3)
            span = (t >= onset) & (t < offset)
            audio[span] += 0.3 * np.sin(2 * np.pi * TONES[label] * t[span])
            events.append([onset, offset, label])
        sf.write(root / f"clip{n:02d}.wav", audio.astype(np.float32), RATE)
        listing.append({"id": f"clip{n:02d}", "split": "train" if n < 2 * count // 3 else "test",
                        "duration": seconds, "events": events})
    (root / "events.json").write_text(json.dumps(listing))


def load_toy(data_dir: Path | None = None, download: bool = False) -> DatasetIndex:
    listing = json.loads((Path(data_dir) / "events.json").read_text())
    clips = [Clip(clip_id=item["id"], path=Path(data_dir) / f"{item['id']}.wav",
                  label=tuple(sorted({e[2] for e in item["events"]})), split=item["split"],
                  duration=item["duration"], events=tuple((e[0], e[1], e[2]) for e in item["events"]))
             for item in listing]
    return DatasetIndex(name="events-toy", classes=CLASSES, clips=clips)


ALL_METRICS = ("[psds2-sed-scores-eval, psds1-psds-eval, psds2-psds-eval, intersection-f1, collar-f1-macro, "
               "collar-f1-micro, segment-f1-macro, segment-f1-micro]")
CARD = """name: events-toy
description: tone events
dataset: events-toy
label_type: events
metric: psds1-sed-scores-eval
metrics: {metrics}
protocol: {protocol}
protocol_options: {{median_filter_ms: 150, epochs: {epochs}, lr: 0.01, batch_size: 8}}
splits: {{type: fixed, train: [train], test: [test]}}
clip_seconds: 2.0
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    data, cards = tmp_path / "data", tmp_path / "cards"
    data.mkdir()
    cards.mkdir()
    _write_toy(data)
    monkeypatch.setitem(DATASETS._entries, "events-toy", RegistryEntry("events-toy", load_toy, source="test"))
    monkeypatch.setenv("AUDIOBENCH_TASKS_PATH", str(cards))
    monkeypatch.setattr("audiobench.provenance.git_revision", lambda: None)

    def write_card(protocol: str = "frame-linear", epochs: int = 40, metrics: str = ALL_METRICS) -> None:
        (cards / "events-toy.yaml").write_text(CARD.format(protocol=protocol, epochs=epochs, metrics=metrics))

    return data, write_card


def _run(data: Path, out: Path, **extra):
    from audiobench.runner import RunOptions, run

    return run(RunOptions(task="events-toy", model="logmel-stats", data_dir=data, device="cpu", num_workers=0,
                          output_dir=out, **extra))


def test_frame_linear_finds_the_tone_events_and_rescores_identically(toy, tmp_path):
    from audiobench.events.predictions import load_event_predictions
    from audiobench.report.rescore import rescore

    data, write_card = toy
    write_card()
    record, path = _run(data, tmp_path / "out")
    metrics = {name: block["mean"] for name, block in record["metrics"].items()}
    assert metrics["psds1-sed-scores-eval"] > 0.5, metrics  # chance (constant scores) gives ~0
    assert metrics["segment-f1-micro"] > 0.8 and metrics["intersection-f1"] > 0.6, metrics
    assert all(0.0 <= v <= 1.0 for v in metrics.values()), metrics
    assert list(record["metrics"]["psds1-psds-eval"]["per_split"]) == ["test"]
    assert record["metric_notes"]["psds1-psds-eval"]["implementation"] == "psds_eval"
    assert record["metric_notes"]["psds1-sed-scores-eval"]["parameters"]["dtc_threshold"] == 0.7
    assert record["postprocessing"]["median_filter_frames"] == 3
    assert record["protocol"]["name"] == "frame-linear" and record["protocol"]["official"] is False
    assert record["dataset"]["coverage"].startswith("36 of 36 clips") and record["complexity"]
    assert record["embeddings"]["computed"] == 36 and record["task"]["label_type"] == "events"
    predictions = load_event_predictions(path.with_name(record["predictions"]["file"]), record["predictions"]["sha256"])
    assert len(predictions.clip_id) == 12 and predictions.scores.shape == (12 * 40, 2)
    result = rescore(path)
    assert result["identical"] and result["clips"] == 12



def test_frame_gru_runs_deterministically_and_reuses_cached_frames(toy, tmp_path):
    data, write_card = toy
    write_card("frame-gru", epochs=15, metrics="[psds2-sed-scores-eval]")
    record, _ = _run(data, tmp_path / "out")
    assert record["protocol"]["name"] == "frame-gru" and record["protocol"]["hidden"] == 96
    assert record["metrics"]["psds1-sed-scores-eval"]["mean"] > 0.5, record["metrics"]
    assert record["probe_outputs"] == {"computed": 1, "reused": 0, "cache": "split-outputs-1"}
    import os
    import shutil

    from audiobench.protocols.split_cache import DIRECTORY

    shutil.rmtree(Path(os.environ["AUDIOBENCH_CACHE"]) / DIRECTORY)  # the head trains again
    again, _ = _run(data, tmp_path / "out2")  # same seed: same scores; the frames come from the cache
    assert again["embeddings"]["reused"] == 36 and again["embeddings"]["computed"] == 0
    assert again["probe_outputs"]["computed"] == 1
    assert again["metrics"] == record["metrics"]
    assert again["predictions"]["sha256"] == record["predictions"]["sha256"]


def test_a_rerun_takes_the_heads_frame_scores_from_the_split_cache(toy, tmp_path, monkeypatch):
    from audiobench.events.heads import FrameHead

    data, write_card = toy
    write_card(epochs=20, metrics="[onset-fms-200ms, psds1-sed-scores-eval]")  # onset: validation scores too
    record, _ = _run(data, tmp_path / "out", cv=3)  # 3 folds, each validated on the next one
    assert record["probe_outputs"]["computed"] == 3

    def refuse(*args, **kwargs):
        raise AssertionError("a head was trained although its split's scores were cached")

    with monkeypatch.context() as patch:
        patch.setattr(FrameHead, "fit", refuse)
        patch.setattr("audiobench.models.loading.load_model", refuse)  # every frame is cached: no model is built
        again, _ = _run(data, tmp_path / "out2", cv=3)
    assert again["probe_outputs"] == {"computed": 0, "reused": 3, "cache": "split-outputs-1"}
    assert record["embeddings"]["model_built"] and not again["embeddings"]["model_built"]
    assert {k: v for k, v in again["embeddings"].items() if k != "model_built"} == {
        **{k: v for k, v in record["embeddings"].items()
           if k not in ("model_built", "batch_size", "decoded", "from_audio_cache", "threads")},
        "computed": 0, "reused": 36}
    assert again["model"] == record["model"] and again["complexity"] == record["complexity"]
    assert again["metrics"] == record["metrics"] and again["postprocessing"] == record["postprocessing"]
    assert again["predictions"]["sha256"] == record["predictions"]["sha256"]
    other, _ = _run(data, tmp_path / "out3", cv=3, probe_options={"lr": 3e-3})  # another setting: trained again
    assert other["probe_outputs"]["computed"] == 3


def test_unknown_event_metric_and_protocol_are_refused_before_work(toy, tmp_path):
    from audiobench.errors import ProtocolError

    data, write_card = toy
    write_card(metrics="[accuracy]")
    with pytest.raises(ProtocolError, match="accuracy"):
        _run(data, tmp_path / "out")
    write_card(protocol="linear-probe")
    with pytest.raises(ProtocolError, match="does not apply to event tasks"):
        _run(data, tmp_path / "out")


def test_a_damaged_frame_entry_is_named_and_computed_again(toy, tmp_path):
    from audiobench.cachedir import cache_subdir
    from audiobench.errors import CacheWarning
    from audiobench.input_pipeline import clip_key
    from audiobench.shard_compaction import find_stores
    from audiobench.shards import ShardStore

    data, write_card = toy
    write_card(epochs=5, metrics="[psds1-sed-scores-eval]")
    record, _ = _run(data, tmp_path / "out")
    (store,) = [ShardStore(d) for d in find_stores(cache_subdir("embeddings"))]
    key = clip_key(data / "clip00.wav", 2.0)
    shard, offset, _ = store.location(key)
    raw = shard.read_bytes()
    shard.write_bytes(raw[:offset + 7] + bytes([raw[offset + 7] ^ 0xFF]) + raw[offset + 8:])  # one flipped byte
    with pytest.warns(CacheWarning, match=key):
        again, _ = _run(data, tmp_path / "out2")
    assert again["embeddings"]["computed"] == 1 and again["embeddings"]["model_built"]
    assert again["metrics"] == record["metrics"]


def test_precision_and_thread_budget_apply_to_frame_embeddings(toy, tmp_path):
    data, write_card = toy
    write_card(epochs=5, metrics="[psds1-sed-scores-eval]")
    full, _ = _run(data, tmp_path / "out")
    half, _ = _run(data, tmp_path / "out2", precision="bf16", threads=1)  # autocast: another cache entry
    assert half["embeddings"]["threads"]["cores"] == half["embeddings"]["threads"]["compute_threads"] == 1
    assert (full["embeddings"]["precision"], half["embeddings"]["precision"]) == ("fp32", "bf16")
    assert half["embeddings"]["cache_key"] != full["embeddings"]["cache_key"]
    assert half["embeddings"]["computed"] == 36 and half["embeddings"]["model_built"]
    again, _ = _run(data, tmp_path / "out3", precision="bf16")
    assert again["embeddings"]["reused"] == 36 and again["embeddings"]["cache_key"] == half["embeddings"]["cache_key"]
    assert again["metrics"] == half["metrics"]
