"""HEAR timestamp tasks: loading the event json format, the cards, HEAR's onset F-measure (vs sed_eval and
by hand) and HEAR's event post-processing (median filter, threshold, minimum duration chosen on valid)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.datasets.hear import hear_task_card, load_hear
from audiobench.errors import DatasetError
from audiobench.events_hear import (choose_min_duration, clip_events, frame_events, hear_postprocess, onset_collar,
                                    onset_fmeasure)
from audiobench.tasks import load_task_cards

RATE = 16000
CLASSES = ["beep", "buzz"]
FREQS = {"beep": 880.0, "buzz": 220.0}


def _clip(path: Path, seconds: float, events: list[dict]) -> None:
    """A clip of ``seconds`` of faint noise with a tone per event (times in ms)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(events))
    audio = 0.01 * rng.standard_normal(int(seconds * RATE))
    for event in events:
        a, b = int(event["start"] * RATE / 1000), int(event["end"] * RATE / 1000)
        audio[a:b] += 0.3 * np.sin(2 * np.pi * FREQS[event["label"]] * np.arange(b - a) / RATE)
    sf.write(path, audio.astype(np.float32), RATE, subtype="PCM_16")


def make_event_task(root: Path, kfold: bool = False) -> tuple[Path, dict[str, dict[str, list[dict]]]]:
    """A HEAR timestamp task directory as hear-preprocess writes it (events in ms per file)."""
    task_dir = root / "tinysed-v1-full"
    task_dir.mkdir(parents=True)
    splits = [f"fold{i:02d}" for i in range(3)] if kfold else ["train", "valid", "test"]
    metadata = {"task_name": "tinysed", "version": "v1", "mode": "full", "embedding_type": "event",
                "prediction_type": "multilabel", "split_mode": "new_split_kfold" if kfold else "trainvaltest",
                "sample_duration": 3.0, "splits": splits, "evaluation": ["event_onset_200ms_fms", "segment_1s_er"]}
    (task_dir / "task_metadata.json").write_text(json.dumps(metadata))
    (task_dir / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(CLASSES)))
    listing = {}
    for s, split in enumerate(splits):
        entries = {}
        for i in range(2):
            seconds = 2.0 + 0.5 * i
            events = [{"label": CLASSES[i % 2], "start": 250.0 + 100 * s, "end": 900.5},
                      {"label": "beep", "start": 1200.0, "end": 1750.0 + 125 * i}]
            entries[f"{split}_{i}.wav"] = events
            _clip(task_dir / str(RATE) / split / f"{split}_{i}.wav", seconds, events)
        (task_dir / f"{split}.json").write_text(json.dumps(entries))
        listing[split] = entries
    return task_dir, listing


def test_event_task_loads_with_events_in_seconds(tmp_path) -> None:
    task_dir, listing = make_event_task(tmp_path)
    index = load_hear(root=task_dir)
    assert index.name == "hear:tinysed-v1-full" and index.classes == CLASSES and index.missing == []
    assert len(index.clips) == 6 and index.clip_seconds is None
    clips = {clip.clip_id: clip for clip in index.clips}
    valid_1 = clips["valid_1.wav"]
    assert valid_1.split == "valid" and valid_1.fold is None and valid_1.duration == pytest.approx(2.5)
    assert valid_1.events == ((0.35, 0.9005, 1), (1.2, 1.875, 0)) and valid_1.label == (0, 1)
    assert clips["train_0.wav"].label == (0,) and clips["train_0.wav"].duration == pytest.approx(2.0)
    expected = sorted((name, e["start"] / 1000, e["end"] / 1000, e["label"])
                      for entries in listing.values() for name, events in entries.items() for e in events)
    assert sorted(clip_events(index.clips, index.classes)) == expected


def test_kfold_event_task_and_missing_audio(tmp_path) -> None:
    task_dir, _ = make_event_task(tmp_path, kfold=True)
    (task_dir / str(RATE) / "fold02" / "fold02_1.wav").unlink()
    index = load_hear(root=task_dir, clips=6)
    assert index.expected_per_fold == {0: 2, 1: 2, 2: 2} and index.missing == ["fold02_1.wav"]
    assert {clip.fold for clip in index.clips} == {0, 1, 2} and all(c.split is None for c in index.clips)
    coverage = index.coverage()
    assert not coverage.official and coverage.summary().startswith("5 of 6 clips")
    (task_dir / str(RATE) / "fold02" / "fold02_1.wav").write_bytes(b"")  # present again (header unreadable)
    assert load_hear(root=task_dir, clips=6).coverage().official


def test_bad_events_name_file_entry_and_key(tmp_path) -> None:
    task_dir, listing = make_event_task(tmp_path)
    path = task_dir / "test.json"
    for bad, message in (({"label": "cat", "start": 0, "end": 10}, "label 'cat' is not in labelvocabulary"),
                         ({"label": "beep", "start": "x", "end": 10}, "key 'start'"),
                         ({"label": "beep", "start": 20, "end": 10}, "end 10.0 ms is before start 20.0 ms"),
                         ("beep", "not an object")):
        path.write_text(json.dumps({**listing["test"], "test_0.wav": [bad]}))
        with pytest.raises(DatasetError, match=message) as error:
            load_hear(root=task_dir)
        assert "test.json, entry 'test_0.wav', event 0" in str(error.value) and error.value.hint


def test_card_from_metadata_and_builtin_cards(tmp_path) -> None:
    task_dir, _ = make_event_task(tmp_path)
    card = hear_task_card(task_dir)
    assert (card.label_type, card.protocol, card.metric, card.metrics) == (
        "events", "frame-linear", "onset-fms-200ms", ["onset-fms-50ms"])
    assert card.clip_seconds is None and card.splits["valid"] == ["valid"] and "segment_1s_er" in card.description
    assert card.protocol_options == {"median_filter_ms": 250, "min_duration_ms": [125, 250]}
    metadata = json.loads((task_dir / "task_metadata.json").read_text())
    metadata.update(evaluation=["event_onset_50ms_fms"], split_mode="new_split_kfold",
                    splits=["fold00", "fold01"], evaluation_params={
                        "event_postprocessing_grid": {"median_filter_ms": [150], "min_duration": [50]}})
    (task_dir / "task_metadata.json").write_text(json.dumps(metadata))
    card = hear_task_card(task_dir)
    assert (card.metric, card.metrics, card.folds) == ("onset-fms-50ms", ["onset-fms-200ms"], [0, 1])
    assert card.protocol_options == {"median_filter_ms": 150, "min_duration_ms": [50]}

    cards = load_task_cards()
    dcase, maestro = cards["hear-dcase2016-task2"], cards["hear-maestro-5h"]
    assert dcase.dataset_options == {"task": "dcase2016_task2-hear2021-full", "clips": 72}
    assert maestro.dataset_options == {"task": "maestro-v3.0.0-5h", "clips": 185}
    assert (dcase.metric, maestro.metric, maestro.folds) == ("onset-fms-200ms", "onset-fms-50ms", [0, 1, 2, 3, 4])
    assert dcase.splits["type"] == "fixed" and dcase.label_type == maestro.label_type == "events"
    for card in (dcase, maestro):
        assert card.protocol == "frame-linear" and card.clip_seconds is None
        assert len(Path(card.path).read_text().splitlines()) <= 30


def _sed_eval_direct(reference, estimated, collar):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sed_eval
    metrics = sed_eval.sound_event.EventBasedMetrics(event_label_list=CLASSES, evaluate_onset=True,
                                                     evaluate_offset=False, t_collar=collar)
    for file in sorted({e[0] for e in reference} | {e[0] for e in estimated}):
        as_items = lambda events: [{"file": f, "event_label": l, "event_onset": a, "event_offset": b}  # noqa: E731
                                   for f, a, b, l in events if f == file]
        metrics.evaluate(as_items(reference), as_items(estimated))
    return metrics.results()["overall"]["f_measure"]["f_measure"]


def test_onset_fmeasure_by_hand_and_against_sed_eval() -> None:
    reference = [("a", 1.0, 1.5, "beep"), ("a", 2.0, 2.4, "buzz"), ("b", 0.5, 3.0, "beep")]
    estimated = [("a", 1.15, 1.2, "beep"),  # onset 150 ms late: a hit at 200 ms, a miss at 50 ms
                 ("a", 2.3, 2.9, "buzz"),  # 300 ms late: a miss
                 ("b", 0.52, 0.6, "buzz"),  # wrong label: a false positive
                 ("b", 0.49, 9.0, "beep")]  # offset ignored: a hit at both collars
    # 200 ms: 2 hits of 4 estimates and 3 references: P = 1/2, R = 2/3, F = 2PR / (P + R) = 4/7
    assert onset_fmeasure(reference, estimated, 0.2) == pytest.approx(4 / 7)
    # 50 ms: 1 hit: P = 1/4, R = 1/3, F = 2/7
    assert onset_fmeasure(reference, estimated, onset_collar("onset-fms-50ms")) == pytest.approx(2 / 7)
    assert math.isnan(onset_fmeasure(reference, [], 0.2))

    rng = np.random.default_rng(0)
    files = [f"f{i}" for i in range(5)]
    make = lambda n, jitter: [(files[rng.integers(5)], float(t), float(t) + 0.3, CLASSES[rng.integers(2)])  # noqa: E731
                              for t in rng.uniform(0, 10, n) + rng.normal(0, jitter, n)]
    reference = make(40, 0.0)
    estimated = [(f, a + rng.normal(0, 0.1), b, l) for f, a, b, l in reference[:30]] + make(10, 0.0)
    for collar in (0.2, 0.05):
        ours = onset_fmeasure(reference, estimated, collar)
        assert ours == pytest.approx(_sed_eval_direct(reference, estimated, collar)) and 0 < ours < 1


def test_median_filter_removes_a_one_frame_blip_and_keeps_runs() -> None:
    timestamps = np.arange(40) * 50.0
    scores = np.zeros((40, 2))
    scores[10, 0] = 0.9  # a 1-frame blip: removed by the 5-frame (250 ms) median filter
    scores[20:30, 1] = 0.8  # 10 frames: an event from 1.0 s to 1.45 s (first to last active frame)
    scores[24, 1] = 0.1  # a 1-frame gap: filled by the filter
    assert frame_events(scores, timestamps, CLASSES, median_filter_ms=250, min_duration_ms=125) == [
        (1.0, 1.45, "buzz")]
    unfiltered = frame_events(scores, timestamps, CLASSES, median_filter_ms=0, min_duration_ms=0)
    assert unfiltered == [(0.5, 0.5, "beep"), (1.0, 1.15, "buzz"), (1.25, 1.45, "buzz")]
    assert frame_events(np.full((40, 2), 0.5), timestamps, CLASSES) == []  # the threshold is strict (> 0.5)
    shuffled = np.random.default_rng(1).permutation(40)  # frames are put in timestamp order first
    assert frame_events(scores[shuffled], timestamps[shuffled], CLASSES) == [(1.0, 1.45, "buzz")]


def test_min_duration_chosen_on_validation() -> None:
    timestamps = np.arange(60) * 50.0

    def table(runs):  # runs of (class, first frame, frames)
        scores = np.zeros((60, 2))
        for c, first, n in runs:
            scores[first:first + n, c] = 0.9
        return scores, timestamps

    # true events last 300 ms (7 frames: 6 hops); a spurious 5-frame event lasts 200 ms
    valid = {"v0": table([(0, 10, 7), (1, 40, 7)]), "v1": table([(0, 20, 5)])}
    reference = [("v0", 0.5, 0.8, "beep"), ("v0", 2.0, 2.3, "buzz")]
    # 125 ms keeps all three (P 2/3, R 1: F 0.8); 250 ms drops the spurious one (F 1)
    best, scores = choose_min_duration(valid, reference, CLASSES, 0.2, median_filter_ms=250, candidates=(125, 250))
    assert best == 250 and scores == pytest.approx({125: 0.8, 250: 1.0})
    assert hear_postprocess(valid, CLASSES, median_filter_ms=250, min_duration_ms=250) == reference
    # true events of 200 ms: 250 ms drops them all (no output: NaN, counted 0), 125 ms keeps them (F 1)
    short = {"v0": table([(0, 10, 5), (1, 40, 5)])}
    short_reference = [("v0", 0.5, 0.7, "beep"), ("v0", 2.0, 2.2, "buzz")]
    best, scores = choose_min_duration(short, short_reference, CLASSES, 0.2)
    assert best == 125 and scores == pytest.approx({125: 1.0, 250: 0.0})
    # a tie goes to the larger value (hear-eval-kit sorts (score, params) descending); NaN counts as 0
    quiet = {"v0": table([])}
    best, scores = choose_min_duration(quiet, reference, CLASSES, 0.2, candidates=(125, 250))
    assert best == 250 and scores == {125: 0.0, 250: 0.0}
    assert choose_min_duration(valid, reference, CLASSES, 0.05, candidates=[50]) == (50, {})


@pytest.mark.parametrize("kfold", [False, True])
def test_event_task_runs_end_to_end_with_onset_fmeasure(tmp_path, monkeypatch, kfold) -> None:
    from audiobench.report.rescore import rescore
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr("audiobench.provenance.git_revision", lambda *a, **k: None)
    task_dir, _ = make_event_task(tmp_path / "data", kfold=kfold)
    record, path = run(RunOptions(task=f"hear:{task_dir}", model="logmel-stats", device="cpu", num_workers=0,
                                  output_dir=tmp_path / "out"))
    metrics = record["metrics"]
    assert set(metrics) == {"onset-fms-200ms", "onset-fms-50ms"}
    assert metrics["onset-fms-200ms"]["mean"] > 0.5  # clear tones: most onsets found within 200 ms
    post = record["postprocessing"]
    assert post["median_filter_ms"] == 250 and post["min_duration_ms_candidates"] == [125, 250]
    splits = ["fold0", "fold1", "fold2"] if kfold else ["test"]  # folds: the next fold validates
    assert list(post["min_duration_ms"]) == splits and set(post["min_duration_ms"].values()) <= {125, 250}
    assert all(set(post["min_duration_valid_fms"][s]) == {"125", "250"} for s in splits)
    note = record["metric_notes"]["onset-fms-50ms"]
    assert note["implementation"] == "sed_eval" and note["parameters"]["t_collar"] == 0.05
    assert note["parameters"]["evaluate_offset"] is False and note["parameters"]["threshold"] == 0.5
    assert rescore(path)["identical"]
