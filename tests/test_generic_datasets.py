"""The generic dataset layouts (``audiofolder``, ``csv``): a new task is one task card.

The example cards are read from docs/tasks.md ("Adding a task"), so the documentation's cards are the ones
run here end to end, on generated trees in each layout.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.datasets.generic import load_audiofolder, load_csv
from audiobench.errors import AudiobenchError, DatasetError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "tasks.md"
RATE = 16000
TONES = {"bird": 1760.0, "car": 220.0, "dog": 550.0}  # one tone per class: any embedding separates them


def tone(labels: list[str], seed: int, seconds: float = 0.5) -> np.ndarray:
    """A short mixture of the classes' tones, slightly detuned per clip, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    signal = sum(np.sin(2 * np.pi * TONES[label] * (1 + 0.02 * rng.standard_normal()) * t) for label in labels)
    return (0.2 * np.asarray(signal) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_audio(path: Path, signal: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    kinds = {".ogg": ("OGG", "VORBIS"), ".flac": ("FLAC", "PCM_16"), ".wav": ("WAV", "PCM_16")}
    file_format, subtype = kinds[path.suffix]
    sf.write(path, signal, RATE, format=file_format, subtype=subtype)


def make_audiofolder(root: Path, per_split: dict[str | None, int], mixed_formats: bool = False) -> None:
    """``<root>[/<split>]/<class>/<nnn>.wav`` with ``per_split[split]`` clips per class (split None: no level)."""
    seed = 0
    for split, count in per_split.items():
        for label in TONES:
            for number in range(count):
                seed += 1
                suffix = (".wav", ".flac", ".ogg")[seed % 3] if mixed_formats else ".wav"
                folder = root / label if split is None else root / split / label
                write_audio(folder / f"{number:03d}{suffix}", tone([label], seed))


def doc_cards() -> dict[str, str]:
    """The example cards (yaml blocks) of the "Adding a task" section of docs/tasks.md, by task name."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("\n## Adding a task", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    return {re.search(r"^name: (\S+)", block, flags=re.M).group(1): block for block in blocks}


@pytest.fixture
def cards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The documentation's cards, installed through ``AUDIOBENCH_TASKS_PATH``."""
    from audiobench import provenance

    folder = tmp_path / "cards"
    folder.mkdir()
    found = doc_cards()
    for name, block in found.items():
        (folder / f"{name}.yaml").write_text(block, encoding="utf-8")
    monkeypatch.setenv("AUDIOBENCH_TASKS_PATH", str(folder))
    monkeypatch.setattr(provenance, "git_revision", lambda *args, **kwargs: None)
    return found


def run_task(task: str, data_dir: Path, out: Path, cv: int | None = None) -> dict:
    """``audiobench run`` with logmel-stats; the record must rescore identically."""
    from audiobench.report.rescore import rescore
    from audiobench.runner import RunOptions, run

    record, path = run(RunOptions(task=task, model="logmel-stats", data_dir=data_dir, device="cpu", num_workers=0,
                                  output_dir=out, cv=cv))
    assert rescore(path)["identical"] is True
    return record


def test_doc_cards_are_short_and_valid(cards: dict[str, str]) -> None:
    from audiobench.tasks import get_task

    assert {"my-sounds", "my-sounds-splits", "my-sounds-cv", "my-tags", "my-labels"} <= set(cards)
    for name, block in cards.items():
        assert len(block.strip().splitlines()) <= 30, name
        assert get_task(name).dataset in ("audiofolder", "csv")


# --- audiofolder -------------------------------------------------------------------------------------------------

def test_fold_folders_end_to_end(tmp_path: Path, cards) -> None:
    make_audiofolder(tmp_path / "data", {f"fold{k}": 2 for k in range(1, 6)}, mixed_formats=True)
    index = load_audiofolder(tmp_path / "data", name="my-sounds")
    assert index.classes == sorted(TONES) and len(index.clips) == 30
    assert index.expected_per_fold == {k: 6 for k in range(1, 6)} and {c.split for c in index.clips} == {None}
    assert {c.path.suffix for c in index.clips} == {".wav", ".flac", ".ogg"}
    assert index.clips[0].clip_id == "fold1/bird/000" and index.clips[0].label == 0
    record = run_task("my-sounds", tmp_path / "data", tmp_path / "out")
    assert record["dataset"]["dataset"] == "my-sounds" and record["dataset"]["clips"] == 30
    assert record["protocol"]["official"] is False  # no official list pinned
    assert "defines no official clip list" in record["dataset"]["coverage"]
    assert set(record["metrics"]["accuracy"]["per_split"]) == {f"fold{k}" for k in range(1, 6)}
    assert record["metrics"]["accuracy"]["mean"] > 0.9


def test_split_folders_with_pinned_official_list(tmp_path: Path, cards) -> None:
    make_audiofolder(tmp_path / "data", {"train": 4, "valid": 2, "test": 2})
    index = load_audiofolder(tmp_path / "data")
    assert index.name == "audiofolder" and {c.split for c in index.clips} == {"train", "valid", "test"}
    assert all(c.fold is None for c in index.clips)
    record = run_task("my-sounds-splits", tmp_path / "data", tmp_path / "out")
    assert record["protocol"]["official"] is True, record["dataset"]["coverage"]  # the docs card pins this tree
    assert record["dataset"]["official_data"] is True and record["dataset"]["coverage"] == "24 of 24 clips"
    assert set(record["metrics"]["accuracy"]["per_split"]) == {"test"}
    assert record["metrics"]["class-macro-accuracy"]["mean"] > 0.9
    # one clip fewer: the same card runs, labelled non-official
    next((tmp_path / "data" / "test" / "dog").iterdir()).unlink()
    record = run_task("my-sounds-splits", tmp_path / "data", tmp_path / "out2")
    assert record["protocol"]["official"] is False and "is not the official list" in record["dataset"]["coverage"]


def test_wav_to_flac_keeps_the_list_hash(tmp_path: Path) -> None:
    make_audiofolder(tmp_path / "a", {"train": 2, "test": 1})
    make_audiofolder(tmp_path / "b", {"train": 2, "test": 1}, mixed_formats=True)
    assert load_audiofolder(tmp_path / "a").listed_sha256 == load_audiofolder(tmp_path / "b").listed_sha256


def test_no_splits_with_cross_validation(tmp_path: Path, cards) -> None:
    make_audiofolder(tmp_path / "data", {None: 6})
    (tmp_path / "data" / ".DS_Store").write_bytes(b"\0")  # hidden entries and other files are ignored
    (tmp_path / "data" / ".cache").mkdir()
    (tmp_path / "data" / "README.txt").write_text("my sounds")
    (tmp_path / "data" / "dog" / "notes.txt").write_text("recorded in 2024")
    index = load_audiofolder(tmp_path / "data")
    assert index.classes == ["bird", "car", "dog"] and len(index.clips) == 18
    assert all(c.fold is None and c.split is None for c in index.clips)
    record = run_task("my-sounds-cv", tmp_path / "data", tmp_path / "out", cv=3)
    assert record["protocol"]["official"] is False and "cross-validation" in record["protocol"]["splits"]
    assert record["metrics"]["accuracy"]["mean"] > 0.9


def test_no_splits_without_cv_is_refused(tmp_path: Path, cards) -> None:
    make_audiofolder(tmp_path / "data", {None: 3})
    with pytest.raises(AudiobenchError, match="lists no folds") as info:
        run_task("my-sounds-cv", tmp_path / "data", tmp_path / "out")
    assert "--cv" in info.value.hint


def test_class_order_is_sorted_folder_names(tmp_path: Path) -> None:
    for label in ("zebra", "Ant", "bee"):
        write_audio(tmp_path / label / "1.wav", tone(["dog"], 1, 0.1))
    index = load_audiofolder(tmp_path)
    assert index.classes == ["Ant", "bee", "zebra"]  # code point order: upper case first
    assert [c.label for c in index.clips] == [0, 1, 2]


def test_splits_option_reads_only_the_named_folders(tmp_path: Path) -> None:
    make_audiofolder(tmp_path, {"train": 1, "test": 1, "extra": 1})
    index = load_audiofolder(tmp_path, splits=["train", "test"])
    assert {c.split for c in index.clips} == {"train", "test"}
    with pytest.raises(DatasetError, match=r"Split folder .*valid .*does not exist"):
        load_audiofolder(tmp_path, splits=["train", "valid"])


def test_root_is_relative_to_the_data_dir(tmp_path: Path) -> None:
    make_audiofolder(tmp_path / "release" / "audio", {None: 1})
    assert len(load_audiofolder(tmp_path, root="release/audio").clips) == 3


@pytest.mark.parametrize("build, message", [
    (lambda r: write_audio(r / "stray.wav", tone(["dog"], 1, 0.1)), r"stray\.wav lies directly in"),
    (lambda r: (r / "cat").mkdir(), r"Class folder .*cat holds no audio file"),
    (lambda r: write_audio(r / "dog" / "deeper" / "x.wav", tone(["dog"], 1, 0.1)),
     r"mixes layouts: .*dog holds class folders"),
    (lambda r: write_audio(r / "dog" / "000.flac", tone(["dog"], 1, 0.1)), r"same clip 'dog/000' twice"),
])
def test_bad_class_trees(tmp_path: Path, build, message: str) -> None:
    make_audiofolder(tmp_path, {None: 1})
    build(tmp_path)
    with pytest.raises(DatasetError, match=message) as error:
        load_audiofolder(tmp_path)
    assert str(tmp_path) in str(error.value) and error.value.hint


@pytest.mark.parametrize("build, message", [
    (lambda r: __import__("shutil").rmtree(r / "test" / "car"), r"test lacks the class folder\(s\) car"),
    (lambda r: write_audio(r / "test" / "cow" / "1.wav", tone(["dog"], 1, 0.1)),
     r"train lacks the class folder\(s\) cow \(cow is in .*test\)"),
    (lambda r: write_audio(r / "train" / "dog" / "deeper" / "x.wav", tone(["dog"], 1, 0.1)),
     r"deeper is a folder inside the class folder"),
    (lambda r: write_audio(r / "dog" / "1.wav", tone(["dog"], 1, 0.1)), r"mixes layouts: .*dog holds audio"),
    (lambda r: write_audio(r / "test" / "x.wav", tone(["dog"], 1, 0.1)), r"x\.wav lies directly in .*test"),
    (lambda r: write_audio(r / "fold1" / "dog" / "1.wav", tone(["dog"], 1, 0.1)), r"mixes fold folders"),
])
def test_bad_split_trees(tmp_path: Path, build, message: str) -> None:
    make_audiofolder(tmp_path, {"train": 1, "test": 1})
    build(tmp_path)
    with pytest.raises(DatasetError, match=message) as error:
        load_audiofolder(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_fold_numbers_must_differ(tmp_path: Path) -> None:
    make_audiofolder(tmp_path, {"fold1": 1, "fold01": 1})
    with pytest.raises(DatasetError, match="are both fold 1"):
        load_audiofolder(tmp_path)


@pytest.mark.parametrize("official, message", [
    ({"sha256": "0" * 64}, "at least 'clips'"), ({"clips": 0}, "positive whole number"),
    ({"clips": 3, "sha256": "ABC"}, "64 lowercase hex"), ({"clips": 3, "hash": "x"}, "unknown key"),
])
def test_bad_official_option(tmp_path: Path, official: dict, message: str) -> None:
    make_audiofolder(tmp_path, {None: 1})
    with pytest.raises(DatasetError, match=message):
        load_audiofolder(tmp_path, official=official)


def test_count_only_official_list(tmp_path: Path) -> None:
    make_audiofolder(tmp_path, {None: 1})
    assert load_audiofolder(tmp_path, official={"clips": 3}).coverage().official is True
    summary = load_audiofolder(tmp_path, official={"clips": 4}).coverage().summary()
    assert "lists 3 clips, the official list has 4" in summary


def test_no_data_and_no_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_audiofolder(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"datasets/my-sounds.*does not exist"):
        load_audiofolder(name="my-sounds")  # the cache's datasets/<name>
    with pytest.raises(DatasetError, match="--download is not supported"):
        load_audiofolder(tmp_path, download=True)
    with pytest.raises(DatasetError, match="--download is not supported"):
        load_csv(tmp_path, download=True)


# --- csv ---------------------------------------------------------------------------------------------------------

def write_table(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


TAG_SETS = [["bird"], ["car"], ["dog"], ["bird", "car"], ["car", "dog"], ["bird", "dog"]]


def make_tagged(root: Path, clips: int = 36) -> list[dict[str, str]]:
    """``meta.tsv`` (file, tags, split, device) + ``clips/<file>``: multi-label, train/eval, two devices."""
    rows = []
    for number in range(clips):
        tags = TAG_SETS[number % len(TAG_SETS)]
        file = f"{number:03d}.wav"
        write_audio(root / "clips" / file, tone(tags, number))
        rows.append({"file": file, "tags": ";".join(tags), "split": "eval" if number % 3 == 0 else "train",
                     "device": "phone-a" if number % 2 else "phone-b"})
    write_table(root / "meta.tsv", rows, "\t")
    return rows


def make_labelled(root: Path) -> list[dict[str, str]]:
    """``meta/labels.csv`` (filename, category, fold) + ``audio/<filename>``: 5 folds x 3 classes x 2 clips."""
    rows = []
    for number in range(30):
        label, fold = sorted(TONES)[number % 3], number // 6 + 1
        file = f"{fold}-{number:03d}.wav"
        write_audio(root / "audio" / (file if number % 4 else file.replace(".wav", ".flac")), tone([label], number))
        rows.append({"filename": file, "category": label, "fold": str(fold)})
    write_table(root / "meta" / "labels.csv", rows)
    return rows


def test_multilabel_csv_end_to_end(tmp_path: Path, cards) -> None:
    make_tagged(tmp_path / "data")
    index = load_csv(tmp_path / "data", metadata="meta.tsv", delimiter="tab", audio="clips", file_column="file",
                     label_column="tags", label_separator=";", split_column="split", group_column="device")
    assert index.multilabel and index.classes == ["bird", "car", "dog"]
    assert index.clips[3].label == (0, 1) and index.clips[3].group == "phone-a" and index.clips[0].split == "eval"
    record = run_task("my-tags", tmp_path / "data", tmp_path / "out")
    assert record["dataset"]["dataset"] == "my-tags" and record["protocol"]["official"] is False
    assert record["metrics"]["mAP"]["mean"] > 0.9
    assert {"mAP@group=phone-a", "mAP@group=phone-b"} <= set(record["metrics"])


def test_single_label_csv_with_folds_and_class_order(tmp_path: Path, cards) -> None:
    make_labelled(tmp_path / "data")
    record = run_task("my-labels", tmp_path / "data", tmp_path / "out")
    assert record["protocol"]["official"] is True  # the card pins the count (30) and every clip is present
    assert record["metrics"]["accuracy"]["mean"] > 0.9
    index = load_csv(tmp_path / "data", metadata="meta/labels.csv", label_column="category", fold_column="fold",
                     classes=["dog", "bird", "car"], official={"clips": 30})
    assert index.classes == ["dog", "bird", "car"] and index.clips[0].label == 1  # bird: the card's order
    assert index.expected_per_fold == {k: 6 for k in range(1, 6)}
    assert {c.path.suffix for c in index.clips} == {".wav", ".flac"} and index.clips[0].clip_id == "1-000.wav"
    # a missing file is listed as missing, not an error; the data is then not official
    (tmp_path / "data" / "audio" / "1-001.wav").unlink()
    index = load_csv(tmp_path / "data", metadata="meta/labels.csv", label_column="category", fold_column="fold",
                     official={"clips": 30})
    assert index.missing == ["1-001.wav"] and len(index.clips) == 29
    assert index.coverage().official is False and "1 listed clip(s) have no audio file" in index.coverage().summary()
    assert index.classes == ["bird", "car", "dog"]  # default: sorted names


@pytest.mark.parametrize("change, options, message", [
    (lambda rows: rows[2].update(category=""), {}, r"labels\.csv, row 4, column 'category' is empty"),
    (lambda rows: rows[2].update(fold="two"), {}, r"row 4, column 'fold': 'two' is not an integer"),
    (lambda rows: rows[5].update(filename=rows[1]["filename"].replace(".wav", ".flac")), {},
     r"row 3 and row 7 list the same clip"),
    (lambda rows: rows[4].update(category="cow"), {"classes": ["bird", "car", "dog"]},
     r"row 6, column 'category': 'cow' is not one of the classes"),
    (lambda rows: None, {"label_column": "target"}, r"row 1 \(header\): missing column\(s\) 'target'"),
    (lambda rows: None, {"split_column": "split"}, "both fold_column and split_column"),
    (lambda rows: None, {"delimiter": ";;"}, "must be one character"),
    (lambda rows: None, {"audio": "wav"}, r"Audio folder .*wav of 'csv' not found"),
    (lambda rows: None, {"metadata": "meta/other.csv"}, r"Metadata table .*other\.csv of 'csv' not found"),
    (lambda rows: None, {"classes": ["dog", "dog"]}, "lists 'dog' twice"),
])
def test_bad_tables(tmp_path: Path, change, options: dict, message: str) -> None:
    rows = make_labelled(tmp_path)
    change(rows)
    write_table(tmp_path / "meta" / "labels.csv", rows)
    settings = {"metadata": "meta/labels.csv", "label_column": "category", "fold_column": "fold", **options}
    with pytest.raises(DatasetError, match=message) as error:
        load_csv(tmp_path, **settings)
    assert error.value.hint


def test_multilabel_row_without_tags_is_a_negative_clip(tmp_path: Path) -> None:
    rows = make_tagged(tmp_path, clips=6)
    rows[0]["tags"] = ""
    write_table(tmp_path / "meta.tsv", rows, "\t")
    index = load_csv(tmp_path, metadata="meta.tsv", delimiter="\t", audio="clips", file_column="file",
                     label_column="tags", label_separator=";")
    assert index.clips[0].label == () and index.targets()[0].sum() == 0


def test_every_audio_extension_is_indexed_and_decodes(tmp_path: Path) -> None:
    signal = tone(["dog"], 1, 0.2)
    write_audio(tmp_path / "dog" / "a.wav", signal)
    write_audio(tmp_path / "dog" / "b.flac", signal)
    write_audio(tmp_path / "dog" / "c.ogg", signal)
    sf.write(tmp_path / "dog" / "d.aiff", signal, RATE, format="AIFF", subtype="PCM_16")
    try:
        sf.write(tmp_path / "dog" / "e.mp3", signal, RATE, format="MP3", subtype="MPEG_LAYER_III")
    except (sf.LibsndfileError, ValueError, TypeError):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write mp3")
    index = load_audiofolder(tmp_path)
    assert [c.path.suffix for c in index.clips] == [".wav", ".flac", ".ogg", ".aiff", ".mp3"]
    for clip in index.clips:
        assert sf.info(clip.path).samplerate == RATE and sf.read(clip.path)[0].size > 0
