"""On-disk feature matrices, lazy row views and the streaming linear probe (same optimum as scikit-learn)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiobench.datasets.base import Clip, DatasetIndex
from audiobench.errors import AudiobenchError, ProtocolError
from audiobench.feature_matrix import FeatureMatrix, RowView, row_view
from audiobench.protocols.evaluate import evaluate_probe
from audiobench.protocols.multilabel import fit_predict_multilabel
from audiobench.protocols.probe import LinearProbe
from audiobench.protocols.splits import cross_validation
from audiobench.protocols import streaming
from audiobench.protocols.streaming import StreamingLinearProbe
from audiobench.registry import PROTOCOLS

TINY_BUDGET_MB = 0.05  # about 20 rows of 64 features per chunk: a 300-row task streams in many chunks


def _blobs(n: int = 300, dim: int = 64, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, dim))
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(0, 1, size=(n, dim))).astype(np.float32), y


def _matrix(directory: Path, x: np.ndarray, rows_per_shard: int = 70) -> FeatureMatrix:
    matrix = FeatureMatrix.create(directory, len(x), x.shape[1], rows_per_shard=rows_per_shard)
    for start in range(0, len(x), 45):  # pieces that straddle shard boundaries
        matrix.write_rows(start, x[start:start + 45])
    matrix.finalize()
    return FeatureMatrix.open(directory)


# --------------------------------------------------------------------------- feature matrix and row views


def test_feature_matrix_round_trip_across_shards(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(23, 5)).astype(np.float32)
    matrix = _matrix(tmp_path / "m", x, rows_per_shard=7)
    assert matrix.shape == (23, 5) and len(sorted((tmp_path / "m").glob("shard-*.f32"))) == 4
    matrix.verify()
    np.testing.assert_array_equal(matrix[:], x)
    np.testing.assert_array_equal(matrix[5:20], x[5:20])
    np.testing.assert_array_equal(matrix[1:22:3], x[1:22:3])
    np.testing.assert_array_equal(matrix[-1], x[-1])
    order = np.array([22, 0, 7, 6, 13, 13, -2])
    np.testing.assert_array_equal(matrix[order], x[order])  # fancy indexing keeps the order
    keep = np.arange(23) % 3 == 0
    np.testing.assert_array_equal(matrix[keep], x[keep])
    with pytest.raises(IndexError):
        matrix[[23]]
    with pytest.raises(AudiobenchError, match="read-only"):
        matrix.write_rows(0, x[:1])


def test_verify_detects_a_flipped_byte_and_open_refuses_unfinished(tmp_path: Path) -> None:
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    _matrix(tmp_path / "m", x, rows_per_shard=6)
    shard = tmp_path / "m" / "shard-00002.f32"
    data = bytearray(shard.read_bytes())
    data[5] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(AudiobenchError, match="shard-00002.f32 is damaged"):
        FeatureMatrix.open(tmp_path / "m").verify()
    FeatureMatrix.create(tmp_path / "unfinished", 4, 3).write_rows(0, x[:4])
    with pytest.raises(AudiobenchError, match="never finalised"):
        FeatureMatrix.open(tmp_path / "unfinished")


def test_row_view_chunks_cover_the_view_in_order(tmp_path: Path) -> None:
    x = np.random.default_rng(2).normal(size=(30, 4)).astype(np.float32)
    matrix = _matrix(tmp_path / "m", x, rows_per_shard=8)
    indices = np.random.default_rng(3).permutation(30)[:17]
    for source in (matrix, x):
        view = row_view(source, indices)
        assert isinstance(view, RowView) and len(view) == 17 and view.shape == (17, 4)
        chunks = list(view.chunks(4))
        assert [len(c) for c in chunks] == [4, 4, 4, 4, 1]
        np.testing.assert_array_equal(np.concatenate(chunks), x[indices])
        np.testing.assert_array_equal(np.asarray(view), x[indices])
        np.testing.assert_array_equal(view[[3, 0]], x[indices[[3, 0]]])
        np.testing.assert_array_equal(row_view(view, [16, 2]).materialize(), x[indices[[16, 2]]])
    np.testing.assert_array_equal(matrix.rows().materialize(), x)


# --------------------------------------------------------------------------- the probe's optimum


def test_streaming_probe_matches_scikit_learn_on_many_chunks(tmp_path: Path) -> None:
    x, y = _blobs()
    train, test = np.arange(220), np.arange(220, 300)
    matrix = _matrix(tmp_path / "m", x)
    probe = StreamingLinearProbe(C=1.0, memory_budget_mb=TINY_BUDGET_MB)
    predicted, scores = probe.fit_predict(matrix.rows(train), y[train], matrix.rows(test), num_classes=6)
    assert probe.fits[-1]["chunks"] >= 8
    assert scores.shape == (80, 6) and np.all(scores[:, 5] == 0)  # class 5 is absent from training
    reference_labels, reference = LinearProbe(C=1.0).fit_predict(x[train], y[train], x[test], num_classes=6)
    np.testing.assert_array_equal(predicted, reference_labels)
    np.testing.assert_allclose(scores, reference, atol=1e-5)
    # and the optimum of scikit-learn's L-BFGS run to tol=1e-12
    tight = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000))
    exact = tight.fit(x[train].astype(np.float64), y[train]).predict_proba(x[test].astype(np.float64))
    np.testing.assert_allclose(scores[:, :5], exact, atol=1e-4)


def test_two_classes_use_one_logistic_output_as_scikit_learn() -> None:
    x, y = _blobs(n=200, dim=16, classes=2, seed=4)
    x += np.linspace(0, 1000, 16, dtype=np.float32)  # far from zero mean: standardisation is folded in exactly
    labels = np.where(y == 0, 7, 42)
    predicted, scores = StreamingLinearProbe(memory_budget_mb=0.01).fit_predict(x[:150], labels[:150], x[150:])
    tight = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-12, max_iter=10_000))
    exact = tight.fit(x[:150].astype(np.float64), labels[:150]).predict_proba(x[150:].astype(np.float64))
    np.testing.assert_allclose(scores, exact, atol=1e-4)
    assert set(predicted) <= {7, 42}


def test_multilabel_masked_matches_the_multilabel_probe(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    y = rng.random((300, 6)) < 0.3
    x = (y @ rng.normal(0, 1, (6, 64)) + rng.normal(0, 1, (300, 64))).astype(np.float32)
    known = rng.random((300, 6)) < 0.8
    matrix = _matrix(tmp_path / "m", x)
    reference = fit_predict_multilabel(x[:220], y[:220], x[220:], 1.0, 1000, 0, known[:220])
    predicted, scores = StreamingLinearProbe(memory_budget_mb=TINY_BUDGET_MB).fit_predict(
        matrix.rows(np.arange(220)), y[:220], matrix.rows(np.arange(220, 300)), num_classes=6, mask=known[:220])
    np.testing.assert_allclose(scores, reference, atol=1e-4)
    np.testing.assert_array_equal(predicted, scores.argmax(axis=1))


def test_streamed_equals_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _blobs(seed=6)
    matrix = _matrix(tmp_path / "m", x)
    streamed = StreamingLinearProbe(memory_budget_mb=TINY_BUDGET_MB)
    in_memory = StreamingLinearProbe(memory_budget_mb=1024)
    _, a = streamed.fit_predict(matrix.rows(np.arange(250)), y[:250], matrix.rows(np.arange(250, 300)))
    _, b = in_memory.fit_predict(x[:250], y[:250], x[250:])
    assert streamed.fits[-1]["chunks"] > 5 and in_memory.fits[-1]["chunks"] == 1
    np.testing.assert_allclose(a, b, atol=1e-6)
    _, again = StreamingLinearProbe(memory_budget_mb=TINY_BUDGET_MB).fit_predict(
        matrix.rows(np.arange(250)), y[:250], matrix.rows(np.arange(250, 300)))
    np.testing.assert_array_equal(again, a)  # deterministic
    monkeypatch.setattr(streaming, "PREFETCH_FROM_VALUES", 0)  # chunks read in a background thread
    _, threaded = StreamingLinearProbe(memory_budget_mb=TINY_BUDGET_MB).fit_predict(
        matrix.rows(np.arange(250)), y[:250], matrix.rows(np.arange(250, 300)))
    np.testing.assert_array_equal(threaded, a)


def test_memory_follows_the_budget_not_the_matrix(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows, dim = 20_000, 128  # 10 MB of float32
    matrix = FeatureMatrix.create(tmp_path / "big", rows, dim, rows_per_shard=4096)
    for start in range(0, rows, 2000):
        matrix.write_rows(start, rng.normal(size=(2000, dim)).astype(np.float32))
    matrix.finalize()
    y = rng.integers(0, 4, rows)
    probe = StreamingLinearProbe(max_iter=3, memory_budget_mb=1.0)
    tracemalloc.start()
    try:
        probe.fit_predict(matrix.rows(np.arange(18_000)), y[:18_000], matrix.rows(np.arange(18_000, rows)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert probe.fits[-1]["chunks"] > 20
    assert peak < 3 * 2**20, f"peak {peak / 2**20:.1f} MB for a 10 MB matrix and a 1 MB budget"


# --------------------------------------------------------------------------- the split loop and registry


def _index(labels: np.ndarray) -> DatasetIndex:
    clips = [Clip(clip_id=f"c{i}", path=Path(f"c{i}.wav"), label=int(label)) for i, label in enumerate(labels)]
    return DatasetIndex(name="toy", classes=[str(c) for c in sorted(set(labels.tolist()))], clips=clips)


class _Spy(StreamingLinearProbe):
    seen: list[type] = []

    def fit_predict(self, x_train, y_train, x_test, num_classes=None, mask=None):  # type: ignore[no-untyped-def]
        self.seen += [type(x_train), type(x_test)]
        return super().fit_predict(x_train, y_train, x_test, num_classes, mask)


def test_evaluate_probe_streams_views_and_matches_the_linear_probe(tmp_path: Path) -> None:
    x, y = _blobs(n=90, dim=12, classes=3, seed=8)
    index = _index(y)
    plan = cross_validation(index, 3, seed=0)
    matrix = _matrix(tmp_path / "m", x, rows_per_shard=40)
    spy = _Spy(memory_budget_mb=0.005)
    streamed = evaluate_probe(spy, matrix, index, plan)
    reference = evaluate_probe(LinearProbe(C=1.0), x, index, plan)
    assert set(spy.seen) == {RowView} and len(spy.fits) == 3
    assert list(streamed.clip_id) == list(reference.clip_id)
    np.testing.assert_array_equal(streamed.scores.argmax(axis=1), reference.scores.argmax(axis=1))
    np.testing.assert_allclose(streamed.scores, reference.scores, atol=1e-5)
    np.testing.assert_array_equal(evaluate_probe(LinearProbe(C=1.0), matrix, index, plan).scores, reference.scores)


def test_registered_with_settings_for_the_record() -> None:
    assert PROTOCOLS.get("linear-probe-streaming") is StreamingLinearProbe
    record = StreamingLinearProbe(memory_budget_mb=64).describe()
    assert record["name"] == "linear-probe-streaming" and record["memory_budget_mb"] == 64
    with pytest.raises(ProtocolError, match="positive number for C"):
        StreamingLinearProbe(C="auto")  # type: ignore[arg-type]
