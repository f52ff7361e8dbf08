"""AudioSet loader on tiny trees in the official layouts (raw segment lists + audio, PaSST HDF5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared_material import SHARED, require
from audiobench.datasets.audioset import OFFICIAL_LIST, load_audioset
from audiobench.datasets.audioset_csv import read_class_list
from audiobench.errors import DatasetError

CLASS_CSV = SHARED / "models" / "efficientat" / "class_labels_indices.csv"
SPEECH, MUSIC, VEHICLE, TRAIN = "/m/09x0r", "/m/04rlf", "/m/07yv9", "/m/07jdr"
HEADER = ("# Segments csv created Sun Mar  5 10:54:25 2017\n"
          "# num_ytids={n}, num_segs={n}, num_unique_labels=527, num_positive_labels={n}\n"
          "# YTID, start_seconds, end_seconds, positive_labels\n")
RATE = 16000


def ytid(kind: str, i: int) -> str:
    """An 11-character YouTube-style id (some start with '-', as real ones do)."""
    return f"{'-' if i % 3 == 0 else 'a'}{kind}{i:03d}_xYzW-"[:11]


def segment_rows(kind: str, count: int) -> list[tuple[str, float, tuple[str, ...]]]:
    """(ytid, start, MIDs): alternating Speech/Music clips, every third one also Vehicle."""
    rows = []
    for i in range(count):
        mids = (SPEECH,) if i % 2 == 0 else (MUSIC,)
        rows.append((ytid(kind, i), 10.0 * (i % 4), mids + ((VEHICLE,) if i % 3 == 0 else ())))
    return rows


def write_segments(path: Path, rows) -> None:
    """An official segment list: 3 '#' lines, then `YTID, start, end, "MID,MID"` with spaces after commas."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f'{y}, {s:.3f}, {s + 10:.3f}, "{",".join(mids)}"\n' for y, s, mids in rows]
    path.write_text(HEADER.format(n=len(rows)) + "".join(lines))


def tone(mids: tuple[str, ...], seed: int) -> np.ndarray:
    """Speech clips a low tone, others a high one, Vehicle adds a hum; one eval clip (seed 'e' * 100 + 1)
    sounds like Speech while labelled Music, so no score separates the classes perfectly (AUC < 1)."""
    if seed == 100 * ord("e") + 1:
        mids = (SPEECH,)
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.5 * RATE)) / RATE
    signal = 0.05 * rng.standard_normal(t.size)
    signal += 0.3 * np.sin(2 * np.pi * (300 if SPEECH in mids else 2000) * t)
    if VEHICLE in mids:
        signal += 0.3 * np.sin(2 * np.pi * 80 * t)
    return signal.astype(np.float32)


def make_raw(root: Path, n_train: int = 8, n_eval: int = 8, absent_eval: tuple[int, ...] = (),
             unbalanced: int = 0) -> dict[str, list]:
    """The raw layout: csvs in ``metadata/`` (PANNs) and audio under ``audios/<list>/`` in several namings."""
    (root / "metadata").mkdir(parents=True)
    shutil.copy(require(CLASS_CSV), root / "metadata" / "class_labels_indices.csv")
    lists = {"balanced_train_segments": segment_rows("b", n_train), "eval_segments": segment_rows("e", n_eval),
             "unbalanced_train_segments": segment_rows("u", unbalanced)}
    for name, rows in lists.items():
        if rows or name != "unbalanced_train_segments":
            write_segments(root / "metadata" / f"{name}.csv", rows)
    for name, rows in lists.items():
        for i, (y, start, mids) in enumerate(rows):
            if name == "eval_segments" and i in absent_eval:
                continue
            naming = i % 3  # PANNs Y<id>.wav / DCASE Y<id>_<start>_<end>.wav / flat <id>_<start>_<end>.flac
            folder = root / "audios" / name / ("unbalanced_train_segments_part00" if name[0] == "u" else "")
            if naming == 0:
                path = folder / f"Y{y}.wav"
            elif naming == 1:
                path = folder / f"Y{y}_{start:.3f}_{start + 10:.3f}.wav"
            else:
                path = root / "audio" / f"{y}_{start:.3f}_{start + 10:.3f}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(mids, i + 100 * ord(name[0])), RATE)
    return lists


# --------------------------------------------------------------------------- raw layout


def test_raw_layout_index(tmp_path) -> None:
    root = tmp_path / "audioset"
    lists = make_raw(root)
    index = load_audioset(root)
    classes = read_class_list(CLASS_CSV)
    assert index.classes == classes.names and len(index.classes) == 527 and index.multilabel
    assert index.layout == "raw" and index.clip_seconds == 10.0 and index.missing == []
    by_id = {clip.clip_id: clip for clip in index.clips}
    assert len(by_id) == 16
    mids = classes.index_of()
    for name, split in (("balanced_train_segments", "train"), ("eval_segments", "test")):
        for y, _, labels in lists[name]:
            clip = by_id[y]
            assert clip.split == split and clip.path.is_file() and clip.duration == 10.0
            assert clip.label == tuple(sorted(mids[m] for m in labels))
    assert by_id[ytid("e", 0)].label == (0, 300)  # Speech + Vehicle: quoted comma-joined MIDs
    coverage = index.coverage()
    assert not coverage.official and coverage.present == 8 and coverage.expected == OFFICIAL_LIST.total == 20371
    assert coverage.summary().startswith("8 of 20371 clips; not the official data")
    manifest = index.manifest()
    assert manifest["eval_clips"] == 8 and manifest["train_clips"] == 8 and manifest["train_missing_count"] == 0
    assert manifest["eval_listed"] == 8 and manifest["official_data"] is False


def test_missing_and_empty_clips_are_counted(tmp_path) -> None:
    root = tmp_path / "audioset"
    lists = make_raw(root, absent_eval=(1, 4))
    empty = root / "audio" / f"{ytid('e', 2)}_20.000_30.000.flac"  # eval clip 2 (flat naming): emptied
    empty.write_bytes(b"")
    (root / "audios" / "balanced_train_segments" / f"Y{ytid('b', 0)}.wav").unlink()
    index = load_audioset(root)
    assert sorted(index.missing) == sorted(lists["eval_segments"][i][0] for i in (1, 2, 4))
    coverage = index.coverage()
    assert coverage.present == 5 and "3 listed eval clip(s) have no audio" in coverage.summary()
    assert index.manifest()["train_missing_count"] == 1 and index.manifest()["train_clips"] == 7


def test_start_time_in_the_name_must_match(tmp_path) -> None:
    root = tmp_path / "audioset"
    make_raw(root)
    clip = root / "audios" / "eval_segments" / f"Y{ytid('e', 1)}_10.000_20.000.wav"
    clip.rename(clip.with_name(f"Y{ytid('e', 1)}_50.000_60.000.wav"))  # another segment of the same video
    assert load_audioset(root).missing == [ytid("e", 1)]


def test_full_train_adds_the_unbalanced_list(tmp_path) -> None:
    root = tmp_path / "audioset"
    make_raw(root, unbalanced=5)
    balanced, full = load_audioset(root), load_audioset(root, train="full")
    assert len(full.clips) == len(balanced.clips) + 5
    assert {c.split for c in full.clips if c.clip_id.startswith(("au", "-u"))} == {"train"}
    assert full.manifest()["train_listed"] == 13
    (root / "metadata" / "balanced_train_segments.csv").unlink()
    eval_only = load_audioset(root, train="none")  # e.g. for scoring a pretrained head on the eval list
    assert {c.split for c in eval_only.clips} == {"test"} and len(eval_only.clips) == 8


def test_class_list_from_the_label_cache(tmp_path, isolated_cache) -> None:
    root = tmp_path / "audioset"
    make_raw(root)
    (root / "metadata" / "class_labels_indices.csv").rename(isolated_cache / "elsewhere.csv")
    with pytest.raises(DatasetError, match="class_labels_indices.csv not found"):
        load_audioset(root)
    (isolated_cache / "labels").mkdir(exist_ok=True)
    (isolated_cache / "elsewhere.csv").rename(isolated_cache / "labels" / "audioset_class_labels_indices.csv")
    assert len(load_audioset(root).classes) == 527


@pytest.mark.parametrize("line, message", [
    ('{id}, 0.000, 10.000, "/m/nonexistent"\n', r"row 4, column 'positive_labels': unknown MID\(s\) /m/nonexistent"),
    ("{id}, 0.000, 10.000, /m/09x0r, /m/04rlf\n", r"row 4: 5 field\(s\), expected 4"),
    ('tooshort, 0.000, 10.000, "/m/09x0r"\n', r"row 4, column 'YTID': 'tooshort' is not a YouTube id"),
    ('{id}, x, 10.000, "/m/09x0r"\n', r"row 4, column 'start_seconds': 'x' is not a time"),
    ('{id}, 10.000, 10.000, "/m/09x0r"\n', r"row 4, column 'end_seconds'"),
    ('{id}, 0.000, 10.000, ""\n', r"row 4, column 'positive_labels' is empty"),
])
def test_bad_segment_rows_name_file_row_and_column(tmp_path, line, message) -> None:
    root = tmp_path / "audioset"
    make_raw(root)
    path = root / "metadata" / "eval_segments.csv"
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[:3]) + line.format(id="ZZZZZZZZZZZ") + "".join(text[3:]))
    with pytest.raises(DatasetError, match=f"eval_segments.csv, {message}"):
        load_audioset(root)


def test_bad_input(tmp_path) -> None:
    root = tmp_path / "audioset"
    make_raw(root)
    with pytest.raises(DatasetError, match="train='half'"):
        load_audioset(root, train="half")
    with pytest.raises(DatasetError, match="layout='zip'"):
        load_audioset(root, layout="zip")
    with pytest.raises(DatasetError, match="does not exist"):
        load_audioset(tmp_path / "nowhere", download=True)
    balanced = root / "metadata" / "balanced_train_segments.csv"
    rows = balanced.read_text()
    balanced.write_text(rows + f'{ytid("e", 3)}, 0.000, 10.000, "{SPEECH}"\n')  # an eval clip also in train
    with pytest.raises(DatasetError, match="list the same clip"):
        load_audioset(root)
    balanced.unlink()
    with pytest.raises(DatasetError, match="balanced_train_segments.csv not found"):
        load_audioset(root)


def test_bad_class_list(tmp_path) -> None:
    root = tmp_path / "audioset"
    make_raw(root)
    path = root / "metadata" / "class_labels_indices.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3] + [lines[2]] + lines[4:]))  # index 1 listed twice
    with pytest.raises(DatasetError, match="class_labels_indices.csv, row 4: index 1 is listed twice"):
        load_audioset(root)


def test_task_card() -> None:
    from audiobench.tasks import get_task

    card = get_task("audioset")
    assert card.label_type == "multilabel" and card.metric == "mAP" and card.clip_seconds == 10.0
    assert card.split_names("train") == ["train"] and card.split_names("test") == ["test"]
    assert card.dataset_options["train"] == "balanced"


def test_run_end_to_end_and_rescore(tmp_path, monkeypatch) -> None:
    from audiobench import provenance
    from audiobench.report.rescore import rescore
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)
    root = tmp_path / "audioset"
    make_raw(root, n_train=12, n_eval=9, absent_eval=(8,))
    record, path = run(RunOptions(task="audioset", model="logmel-stats", data_dir=root, device="cpu",
                                  num_workers=0, batch_size=8, output_dir=tmp_path / "results"))
    assert record["protocol"]["official"] is False and "NON-OFFICIAL" in record["protocol"]["splits"]
    dataset = record["dataset"]
    assert dataset["official_data"] is False and dataset["coverage"].startswith("8 of 20371 clips")
    assert dataset["missing"] == [ytid("e", 8)] and dataset["train_clips"] == 12
    assert list(record["metrics"]["mAP"]["per_split"]) == ["test"]
    assert 0.0 < record["metrics"]["mAP"]["mean"] <= 1.0
    assert rescore(path)["identical"] is True


# --------------------------------------------------------------------------- PaSST HDF5 layout


def mp3_bytes(mids: tuple[str, ...], seed: int) -> bytes:
    """A short clip encoded as mp3 by libsndfile (skips where libsndfile cannot write mp3)."""
    import io

    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write mp3 (needs 1.1.0+ built with lame)")
    buffer = io.BytesIO()
    sf.write(buffer, tone(mids, seed), RATE, format="MP3")
    return buffer.getvalue()


def make_hdf5(root: Path, with_eval_csv: bool = True) -> dict[str, list]:
    """PaSST files (eval under EAT's misspelt name, in ``mp3/``): eval rows 0-5 packed, row 5 without bytes;
    the eval csv lists 8 rows; class list in the folder itself."""
    h5py = pytest.importorskip("h5py", reason="h5py is not installed (the HDF5 layout needs it)")
    root.mkdir(parents=True)
    shutil.copy(require(CLASS_CSV), root / "class_labels_indices.csv")
    mids = read_class_list(CLASS_CSV).index_of()
    lists = {"balanced_train_segments": segment_rows("b", 8), "eval_segments": segment_rows("e", 8)}
    if with_eval_csv:
        write_segments(root / "eval_segments.csv", lists["eval_segments"])
    for name, rows in lists.items():
        packed_rows = rows[:6] if name == "eval_segments" else rows
        hot = np.zeros((len(packed_rows), 527), dtype=np.uint8)
        for i, (_, _, labels) in enumerate(packed_rows):
            hot[i, [mids[m] for m in labels]] = 1
        file_name = f"{name.replace('_segments', '_segmenets') if name[0] == 'e' else name}_mp3.hdf"
        (root / "mp3").mkdir(exist_ok=True)
        with h5py.File(root / "mp3" / file_name, "w") as handle:
            handle.create_dataset("audio_name", data=np.array([f"Y{y}.mp3".encode() for y, _, _ in packed_rows],
                                                              dtype="S20"))
            column = handle.create_dataset("mp3", shape=(len(packed_rows),), dtype=h5py.vlen_dtype(np.uint8))
            for i, (_, _, labels) in enumerate(packed_rows):
                data = b"" if (name[0] == "e" and i == 5) else mp3_bytes(labels, i + 100 * ord(name[0]))
                column[i] = np.frombuffer(data, dtype=np.uint8)
            handle.create_dataset("target", data=np.packbits(hot, axis=-1))
    return lists


def test_hdf5_layout_index(tmp_path) -> None:
    root = tmp_path / "audioset"
    lists = make_hdf5(root)
    index = load_audioset(root)  # auto: the HDF5 files win
    assert index.layout == "hdf5" and len(index.classes) == 527
    eval_ids = [y for y, _, _ in lists["eval_segments"]]
    assert sorted(index.missing) == sorted(eval_ids[5:])  # row 5 has no bytes; rows 6-7 are not in the file
    by_id = {clip.clip_id: clip for clip in index.clips}
    assert by_id[eval_ids[0]].label == (0, 300) and by_id[eval_ids[0]].path.suffix == ".mp3"
    assert by_id[eval_ids[0]].path.is_file() and by_id[eval_ids[0]].split == "test"
    coverage = index.coverage()
    assert coverage.present == 5 and coverage.summary().startswith("5 of 20371 clips; not the official data")
    assert "3 listed eval clip(s) have no audio" in coverage.summary()
    (root / "eval_segments.csv").unlink()
    without_csv = load_audioset(root, layout="hdf5").coverage()
    assert without_csv.missing == [eval_ids[5]] and "no eval_segments.csv" in without_csv.summary()
    with pytest.raises(DatasetError, match="unbalanced_train_segments_mp3.hdf not found"):
        load_audioset(root, train="full")


def test_hdf5_run_end_to_end(tmp_path, monkeypatch) -> None:
    from audiobench import provenance
    from audiobench.report.rescore import rescore
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)
    root = tmp_path / "audioset"
    make_hdf5(root)
    record, path = run(RunOptions(task="audioset", model="logmel-stats", data_dir=root, device="cpu",
                                  num_workers=0, batch_size=8, output_dir=tmp_path / "results"))
    assert record["dataset"]["layout"] == "hdf5" and record["dataset"]["coverage"].startswith("5 of 20371")
    assert record["protocol"]["official"] is False and rescore(path)["identical"] is True


# --------------------------------------------------------------------------- real recordings, real mn04


def test_real_recordings_with_mn04(tmp_path, monkeypatch) -> None:
    """The real TAU22 metro clip (+ real ESC-50 dog/rain clips) as AudioSet clips, embedded by the released
    mn04_as; its 527-class head, read in the index's class order, puts Train first on the metro clip."""
    import torch
    import soxr

    from shared_material import ESC50, METRO_WAV, MN04
    from audiobench import provenance
    from audiobench.audio import load_audio
    from audiobench.models.loading import load_model
    from audiobench.report.rescore import rescore
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)
    root = tmp_path / "audioset"
    (root / "metadata").mkdir(parents=True)
    shutil.copy(require(CLASS_CSV), root / "metadata" / "class_labels_indices.csv")
    metro, rate = sf.read(require(METRO_WAV), dtype="float32")
    metro = soxr.resample(metro if metro.ndim == 1 else metro.mean(axis=1), rate, 32000)
    sources = [("metro00full", metro, (TRAIN, "/m/06d_3", VEHICLE), "eval_segments")]
    sources += [(f"metro0half{h}", metro[h * 160000:(h + 1) * 160000], (TRAIN, VEHICLE), "balanced_train_segments")
                for h in (0, 1)]
    for category, mids in (("4-1", ("/m/0bt9lr",)), ("4-2", ("/m/06mb1",))):  # fold-4 dog (0) and rain (10)
        target = "0" if category == "4-1" else "10"
        files = sorted(p for p in require(ESC50 / "audio").iterdir() if p.stem.startswith("4-")
                       and p.stem.endswith(f"-{target}"))[:4]
        for i, path in enumerate(files):
            audio, esc_rate = sf.read(path, dtype="float32")
            name = "eval_segments" if i % 2 else "balanced_train_segments"
            sources.append((f"esc{int(target):02d}{i}_clip", soxr.resample(audio, esc_rate, 32000), mids, name))
    lists: dict[str, list] = {"balanced_train_segments": [], "eval_segments": [("gone_video1", 0.0, (SPEECH,))]}
    for y, audio, mids, name in sources:
        lists[name].append((y, 0.0, mids))
        (root / "audios" / name).mkdir(parents=True, exist_ok=True)
        sf.write(root / "audios" / name / f"Y{y}.wav", audio, 32000, subtype="PCM_16")
    for name, rows in lists.items():
        write_segments(root / "metadata" / f"{name}.csv", rows)

    record, path = run(RunOptions(task="audioset", model="mn04", checkpoint=require(MN04), data_dir=root,
                                  device="cpu", num_workers=0, batch_size=4, output_dir=tmp_path / "results"))
    assert record["dataset"]["coverage"].startswith("5 of 20371 clips; not the official data")
    assert record["dataset"]["missing"] == ["gone_video1"] and record["protocol"]["official"] is False
    assert 0.0 < record["metrics"]["mAP"]["mean"] <= 1.0 and rescore(path)["identical"] is True

    index = load_audioset(root)
    model = load_model("mn04", checkpoint=MN04, pretrained=True)
    clip = next(c for c in index.clips if c.clip_id == "metro00full")
    with torch.inference_mode():
        head = model.clip_probabilities(torch.from_numpy(load_audio(clip.path, 32000))).float().numpy()
    assert index.classes[int(head.argmax())] == "Train" and abs(float(head.max()) - 0.727) < 0.01  # shared README


def test_a_clip_that_does_not_decode_counts_as_missing(tmp_path) -> None:
    from audiobench.datasets.audioset import decodes

    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(1600, dtype=np.float32), 16000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really audio")
    assert decodes(good) and not decodes(broken)
