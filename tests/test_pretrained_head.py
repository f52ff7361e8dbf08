"""``--protocol pretrained-head``: a model's released head scored directly on the task's classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from shared_material import MN04, require
from audiobench.embeddings import cache_for, extract_embeddings
from audiobench.errors import ProtocolError
from audiobench.protocols.pretrained_head import PretrainedHead, class_columns
from generated_audio import noise_clips


def test_class_columns_match_by_name() -> None:
    head = ["Speech", "Dog", "Rail transport", "metro_station"]
    assert class_columns(["metro_station", "dog", "rail-transport"], head).tolist() == [3, 1, 2]
    with pytest.raises(ProtocolError, match="'cat'") as info:
        class_columns(["Dog", "cat"], head, "mn04")
    assert "linear-probe" in info.value.hint


def test_scores_are_the_task_columns_of_the_head() -> None:
    protocol = PretrainedHead(columns=np.array([2, 0]))
    head = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], dtype=np.float32)
    predicted, scores = protocol.fit_predict(np.zeros((5, 3)), np.zeros(5), head)
    np.testing.assert_allclose(scores, [[0.7, 0.1], [0.1, 0.6]])
    assert predicted.tolist() == [0, 1]
    assert protocol.describe()["training"].startswith("none")


def test_head_outputs_are_extracted_and_cached_apart(tmp_path: Path) -> None:
    from audiobench import load_model

    model = load_model("mn04", checkpoint=require(MN04))
    clips = noise_clips(tmp_path, 3)
    head_cache = cache_for(model, tmp_path / "cache", "head")
    assert head_cache.directory != cache_for(model, tmp_path / "cache").directory
    heads, stats = extract_embeddings(model, clips, 1.0, head_cache, batch_size=2, num_workers=1, output="head")
    assert heads.shape == (3, 527) and stats.computed == 3
    with torch.inference_mode():
        direct = model.probabilities(torch.from_numpy(sf.read(clips[0].path, dtype="float32")[0])[None])
    np.testing.assert_allclose(heads[0], direct[0].numpy(), atol=1e-4)
    again, stats = extract_embeddings(model, clips, 1.0, head_cache, num_workers=0, output="head")
    assert stats.reused == 3 and np.array_equal(again, heads)


def test_unmatched_classes_fail_before_any_embedding(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from audiobench.cli import app
    from test_esc50_dataset import make_esc50

    root = tmp_path / "esc50"
    make_esc50(root)
    result = CliRunner().invoke(app, ["run", "--task", "esc50", "--model", "mn04", "--checkpoint", str(require(MN04)),
                                      "--data-dir", str(root), "--protocol", "pretrained-head", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "has no class 'rooster'" in result.stderr
    assert "embeddings:" not in result.stderr and "Traceback" not in result.output
