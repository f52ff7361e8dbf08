"""The probe-output cache: a split's outputs are reused only when everything that determines them is unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiobench.protocols import split_cache
from audiobench.protocols.evaluate import evaluate_probe
from audiobench.protocols.probe import LinearProbe
from audiobench.protocols.split_cache import SplitCache, split_key
from audiobench.protocols.splits import cross_validation
from test_probe_and_splits import _blobs, _index


def _task(seed: int = 0):
    x, y = _blobs(n_per_class=15, classes=3, dim=6, seed=seed)
    index = _index(y)
    return x, index, cross_validation(index, 3, seed=0)


def _refuse(*args, **kwargs):
    raise AssertionError("a split was fitted although its outputs were cached")


def _refuse_fits(monkeypatch) -> None:
    monkeypatch.setattr(LinearProbe, "_fit_predict", _refuse)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("c", [1.0, "auto"])
def test_a_second_evaluation_takes_every_split_from_the_cache(tmp_path, monkeypatch, threads, c) -> None:
    x, index, plan = _task()
    first_probe, cache = LinearProbe(C=c), SplitCache(tmp_path)
    first = evaluate_probe(first_probe, x, index, plan, threads=threads, cache=cache)
    assert (cache.computed, cache.reused) == (3, 0)
    uncached_probe = LinearProbe(C=c)
    uncached = evaluate_probe(uncached_probe, x, index, plan, threads=threads)
    np.testing.assert_array_equal(first.scores, uncached.scores)  # caching does not change a fit
    assert first_probe.describe() == uncached_probe.describe()

    _refuse_fits(monkeypatch)
    again_probe, again_cache = LinearProbe(C=c), SplitCache(tmp_path)
    again = evaluate_probe(again_probe, x, index, plan, threads=threads, cache=again_cache)
    assert (again_cache.computed, again_cache.reused) == (0, 3)
    np.testing.assert_array_equal(again.scores, first.scores)
    assert list(again.clip_id) == list(first.clip_id) and list(again.split) == list(first.split)
    assert again_probe.describe() == first_probe.describe()  # chosen C and solver iterations come back too
    assert len(again_probe.iterations) == 3 and len(again_probe.chosen) == (3 if c == "auto" else 0)


def test_any_changed_input_or_setting_is_fitted_again(tmp_path) -> None:
    x, index, plan = _task()
    evaluate_probe(LinearProbe(), x, index, plan, cache=SplitCache(tmp_path))

    changed = x.copy()
    changed[plan.splits[0].test[0], 0] = np.nextafter(changed[plan.splits[0].test[0], 0], np.float32(np.inf))
    cache = SplitCache(tmp_path)
    evaluate_probe(LinearProbe(), changed, index, plan, cache=cache)  # one last bit of one clip
    assert (cache.computed, cache.reused) == (3, 0)  # it is a test clip of split 1 and a training clip of the others

    for probe in (LinearProbe(C=0.5), LinearProbe(tol=1e-6), LinearProbe(seed=1), LinearProbe(max_iter=999)):
        cache = SplitCache(tmp_path)
        evaluate_probe(probe, x, index, plan, cache=cache)
        assert (cache.computed, cache.reused) == (3, 0), probe

    shuffled = cross_validation(index, 3, seed=1)  # other folds: other training and test rows
    cache = SplitCache(tmp_path)
    evaluate_probe(LinearProbe(), x, index, shuffled, cache=cache)
    assert cache.reused == 0


def test_code_and_library_versions_are_in_the_key(monkeypatch) -> None:
    identity, arrays = {"name": "linear-probe", "C": 1.0}, {"x": np.ones((2, 2), np.float32), "y": np.arange(2)}
    key = split_key(identity, arrays)
    assert split_key(identity, {**arrays}) == key
    assert split_key({**identity, "implementation": "other code"}, arrays) != key
    assert split_key(identity, {**arrays, "y": np.arange(2, dtype=np.int32)}) != key  # dtype counts
    assert split_key(identity, {**arrays, "x": np.ones((1, 4), np.float32)}) != key  # shape counts
    assert split_key(identity, {**arrays, "mask": None}) != key
    assert split_key(identity, {**arrays, "y": np.array(["a", "b"], dtype=object)}) is None  # not hashable by bytes
    clips = [np.ones((3, 2), np.float32), np.zeros((2, 2), np.float32)]  # per-clip frame matrices
    joined = np.concatenate(clips)
    assert split_key(identity, {"x": clips}) == split_key(identity, {"x": [c.copy() for c in clips]})
    assert len({split_key(identity, {"x": clips}), split_key(identity, {"x": [joined]}),
                split_key(identity, {"x": joined}), split_key(identity, {"x": clips[::-1]})}) == 4  # clip bounds count
    monkeypatch.setattr(split_cache, "library_versions", lambda: {"scikit-learn": "0.0"})
    assert split_key(identity, arrays) != key


def test_the_protocol_code_version_is_in_the_identity(tmp_path, monkeypatch) -> None:
    from audiobench import code_version

    x, index, plan = _task()
    evaluate_probe(LinearProbe(), x, index, plan, cache=SplitCache(tmp_path))
    monkeypatch.setattr(code_version, "protocol_version", lambda name: "edited probe code")
    cache = SplitCache(tmp_path)
    evaluate_probe(LinearProbe(), x, index, plan, cache=cache)
    assert (cache.computed, cache.reused) == (3, 0)


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.npz"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "state", "shape"])
def test_a_damaged_entry_is_named_removed_and_fitted_again(tmp_path, damage) -> None:
    x, index, plan = _task()
    reference = evaluate_probe(LinearProbe(), x, index, plan, cache=SplitCache(tmp_path))
    victim = _entries(tmp_path)[0]
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one byte of the stored scores: the zip member's CRC no longer matches
        position = data.index(b"scores.npy") + 200
        victim.write_bytes(data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:])
    elif damage == "state":
        np.savez(victim, scores=np.zeros((15, 3)), state=np.array('{"chosen": [], "iterations": "many"}'))
    else:
        np.savez(victim, scores=np.zeros((4, 3)), state=np.array('{"chosen": [], "iterations": [3]}'))
    cache = SplitCache(tmp_path)
    again = evaluate_probe(LinearProbe(), x, index, plan, cache=cache)
    assert (cache.computed, cache.reused) == (1, 2)
    assert [path for path, _ in cache.damaged] == [str(victim)]
    np.testing.assert_array_equal(again.scores, reference.scores)
    assert victim.exists()  # written again by the new fit
    assert SplitCache(tmp_path).get(victim.stem, 15, 3) is not None


def test_streaming_probes_and_runs_without_a_cache_store_nothing(tmp_path) -> None:
    from audiobench.protocols.streaming import StreamingLinearProbe

    x, index, plan = _task()
    evaluate_probe(LinearProbe(), x, index, plan)
    cache = SplitCache(tmp_path)
    evaluate_probe(StreamingLinearProbe(C=1.0), x, index, plan, cache=cache)
    assert _entries(tmp_path) == [] and (cache.computed, cache.reused) == (0, 0)


def test_a_run_records_how_its_probe_outputs_were_obtained(tmp_path, monkeypatch) -> None:
    """Two runs of the synthetic task on cached embeddings: the second fits nothing and writes the same record."""
    import json

    from audiobench.runner import RunOptions, run

    monkeypatch.setenv("AUDIOBENCH_CACHE", str(tmp_path / "cache"))
    options = RunOptions(task="synthetic", model="logmel-stats", output_dir=tmp_path / "results", device="cpu")
    first, first_path = run(options)
    _refuse_fits(monkeypatch)
    second, second_path = run(options)
    assert first["probe_outputs"]["computed"] == second["probe_outputs"]["reused"] > 0
    assert second["probe_outputs"]["computed"] == 0
    assert second["metrics"] == first["metrics"] and second["protocol"] == first["protocol"]
    scores = [np.load(path.with_suffix(".predictions.npz"))["scores"] for path in (first_path, second_path)]
    np.testing.assert_array_equal(*scores)
    assert json.loads(second_path.read_text())["probe_outputs"]["cache"] == split_cache.SPLIT_CACHE_FORMAT


def test_cache_info_counts_the_probe_outputs(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from audiobench.cli import app

    x, index, plan = _task()
    evaluate_probe(LinearProbe(), x, index, plan, cache=SplitCache(tmp_path / split_cache.DIRECTORY))
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["cache", "info", "--cache-dir", str(tmp_path), "--json",
                                        "--folders"]).output)
    assert listed["probe_outputs"]["entries"] == 3 and listed["probe_outputs"]["bytes"] > 0
    assert listed["folders"] == {split_cache.DIRECTORY: listed["probe_outputs"]["bytes"]}  # every byte on disk
    shown = runner.invoke(app, ["cache", "info", "--cache-dir", str(tmp_path)])
    assert shown.exit_code == 0 and "probe outputs: 3 split(s)" in shown.output and "by folder" not in shown.output
    shown = runner.invoke(app, ["cache", "info", "--cache-dir", str(tmp_path), "--folders"])
    assert f"on disk by folder: {split_cache.DIRECTORY} " in shown.output


@pytest.mark.parametrize("select", ["first-split", "every-split"])
def test_mlp_probe_outputs_and_grid_choices_come_back_from_the_cache(tmp_path, monkeypatch, select) -> None:
    """The MLP probe fits splits in turn; with HEAR's first-split selection the later splits' keys hold the
    point chosen on the first, and a cached run restores it."""
    from audiobench.protocols import mlp_train
    from audiobench.protocols.mlp import MLPProbe

    settings = dict(hidden_dim=(16,), lr=(1e-2, 1e-3), grid_points=2, max_epochs=12, patience=2, check_every=3,
                    select=select, device="cpu")
    x, index, plan = _task()
    first_probe, cache = MLPProbe(**settings), SplitCache(tmp_path)
    first = evaluate_probe(first_probe, x, index, plan, cache=cache)
    assert (cache.computed, cache.reused) == (3, 0)

    def refuse(*args, **kwargs):
        raise AssertionError("an MLP was trained although the split's outputs were cached")

    with monkeypatch.context() as patch:
        patch.setattr(mlp_train, "train", refuse)
        again_probe, again_cache = MLPProbe(**settings), SplitCache(tmp_path)
        again = evaluate_probe(again_probe, x, index, plan, cache=again_cache)
    assert (again_cache.computed, again_cache.reused) == (0, 3)
    np.testing.assert_array_equal(again.scores, first.scores)
    assert again_probe.describe() == first_probe.describe()  # every split's grid point, score and epoch
    assert again_probe._best == first_probe._best

    other = SplitCache(tmp_path)  # another grid is another key
    evaluate_probe(MLPProbe(**{**settings, "lr": (1e-2, 3e-3)}), x, index, plan, cache=other)
    assert other.reused == 0


def test_the_protocol_code_version_is_derived_before_splits_are_fitted_in_threads(tmp_path, monkeypatch) -> None:
    """Deriving it parses source code, and CPython 3.11's parser failed ("AST constructor recursion depth
    mismatch") when a split-fitting thread parsed while another thread compiled."""
    import threading

    from audiobench import code_version

    callers, real = [], code_version.protocol_version

    def recording(name: str):
        callers.append(threading.current_thread())
        return real(name)

    monkeypatch.setattr(code_version, "protocol_version", recording)
    x, index, plan = _task()
    cache = SplitCache(tmp_path)
    evaluate_probe(LinearProbe(), x, index, plan, threads=2, cache=cache)
    assert cache.computed == 3 and callers and set(callers) == {threading.current_thread()}


def test_an_unwritable_cache_costs_only_the_next_fit(tmp_path) -> None:
    x, index, plan = _task()
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache's folders should go")
    cache = SplitCache(blocked)
    scores = evaluate_probe(LinearProbe(), x, index, plan, cache=cache).scores
    assert cache.computed == 3 and cache.unwritable and str(blocked) in cache.unwritable
    np.testing.assert_array_equal(scores, evaluate_probe(LinearProbe(), x, index, plan).scores)


def test_multilabel_probe_with_unknown_labels_is_cached_with_its_mask(tmp_path, monkeypatch) -> None:
    from audiobench.datasets.base import Clip, DatasetIndex

    rng = np.random.default_rng(4)
    labels = [tuple(int(c) for c in np.flatnonzero(rng.random(3) < 0.4)) or (0,) for _ in range(36)]
    known = [None if i % 4 else (True, i % 8 == 0, True) for i in range(36)]
    x = (rng.normal(size=(36, 6)) + np.array([[2.0 * (c in row) for c in range(3)] + [0.0] * 3 for row in labels])
         ).astype(np.float32)
    clips = [Clip(clip_id=f"c{i}", path=Path(f"c{i}.wav"), label=row, mask=known[i]) for i, row in enumerate(labels)]
    index = DatasetIndex(name="toy-ml", classes=["a", "b", "c"], clips=clips)
    assert index.multilabel and index.masks() is not None
    plan = cross_validation(index, 3, seed=0)
    first = evaluate_probe(LinearProbe(), x, index, plan, cache=SplitCache(tmp_path))
    with monkeypatch.context() as patch:
        patch.setattr("audiobench.protocols.probe.fit_predict_multilabel", _refuse)
        cache = SplitCache(tmp_path)
        again = evaluate_probe(LinearProbe(), x, index, plan, cache=cache)
    assert (cache.computed, cache.reused) == (0, 3)
    np.testing.assert_array_equal(again.scores, first.scores)
    np.testing.assert_array_equal(again.mask, first.mask)
    other_mask = [None] * 36  # every label known: another training mask, another key
    index_all_known = DatasetIndex(name="toy-ml", classes=["a", "b", "c"], clips=[
        Clip(clip_id=c.clip_id, path=c.path, label=c.label, mask=m) for c, m in zip(clips, other_mask)])
    cache = SplitCache(tmp_path)
    evaluate_probe(LinearProbe(), x, index_all_known, plan, cache=cache)
    assert cache.reused == 0
