"""DESED loader and the DESED-layout soundscape generator (the events pipeline is tested in test_events_*)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.datasets.desed import CLASSES, OFFICIAL_TEST, layout_paths, load_desed
from audiobench.datasets.soundscapes import MIN_EVENT_S, make_desed_copy
from audiobench.errors import AudiobenchError, DatasetError
from audiobench.tasks import parse_card, read_card_file
from shared_material import SHARED, require

DESED_SHARED = SHARED / "data" / "desed"
CARD = Path(__file__).resolve().parents[1] / "tasks" / "desed.yaml"


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_generated_copy_loads_with_its_events(tmp_path) -> None:
    info = make_desed_copy(tmp_path, clips_train=12, clips_valid=5, seconds=4.0, seed=3)
    assert (tmp_path / "audio/train/synthetic21_train/soundscapes_16k/0.wav").is_file()
    assert (tmp_path / "metadata/validation/validation_durations.tsv").is_file()
    index = load_desed(tmp_path)
    assert index.classes == list(CLASSES) and index.clip_seconds == 10.0
    by_id = {clip.clip_id: clip for clip in index.clips}
    assert sorted(c.split for c in index.clips) == ["test"] * 5 + ["train"] * 12
    for split, prefix in (("train", "synthetic21_train/"), ("test", "")):
        for name, events in info[split].items():
            clip = by_id[prefix + name]
            assert clip.split == split and clip.duration == pytest.approx(4.0)
            assert clip.events == tuple(sorted(events))
            assert clip.label == tuple(sorted({e[2] for e in events}))
            assert sf.info(str(clip.path)).samplerate == 16000
            assert all(off - on >= MIN_EVENT_S - 1e-3 and 0 <= on < off <= 4.0 for on, off, _ in events)
    assert by_id[list(info["test"])[-1]].events == () and by_id[list(info["test"])[-1]].label == ()
    assert index.multilabel and index.targets().shape == (17, 10)
    coverage = index.coverage()
    assert not coverage.official and coverage.present == 5 and coverage.expected == OFFICIAL_TEST.total
    assert "not the official list" in coverage.summary() and "published set 10000" in coverage.summary()


def test_generator_is_deterministic_and_classes_are_separable(tmp_path) -> None:
    first = make_desed_copy(tmp_path / "a", clips_train=4, clips_valid=2, seconds=3.0, seed=7)
    make_desed_copy(tmp_path / "b", clips_train=4, clips_valid=2, seconds=3.0, seed=7)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    make_desed_copy(tmp_path / "c", clips_train=4, clips_valid=2, seconds=3.0, seed=8)
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")
    # the loudest frequency inside each event is its class's own fundamental
    from audiobench.datasets.soundscapes import class_frequency
    for name, events in first["train"].items():
        audio, rate = sf.read(first["paths"]["synthetic_audio"] / name)
        for onset, offset, cls in events:
            part = audio[int(onset * rate) + 400:int(offset * rate) - 400]
            spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
            peak = np.fft.rfftfreq(len(part), 1 / rate)[int(np.argmax(spectrum))]
            assert peak == pytest.approx(class_frequency(cls), rel=0.05)


@pytest.mark.parametrize("prefix, synth_dir, rate", [("dcase/dataset", "", 16000),
                                                     ("data/dcase/dataset", "dcase_synth", 44100)])
def test_baseline_tree_prefixes_and_sample_rates(tmp_path, prefix, synth_dir, rate) -> None:
    info = make_desed_copy(tmp_path, clips_train=3, clips_valid=2, seconds=2.0, sample_rate=rate, prefix=prefix)
    if synth_dir:  # the 2023+ recipes keep the synthetic set under dcase_synth/
        moved = layout_paths(info["base"], rate, synth_dir)
        for key in ("synthetic_audio", "synthetic_tsv"):
            moved[key].parent.mkdir(parents=True, exist_ok=True)
            shutil.move(info["paths"][key], moved[key])
    assert rate == 44100 or (info["base"] / "audio/validation/validation_16k").is_dir()
    index = load_desed(tmp_path, sample_rate=rate)
    assert len(index.clips) == 5 and not index.missing
    with pytest.raises(DatasetError, match="sample_rate"):
        load_desed(tmp_path, sample_rate=32000)


def test_missing_clips_give_partial_coverage(tmp_path) -> None:
    info = make_desed_copy(tmp_path, clips_train=4, clips_valid=4, seconds=2.0)
    test_names = list(info["test"])
    (info["paths"]["test_audio"] / test_names[0]).unlink()
    (info["paths"]["synthetic_audio"] / "1.wav").unlink()
    index = load_desed(tmp_path)
    assert sorted(index.missing) == sorted([test_names[0], "synthetic21_train/1.wav"])
    coverage = index.coverage()
    assert not coverage.official and coverage.present == 3
    assert coverage.summary().startswith("3 of 1168 clips")
    assert "1 listed test clip(s) have no audio file" in coverage.summary()
    assert "1 listed training clip(s) have no audio file" in coverage.summary()
    assert index.manifest()["missing_count"] == 2


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("target, old, new, message", [
    ("test_tsv", "\tCat\n", "\tKitten\n", "unknown class label 'Kitten'"),
    ("synthetic_tsv", "event_label", "label", "no column event_label"),
    ("test_durations", "duration", "length", "no column duration"),
])
def test_bad_metadata_names_the_file_and_row(tmp_path, target, old, new, message) -> None:
    info = make_desed_copy(tmp_path, clips_train=10, clips_valid=10, seconds=2.0, seed=1)
    path = info["paths"][target]
    _edit(path, old, new)
    with pytest.raises(DatasetError, match=message) as caught:
        load_desed(tmp_path)
    assert str(path) in str(caught.value) and caught.value.hint


def test_onset_after_offset_and_clip_without_duration(tmp_path) -> None:
    info = make_desed_copy(tmp_path, clips_train=2, clips_valid=3, seconds=2.0, seed=2)
    tsv, durations = info["paths"]["test_tsv"], info["paths"]["test_durations"]
    lines = tsv.read_text().splitlines()
    name, onset, offset, label = lines[1].split("\t")
    lines[1] = "\t".join([name, offset, onset, label])
    tsv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"row 1: onset .* is after offset") as caught:
        load_desed(tmp_path)
    assert str(tsv) in str(caught.value)
    lines[1] = "\t".join([name, onset, offset, label])
    tsv.write_text("\n".join(lines) + "\n")
    first = durations.read_text().splitlines()
    durations.write_text("\n".join(line for line in first if not line.startswith(name)) + "\n")
    with pytest.raises(DatasetError, match=f"clip '{name}' is not in the durations file"):
        load_desed(tmp_path)


def test_layout_errors(tmp_path) -> None:
    with pytest.raises(DatasetError, match="DESED metadata not found") as caught:
        load_desed(tmp_path)
    assert "DESED_task" in caught.value.hint
    with pytest.raises(DatasetError, match="--download is not supported"):
        load_desed(download=True)
    info = make_desed_copy(tmp_path, clips_train=2, clips_valid=2, seconds=2.0)
    with pytest.raises(DatasetError, match="train set 'weak'"):
        load_desed(tmp_path, train="weak")
    with pytest.raises(DatasetError, match="audioset_strong.tsv not found"):
        load_desed(tmp_path, train="synthetic+strong-real")
    info["paths"]["synthetic_tsv"].unlink()
    with pytest.raises(DatasetError, match="training metadata"):
        load_desed(tmp_path)


def test_strong_real_training_list_leaves_out_test_clips(tmp_path) -> None:
    info = make_desed_copy(tmp_path, clips_train=2, clips_valid=3, seconds=2.0)
    paths = info["paths"]
    test_name = list(info["test"])[0]
    paths["strong_tsv"].write_text(f"filename\tonset\toffset\tevent_label\nYreal_0.000_10.000.wav\t0.5\t1.5\tDog\n"
                                   f"{test_name}\t0.1\t0.9\tCat\n")
    paths["strong_audio"].mkdir(parents=True)
    shutil.copy(paths["synthetic_audio"] / "0.wav", paths["strong_audio"] / "Yreal_0.000_10.000.wav")
    with pytest.warns(UserWarning, match="also test clips"):
        index = load_desed(tmp_path, train="synthetic+strong-real")
    strong = [c for c in index.clips if c.clip_id.startswith("strong_label_real/")]
    assert [c.clip_id for c in strong] == ["strong_label_real/Yreal_0.000_10.000.wav"]
    assert strong[0].events == ((0.5, 1.5, CLASSES.index("Dog")),) and strong[0].split == "train"
    assert "the strong_label_real list has 2 clips, the published set 3470" in index.coverage().summary()


def test_real_validation_metadata_is_the_official_list(tmp_path) -> None:
    """The staged DESED_task validation.tsv: 1168 clips, 4224 events + 15 clips without events (4239 rows)."""
    truth, durations = require(DESED_SHARED / "validation.tsv"), require(DESED_SHARED / "validation_durations.tsv")
    info = make_desed_copy(tmp_path, clips_train=2, clips_valid=1, seconds=2.0)
    shutil.copy(truth, info["paths"]["test_tsv"])
    shutil.copy(durations, info["paths"]["test_durations"])
    index = load_desed(tmp_path)
    assert len(index.missing) == 1168 and [c.split for c in index.clips] == ["train", "train"]
    assert index.listed_sha256 == OFFICIAL_TEST.sha256
    coverage = index.coverage()
    assert coverage.present == 0 and coverage.expected == 1168
    assert "not the official list" not in coverage.summary()
    assert "1168 listed test clip(s) have no audio file" in coverage.summary()
    rows = [line.split("\t") for line in truth.read_text().splitlines()[1:]]
    assert len(rows) == 4239 and sum(1 for r in rows if r[3]) == 4224


def test_real_validation_with_all_audio_is_official_for_the_test_list(tmp_path) -> None:
    """Audio for every real validation clip (silence stand-ins): the test list is complete and official."""
    require(DESED_SHARED / "validation.tsv")
    info = make_desed_copy(tmp_path, clips_train=1, clips_valid=1, seconds=1.0)
    shutil.copy(DESED_SHARED / "validation.tsv", info["paths"]["test_tsv"])
    shutil.copy(DESED_SHARED / "validation_durations.tsv", info["paths"]["test_durations"])
    silence = info["paths"]["test_audio"] / "silence.wav"
    sf.write(silence, np.zeros(160, dtype=np.float32), 16000)
    for line in (DESED_SHARED / "validation_durations.tsv").read_text().splitlines()[1:]:
        target = info["paths"]["test_audio"] / line.split("\t")[0]
        if not target.exists():
            target.hardlink_to(silence)
    index = load_desed(tmp_path)
    test = [c for c in index.clips if c.split == "test"]
    assert len(test) == 1168 and sum(len(c.events) for c in test) == 4224
    assert sum(1 for c in test if not c.events) == 15
    reasons = index.coverage().reasons
    assert reasons == ["the synthetic21_train list has 1 clips, the published set 10000"]


def test_desed_card_parses() -> None:
    card = parse_card(read_card_file(CARD), CARD)
    assert card.label_type == "events" and card.dataset == "desed" and card.clip_seconds == 10.0
    assert card.metric == "psds1-sed-scores-eval" and card.protocol == "frame-gru"
    assert card.splits == {"type": "fixed", "train": ["train"], "test": ["test"]}
    assert card.dataset_options["sample_rate"] == 16000
    assert len(CARD.read_text().splitlines()) <= 30
    with pytest.raises(AudiobenchError):
        load_desed(Path("/nonexistent-desed"), **card.dataset_options)


def test_unreadable_training_audio_names_the_file(tmp_path) -> None:
    info = make_desed_copy(tmp_path, clips_train=2, clips_valid=1, seconds=1.0)
    broken = info["paths"]["synthetic_audio"] / "1.wav"
    broken.write_bytes(b"not audio")
    with pytest.raises(DatasetError, match="not a readable audio file") as caught:
        load_desed(tmp_path)
    assert str(broken) in str(caught.value)


def test_desed_task_end_to_end_finds_the_generated_events(tmp_path, monkeypatch) -> None:
    """The desed card (frame-gru head on frame embeddings) trained on generated soundscapes finds their events;
    the record's PSDS and F1 figures are re-scored exactly from its predictions file."""
    from audiobench import provenance
    from audiobench.datasets.soundscapes import make_desed_copy
    from audiobench.report.rescore import rescore
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)
    make_desed_copy(tmp_path / "desed", clips_train=24, clips_valid=8, seconds=4.0)
    record, path = run(RunOptions(task="desed", model="logmel-stats", data_dir=tmp_path / "desed", device="cpu",
                                  num_workers=0, output_dir=tmp_path / "out"))
    assert record["protocol"]["official"] is False and "8 of 1168 clips" in record["dataset"]["coverage"]
    metrics = {name: block["mean"] for name, block in record["metrics"].items()}
    assert metrics["psds1-sed-scores-eval"] > 0.5 and metrics["collar-f1-macro"] > 0.5
    assert set(record["metric_notes"]["psds1-psds-eval"]) >= {"implementation", "version", "parameters"}
    assert rescore(path)["identical"] is True
