"""ESC-50 loader on a tiny tree in the official layout, and on the real partial copy in shared/."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared_material import ESC50 as SHARED_ESC50, require
from audiobench.datasets.esc50 import load_esc50
from audiobench.errors import DatasetError
from audiobench.protocols.splits import cross_validation, official_folds

COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
CATEGORIES = {0: "dog", 1: "rooster"}


def make_esc50(root: Path, flac_every: int = 3) -> list[dict[str, str]]:
    """5 folds x 2 classes x 2 clips of 1 s at 44.1 kHz; every ``flac_every``-th clip stored as FLAC."""
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows, rng = [], np.random.default_rng(0)
    for fold in range(1, 6):
        for target, category in CATEGORIES.items():
            for take in "AB":
                source = 100000 + 10 * fold + target
                name = f"{fold}-{source}-{take}-{target}.wav"
                rows.append({"filename": name, "fold": str(fold), "target": str(target), "category": category,
                             "esc10": "True", "src_file": str(source), "take": take})
                signal = (0.1 * rng.standard_normal(44100)).astype(np.float32)
                if len(rows) % flac_every == 0:
                    sf.write(root / "audio" / name.replace(".wav", ".flac"), signal, 44100, subtype="PCM_16")
                else:
                    sf.write(root / "audio" / name, signal, 44100, subtype="PCM_16")
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture
def esc50_root(tmp_path) -> Path:
    root = tmp_path / "ESC-50-master"
    make_esc50(root)
    return root


def test_index_of_a_complete_tree(esc50_root) -> None:
    index = load_esc50(esc50_root)
    assert index.name == "esc50"
    assert index.classes == ["dog", "rooster"]
    assert len(index.clips) == 20 and index.missing == []
    assert index.expected_per_fold == {1: 4, 2: 4, 3: 4, 4: 4, 5: 4}
    assert index.expected_total == 2000 and index.complete_folds() == [1, 2, 3, 4, 5]  # the official release
    assert index.clip_seconds == 5.0
    flac = [c for c in index.clips if c.path.suffix == ".flac"]
    assert len(flac) == 6
    for clip in index.clips:
        assert clip.clip_id.endswith(".wav")  # ids stay the official names whatever the container
        assert clip.path.stem == Path(clip.clip_id).stem and clip.path.is_file()
        assert clip.label == int(clip.clip_id.split("-")[-1].split(".")[0])
        assert clip.fold == int(clip.clip_id.split("-")[0])
    manifest = index.manifest()
    assert manifest["clips"] == 20 and manifest["expected_clips"] == 2000 and manifest["classes"] == 2
    assert manifest["official_data"] is False
    assert len(manifest["clip_list_sha256"]) == 64


def test_manifest_ignores_the_container(esc50_root, tmp_path) -> None:
    other = tmp_path / "all-wav"
    make_esc50(other, flac_every=10_000)
    assert load_esc50(other).manifest() == load_esc50(esc50_root).manifest()


def test_official_folds_of_a_complete_tree(esc50_root) -> None:
    index = load_esc50(esc50_root)
    plan = official_folds(index, [1, 2, 3, 4, 5])
    # the tiny tree is complete but it is not the official list of 2000 clips
    assert not plan.official and "NON-OFFICIAL" in plan.description and "20 of 2000 clips" in plan.description
    assert [s.name for s in plan.splits] == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    for fold, split in enumerate(plan.splits, start=1):
        assert {index.clips[i].fold for i in split.test} == {fold}
        assert fold not in {index.clips[i].fold for i in split.train}
        assert len(split.test) + len(split.train) == 20


def test_missing_clips_block_the_official_protocol(esc50_root) -> None:
    audio = esc50_root / "audio"
    removed = [sorted(audio.glob("1-*"))[0], *sorted(audio.glob("2-*"))[:2]]
    for path in removed:
        path.unlink()
    index = load_esc50(esc50_root)
    assert len(index.clips) == 17 and len(index.missing) == 3
    assert index.complete_folds() == [3, 4, 5]
    with pytest.raises(DatasetError) as info:
        official_folds(index, [1, 2, 3, 4, 5], data_dir=str(esc50_root))
    message = str(info.value)
    assert "17 of 20 clips present" in message
    assert "complete folds: 3, 4, 5" in message
    assert "fold 1: 3/4" in message and "fold 2: 2/4" in message
    assert str(esc50_root) in message
    assert "--cv" in info.value.hint


def test_cross_validation_over_present_clips_is_non_official(esc50_root) -> None:
    for path in sorted((esc50_root / "audio").glob("1-*")):
        path.unlink()
    index = load_esc50(esc50_root)
    plan = cross_validation(index, 2, seed=0)
    assert not plan.official and "NON-OFFICIAL" in plan.description
    assert "16 clips present of 2000" in plan.description and "4 listed clips missing" in plan.description
    tested = np.sort(np.concatenate([s.test for s in plan.splits]))
    np.testing.assert_array_equal(tested, np.arange(16))


def test_missing_metadata_hints_at_download(tmp_path) -> None:
    with pytest.raises(DatasetError, match="esc50.csv") as info:
        load_esc50(tmp_path / "nothing-here")
    assert "--download" in info.value.hint
    assert "--data-dir" in info.value.hint


def test_download_into_the_cache(tmp_path, isolated_cache, monkeypatch) -> None:
    import functools
    import http.server
    import threading
    import zipfile

    from audiobench.datasets import esc50

    tree = tmp_path / "tree" / esc50.ARCHIVE_ROOT
    make_esc50(tree)
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "master.zip", "w") as archive:
        for path in sorted(tree.rglob("*")):
            archive.write(path, path.relative_to(tree.parent))
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(esc50, "ARCHIVE_URL", f"http://127.0.0.1:{httpd.server_address[1]}/master.zip")
        with pytest.raises(DatasetError):  # without --download nothing is fetched
            load_esc50()
        index = load_esc50(download=True)
        assert len(index.clips) == 20 and index.complete_folds() == [1, 2, 3, 4, 5]
        root = isolated_cache / "datasets" / esc50.ARCHIVE_ROOT
        assert all(root in clip.path.parents for clip in index.clips)
        assert not (isolated_cache / "datasets" / f"{esc50.ARCHIVE_ROOT}.unpacking").exists()
        assert len(load_esc50(download=True).clips) == 20  # already there: no second download
        assert len(requests) == 1
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_foreign_csv_is_rejected(tmp_path) -> None:
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("name,label\na.wav,1\n")
    with pytest.raises(DatasetError, match="missing column"):
        load_esc50(tmp_path)


def test_audio_32k_folder_is_accepted(esc50_root) -> None:
    (esc50_root / "audio").rename(esc50_root / "audio_32k")
    index = load_esc50(esc50_root)
    assert len(index.clips) == 20 and all(c.path.parent.name == "audio_32k" for c in index.clips)


def test_registry_finds_the_loader(esc50_root) -> None:
    from audiobench.registry import DATASETS

    assert len(DATASETS.get("esc50")(esc50_root, download=False).clips) == 20


def test_run_on_the_tiny_tree(esc50_root, tmp_path, monkeypatch) -> None:
    from audiobench import provenance
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)  # tests run no git
    record, path = run(RunOptions(task="esc50", model="logmel-stats", data_dir=esc50_root, device="cpu",
                                  num_workers=0, batch_size=8, output_dir=tmp_path / "results"))
    assert record["protocol"]["official"] is False  # not the official list of 2000 clips
    assert record["dataset"]["official_data"] is False and "20 of 2000 clips" in record["dataset"]["coverage"]
    assert list(record["metrics"]["accuracy"]["per_split"]) == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    assert record["dataset"]["clips"] == 20 and record["embeddings"]["computed"] == 20
    assert path.is_file() and path.name.startswith("esc50__logmel-stats__nonofficial__")


# --------------------------------------------------------------------------- the real partial copy


@pytest.fixture(scope="module")
def real_index():
    require(SHARED_ESC50 / "meta" / "esc50.csv")
    return load_esc50(SHARED_ESC50)


def test_real_partial_esc50(real_index) -> None:
    assert len(real_index.clips) == 414 and real_index.expected_total == 2000
    assert len(real_index.missing) == 2000 - 414
    assert real_index.complete_folds() == [4]
    assert len(real_index.classes) == 50 and real_index.classes[0] == "dog"
    assert real_index.present_per_fold()[4] == 400
    assert all(c.path.suffix == ".flac" for c in real_index.clips)


def test_real_partial_esc50_refuses_the_official_protocol(real_index) -> None:
    with pytest.raises(DatasetError) as info:
        official_folds(real_index, [1, 2, 3, 4, 5], data_dir=str(SHARED_ESC50))
    assert "414 of 2000 clips present" in str(info.value)
    assert "complete folds: 4 " in str(info.value)


def test_real_partial_esc50_cv_within_fold_4(real_index) -> None:
    from audiobench.datasets.base import DatasetIndex

    fold4 = DatasetIndex(name="esc50-fold4", classes=real_index.classes,
                         clips=[c for c in real_index.clips if c.fold == 4])
    plan = cross_validation(fold4, 5, seed=0)
    assert not plan.official and len(plan.splits) == 5
    for split in plan.splits:
        labels = np.array([fold4.clips[i].label for i in split.test])
        assert np.all(np.bincount(labels, minlength=50) >= 1)
