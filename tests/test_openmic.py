"""OpenMIC-2018 loader on a tiny tree in the release layout (npz with object sample_key, partitions, ogg)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.datasets.openmic import load_openmic
from audiobench.errors import DatasetError

INSTRUMENTS = ["accordion", "banjo", "bass"]
RATE = 44100


def make_openmic(root: Path, n_train: int = 10, n_test: int = 6, drop: tuple[str, ...] = ()) -> dict:
    """A release-shaped tree: keys like ``000046_3840``; instrument 0 loud low tone, 1 high tone, 2 unknown
    for every other clip. Arrays listed in ``drop`` are left out of the npz."""
    rng = np.random.default_rng(0)
    keys = [f"{100 + i:06d}_{3840 * i}" for i in range(n_train + n_test)]
    y_true = np.full((len(keys), 3), 0.5)
    y_mask = np.zeros((len(keys), 3), dtype=bool)
    for row in range(len(keys)):
        low = row % 2 == 0
        y_true[row, 0], y_true[row, 1] = (1.0, 0.0) if low else (0.0, 0.8)
        y_mask[row, :2] = True
        if row % 3 == 0:
            y_true[row, 2], y_mask[row, 2] = 0.5, True  # annotated at exactly 0.5: > vs >= differ
        t = np.arange(RATE // 2) / RATE
        signal = 0.3 * np.sin(2 * np.pi * (250.0 if low else 2000.0) * t) + 0.01 * rng.standard_normal(len(t))
        folder = root / "audio" / keys[row][:3]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{keys[row]}.ogg", np.stack([signal, signal], axis=1).astype(np.float32), RATE,
                 format="OGG", subtype="VORBIS")
    arrays = {"Y_true": y_true, "Y_mask": y_mask, "sample_key": np.array(keys, dtype=object)}
    np.savez(root / "openmic-2018.npz", **{k: v for k, v in arrays.items() if k not in drop})
    (root / "class-map.json").write_text(json.dumps({name: i for i, name in enumerate(INSTRUMENTS)}, indent=4))
    (root / "partitions").mkdir()
    (root / "partitions" / "split01_train.csv").write_text("".join(f"{k}\n" for k in keys[:n_train]))
    (root / "partitions" / "split01_test.csv").write_text("".join(f"{k}\n" for k in keys[n_train:]))
    return {"keys": keys, "y_true": y_true, "y_mask": y_mask}


@pytest.fixture
def openmic_root(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "openmic-2018"
    root.mkdir()
    return root, make_openmic(root)


def test_index_masks_and_threshold(openmic_root) -> None:
    root, made = openmic_root
    index = load_openmic(root)
    assert index.name == "openmic" and index.classes == INSTRUMENTS and index.multilabel
    assert len(index.clips) == 16 and index.missing == [] and index.clip_seconds == 10.0
    assert [c.split for c in index.clips] == ["train"] * 10 + ["test"] * 6
    first, second = index.clips[0], index.clips[1]
    assert first.path == root / "audio" / "000" / "000100_0.ogg"
    assert first.label == (0,) and first.mask == (True, True, True)  # Y_true 0.5 is not > 0.5
    assert second.label == (1,) and second.mask == (True, True, False)
    masks = index.masks()
    np.testing.assert_array_equal(masks, made["y_mask"])
    assert not (index.targets().astype(bool) & ~masks).any()  # unknown labels are never positive
    coverage = index.coverage()
    assert not coverage.official and coverage.expected == 20_000 and "16 of 20000 clips" in coverage.summary()


def test_inclusive_threshold_is_the_notebook_rule(openmic_root) -> None:
    root, made = openmic_root
    inclusive = load_openmic(root, inclusive=True)
    assert inclusive.clips[0].label == (0, 2)  # annotated at exactly 0.5: positive with >=
    assert inclusive.clips[1].label == (1,)  # unknown (0.5, mask False) stays negative and masked
    expected = (made["y_true"] >= 0.5) & made["y_mask"]
    np.testing.assert_array_equal(inclusive.targets().astype(bool), expected)
    assert inclusive.listed_sha256 != load_openmic(root).listed_sha256
    assert load_openmic(root, threshold=0.9).clips[1].label == ()


def test_missing_audio_is_listed(openmic_root) -> None:
    root, made = openmic_root
    (root / "audio" / "000" / f"{made['keys'][3]}.ogg").unlink()
    index = load_openmic(root)
    assert index.missing == [made["keys"][3]] and len(index.clips) == 15


def test_npz_without_mask_is_refused(tmp_path) -> None:
    make_openmic(tmp_path, drop=("Y_mask",))
    with pytest.raises(DatasetError, match=r"openmic-2018.npz lacks the array\(s\) Y_mask"):
        load_openmic(tmp_path)


def test_partition_naming_an_absent_key_is_refused(openmic_root) -> None:
    root, _ = openmic_root
    test = root / "partitions" / "split01_test.csv"
    test.write_text(test.read_text() + "999999_0\n")
    with pytest.raises(DatasetError, match=r"split01_test.csv, row 7: sample key '999999_0' is not in"):
        load_openmic(root)
    test.write_text("sample_key\n" + test.read_text())
    with pytest.raises(DatasetError) as info:
        load_openmic(root)
    assert "row 1" in str(info.value) and "no header" in info.value.hint


def test_key_in_both_partitions_is_refused(openmic_root) -> None:
    root, made = openmic_root
    test = root / "partitions" / "split01_test.csv"
    test.write_text(test.read_text() + made["keys"][0] + "\n")
    with pytest.raises(DatasetError, match="list the same clip"):
        load_openmic(root)


def test_absent_release_says_where_to_get_it(tmp_path) -> None:
    with pytest.raises(DatasetError) as info:
        load_openmic(tmp_path / "nothing")
    assert "zenodo.org/record/1432913" in info.value.hint
    with pytest.raises(DatasetError, match="not supported"):
        load_openmic(tmp_path / "nothing", download=True)


def test_end_to_end_masked_probe_with_logmel_stats(openmic_root, tmp_path, monkeypatch) -> None:
    from audiobench.report.rescore import rescore
    from audiobench.runner import RunOptions, run

    root, _ = openmic_root
    monkeypatch.setattr("audiobench.provenance.git_revision", lambda *a, **k: None)
    record, path = run(RunOptions(task="openmic", model="logmel-stats", data_dir=root, device="cpu", num_workers=0,
                                  output_dir=tmp_path / "out"))
    assert record["protocol"]["official"] is False and "16 of 20000 clips" in record["protocol"]["splits"]
    assert record["dataset"]["clips"] == 16 and record["task"]["label_type"] == "multilabel"
    value = record["metrics"]["mAP"]["mean"]
    assert 0.0 < value <= 1.0 and list(record["metrics"]["mAP"]["per_split"]) == ["test"]
    assert rescore(path)["identical"] is True
    from audiobench.report.records import load_record

    predictions = load_record(path).predictions()
    assert predictions.mask is not None and not predictions.mask.all()  # the masked mAP was scored
