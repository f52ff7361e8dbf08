"""Tiny DESED-layout datasets with known sound events, for tests of the event loaders and the SED pipeline.

:func:`make_desed_copy` writes generated soundscapes in the exact DESED_task tree (see
:mod:`audiobench.datasets.desed`): synthetic training soundscapes with their strong labels, "real"
validation clips with ``validation.tsv`` and ``validation_durations.tsv``. Every class is a distinct,
easily separable synthetic sound (a tone pattern at its own frequencies), events last at least 0.5 s and
never overlap inside a clip, the background is quiet white noise. The same arguments always give
bit-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from audiobench.datasets.desed import CLASSES, layout_paths

MIN_EVENT_S = 0.5
MAX_EVENT_S = 2.5
SLOT_S = 0.8  # one event needs at least this much room (event + margins)
FADE_S = 0.01
BACKGROUND_LEVEL = 0.01
EVENT_LEVEL = 0.3

Sound = Callable[[np.ndarray, float], np.ndarray]


def class_frequency(index: int) -> float:
    """Fundamental of class ``index``: log-spaced from 300 Hz to 5 kHz (below 8 kHz, the 16 kHz Nyquist)."""
    return float(300.0 * (5000.0 / 300.0) ** (index / (len(CLASSES) - 1)))


def _sound(index: int) -> Sound:
    """The class's sound: odd classes are amplitude-modulated, even classes steady; two partials each."""
    f0 = class_frequency(index)
    modulation = 0.0 if index % 2 == 0 else 4.0 + index

    def render(t: np.ndarray, phase: float) -> np.ndarray:
        tone = np.sin(2 * np.pi * f0 * t + phase) + 0.4 * np.sin(2 * np.pi * 1.5 * f0 * t + phase)
        if modulation:
            tone *= 0.6 + 0.4 * np.sin(2 * np.pi * modulation * t)
        return tone

    return render


def _place_events(rng: np.random.Generator, seconds: float, classes: list[int]) -> list[tuple[float, float, int]]:
    """One event per class in ``classes``, each inside its own slot of the clip (no overlaps), ms-rounded."""
    slot = seconds / len(classes)
    events = []
    for k, cls in enumerate(classes):
        start, end = k * slot + 0.05, (k + 1) * slot - 0.05
        duration = rng.uniform(MIN_EVENT_S, min(MAX_EVENT_S, end - start))
        onset = round(float(rng.uniform(start, end - duration)), 3)
        offset = round(min(onset + duration, end), 3)
        events.append((onset, max(offset, round(onset + MIN_EVENT_S, 3)), cls))
    return events


def _render(rng: np.random.Generator, events: list[tuple[float, float, int]], seconds: float,
            sample_rate: int) -> np.ndarray:
    n = int(round(seconds * sample_rate))
    audio = BACKGROUND_LEVEL * rng.standard_normal(n)
    fade = max(1, int(FADE_S * sample_rate))
    for onset, offset, cls in events:
        first, last = int(round(onset * sample_rate)), min(n, int(round(offset * sample_rate)))
        t = np.arange(last - first) / sample_rate
        envelope = np.ones(last - first)
        ramp = np.linspace(0.0, 1.0, min(fade, len(envelope) // 2))
        envelope[:len(ramp)] = ramp
        envelope[len(envelope) - len(ramp):] = ramp[::-1]
        audio[first:last] += EVENT_LEVEL * envelope * _sound(cls)(t, float(rng.uniform(0, 2 * np.pi)))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _deck(rng: np.random.Generator):
    """Class indices in shuffled rounds, so every class occurs about equally often."""
    while True:
        yield from rng.permutation(len(CLASSES)).tolist()


def _draw_classes(rng: np.random.Generator, deck, count: int) -> list[int]:
    chosen: list[int] = []
    while len(chosen) < count:
        cls = next(deck)
        if cls not in chosen:
            chosen.append(cls)
    return [int(c) for c in rng.permutation(chosen)]


def _write_events_tsv(path: Path, clips: dict[str, list[tuple[float, float, int]]]) -> None:
    lines = ["filename\tonset\toffset\tevent_label"]
    for name, events in clips.items():
        if not events:
            lines.append(f"{name}\t\t\t")  # a clip without events, as in the real validation.tsv
        for onset, offset, cls in events:
            lines.append(f"{name}\t{onset:.3f}\t{offset:.3f}\t{CLASSES[cls]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _make_split(rng: np.random.Generator, deck, names: list[str], audio_dir: Path, seconds: float,
                sample_rate: int, empty: int) -> dict[str, list[tuple[float, float, int]]]:
    most = max(1, min(3, int(seconds // SLOT_S)))
    audio_dir.mkdir(parents=True, exist_ok=True)
    clips = {}
    for i, name in enumerate(names):
        count = 0 if i >= len(names) - empty else int(rng.integers(1, most + 1))
        events = _place_events(rng, seconds, _draw_classes(rng, deck, count)) if count else []
        sf.write(audio_dir / name, _render(rng, events, seconds, sample_rate), sample_rate, subtype="PCM_16")
        clips[name] = events
    return clips


def make_desed_copy(root: Path, clips_train: int = 20, clips_valid: int = 8, seconds: float = 10.0,
                    sample_rate: int = 16000, seed: int = 0, prefix: str = "",
                    empty_valid_clips: int = 1) -> dict[str, object]:
    """Write a tiny DESED dataset under ``root`` (``prefix`` e.g. ``dcase/dataset``); return what it holds.

    The result has ``root`` (the folder to pass as data dir), ``base`` (the DESED tree itself),
    ``classes``, ``sample_rate``, ``seconds``, ``train`` and ``test`` ({file name: [(onset s, offset s,
    class index), ...]}; the last ``empty_valid_clips`` validation clips have no events), ``durations``
    (validation file name -> seconds) and ``paths`` (the tree's folders and metadata files).
    """
    if seconds < SLOT_S:
        raise ValueError(f"seconds must be at least {SLOT_S} s to hold one {MIN_EVENT_S} s event, got {seconds}.")
    root = Path(root)
    base = root / prefix if prefix else root
    paths = layout_paths(base, sample_rate)
    rng = np.random.default_rng(seed)
    deck = _deck(rng)
    train_names = [f"{i}.wav" for i in range(clips_train)]
    valid_names = [f"Ygen{seed:03d}x{i:04d}_{10 * i:.3f}_{10 * i + seconds:.3f}.wav" for i in range(clips_valid)]
    train = _make_split(rng, deck, train_names, paths["synthetic_audio"], seconds, sample_rate, empty=0)
    test = _make_split(rng, deck, valid_names, paths["test_audio"], seconds, sample_rate,
                       empty=min(empty_valid_clips, clips_valid))
    _write_events_tsv(paths["synthetic_tsv"], train)
    _write_events_tsv(paths["test_tsv"], test)
    durations = {name: float(seconds) for name in valid_names}
    paths["test_durations"].write_text(
        "filename\tduration\n" + "".join(f"{name}\t{value}\n" for name, value in durations.items()), encoding="utf-8")
    return {"root": root, "base": base, "classes": list(CLASSES), "sample_rate": sample_rate, "seconds": seconds,
            "train": train, "test": test, "durations": durations, "paths": paths}
