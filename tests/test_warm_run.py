"""A re-run whose outputs are all cached builds no model: no torch import, no weights read, no audio decoded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RUN_AND_REPORT = """
import json, sys
from pathlib import Path
from audiobench.runner import RunOptions, run
record, path = run(RunOptions(task="synthetic", model=sys.argv[1], output_dir=Path(sys.argv[2]), device="cpu"))
print(json.dumps({"torch": "torch" in sys.modules, "soxr": "soxr" in sys.modules,
                  "solver": "sklearn.linear_model" in sys.modules, "probe_outputs": record["probe_outputs"],
                  "embeddings": record["embeddings"], "metrics": record["metrics"],
                  "device": record["provenance"]["device"], "model": record["model"],
                  "complexity": record["complexity"]}))
"""


def _run(model: str, cache: Path, output: Path) -> dict:
    env = {**os.environ, "AUDIOBENCH_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", RUN_AND_REPORT, model, str(output)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_run_builds_no_model_and_imports_no_torch(tmp_path) -> None:
    cache = tmp_path / "cache"
    first = _run("logmel-stats", cache, tmp_path / "a")
    assert first["torch"] and first["embeddings"]["computed"] == 120 and first["embeddings"]["model_built"]
    second = _run("logmel-stats", cache, tmp_path / "b")
    assert second["embeddings"] == {"total": 120, "computed": 0, "reused": 120, "model_built": False, "precision": "fp32",
                                    "cache_key": first["embeddings"]["cache_key"]}
    assert not second["torch"] and not second["soxr"]  # nothing built, nothing decoded
    assert first["solver"] and first["probe_outputs"]["computed"] > 0 and first["probe_outputs"]["reused"] == 0
    assert not second["solver"]  # every split's probe outputs came from the split cache: nothing fitted
    assert second["probe_outputs"]["reused"] == first["probe_outputs"]["computed"]
    assert second["probe_outputs"]["computed"] == 0
    assert second["metrics"] == first["metrics"]
    assert second["model"] == first["model"] and second["complexity"] == first["complexity"]
    assert second["device"].startswith("none")


def test_descriptor_is_not_used_after_the_model_code_changed(monkeypatch) -> None:
    from audiobench import load_model
    from audiobench.models import descriptor

    model = load_model("logmel-stats")
    descriptor.remember(model, "logmel-stats", None, False)
    known = descriptor.recall("logmel-stats", None, False)
    assert known is not None and known.fingerprint == json.loads(json.dumps(model.fingerprint(), default=str))
    monkeypatch.setattr(descriptor, "implementation_version", lambda roots: "edited code")
    assert descriptor.recall("logmel-stats", None, False) is None


def test_descriptor_follows_the_weights_file(tmp_path) -> None:
    import torch

    from audiobench import load_model
    from audiobench.models import descriptor

    model = load_model("mn04")
    weights = tmp_path / "w.pt"
    torch.save(model.network.state_dict(), weights)
    loaded = load_model("mn04", checkpoint=weights)
    descriptor.remember(loaded, "mn04", weights, True)
    assert descriptor.recall("mn04", weights, True).checkpoint_sha256 == loaded.checkpoint_sha256
    state = model.network.state_dict()
    next(iter(state.values())).add_(1.0)
    torch.save(state, weights)  # other weights under the same name
    assert descriptor.recall("mn04", weights, True) is None


@pytest.fixture
def clips(tmp_path):
    from audiobench.datasets.base import Clip

    out = []
    for i in range(4):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, np.random.default_rng(i).standard_normal(22050).astype(np.float32) * 0.1, 44100)
        out.append(Clip(clip_id=path.name, path=path, label=0))
    return out


def test_second_model_at_the_same_rate_decodes_nothing(clips) -> None:
    from audiobench import load_model
    from audiobench.embeddings import extract_embeddings

    _, first = extract_embeddings(load_model("mn04"), clips, 0.5, num_workers=0)
    _, second = extract_embeddings(load_model("dymn04"), clips, 0.5, num_workers=0)
    assert (first.decoded, second.decoded) == (4, 0)
    assert second.describe()["from_audio_cache"] == 4


def test_precision_is_in_the_cache_key_and_changes_little(clips, tmp_path) -> None:
    import torch

    from audiobench import load_model
    from audiobench.embeddings import cache_for, extract_embeddings

    torch.manual_seed(0)
    model = load_model("mn04")
    assert cache_for(model, tmp_path, precision="bf16").model_key != cache_for(model, tmp_path).model_key
    full, _ = extract_embeddings(model, clips, 0.5, num_workers=0)
    half, _ = extract_embeddings(model, clips, 0.5, num_workers=0, precision="bf16")
    cosine = (full * half).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert not np.array_equal(full, half) and cosine.min() > 0.95


def test_audio_cache_key_ignores_batching_code_and_torch(monkeypatch) -> None:
    from audiobench import input_pipeline as pipeline

    before = pipeline.audio_identity(32000)
    assert "torch" not in before
    original = pipeline.input_pipeline
    monkeypatch.setattr(pipeline, "input_pipeline",
                        lambda rate: {**original(rate), "implementation": "new batching", "torch": "9.9"})
    assert pipeline.audio_identity(32000) == before  # decoded audio survives an edit of clip_batches/embeddings


def test_a_damaged_entry_met_without_the_model_is_named_and_computed_again(tmp_path, monkeypatch) -> None:
    import sqlite3

    from audiobench.errors import CacheWarning
    from audiobench.runner import RunOptions, run
    from audiobench.shard_compaction import find_stores

    monkeypatch.setenv("AUDIOBENCH_CACHE", str(tmp_path / "cache"))
    options = RunOptions(task="synthetic", model="logmel-stats", output_dir=tmp_path / "out", device="cpu", cv=3,
                         num_workers=0)
    first, _ = run(options)
    (store,) = find_stores(tmp_path / "cache" / "embeddings")
    with sqlite3.connect(store / "index.sqlite") as index:
        key, shard, offset = index.execute("SELECT key, shard, offset FROM entries ORDER BY key LIMIT 1").fetchone()
    raw = (store / shard).read_bytes()
    (store / shard).write_bytes(raw[:offset + 3] + bytes([raw[offset + 3] ^ 0xFF]) + raw[offset + 4:])
    with pytest.warns(CacheWarning, match=key):  # met by the model-free path, which then builds the model
        again, _ = run(options)
    assert again["embeddings"]["computed"] == 1 and again["embeddings"]["model_built"]
    assert again["metrics"] == first["metrics"]
