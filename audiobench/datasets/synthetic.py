"""A small synthetic sound-classification dataset generated on the fly (no download).

Six distinguishable sound classes, 4 folds, 1 s clips at 16 kHz (so the pipeline's resampler runs too).
Generation is deterministic: the same version and seed always give bit-identical files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from audiobench.atomic import atomic_write_bytes
from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip, DatasetIndex, OfficialList, check_unique, list_sha256
from audiobench.errors import DatasetError

VERSION = 1
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.0
FOLDS = 4
CLIPS_PER_CLASS_AND_FOLD = 5

Generator = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * rng.uniform(300, 3000) * t)


def _chirp(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    start, stop = rng.uniform(200, 800), rng.uniform(3000, 7000)
    return np.sin(2 * np.pi * (start * t + (stop - start) * t**2 / (2 * t[-1])))


def _noise_bursts(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    gate = (np.sin(2 * np.pi * rng.uniform(2, 6) * t + rng.uniform(0, np.pi)) > 0.3).astype(float)
    return rng.standard_normal(len(t)) * gate


def _clicks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    signal = np.zeros(len(t))
    period = int(SAMPLE_RATE / rng.uniform(8, 30))
    signal[rng.integers(0, period)::period] = 1.0
    return np.convolve(signal, np.hanning(32), mode="same")


def _am_tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    carrier = np.sin(2 * np.pi * rng.uniform(500, 2000) * t)
    return carrier * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(5, 15) * t))


def _harmonic(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    f0 = rng.uniform(100, 300)
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 9))


CLASSES: dict[str, Generator] = {
    "tone": _tone, "chirp": _chirp, "noise_bursts": _noise_bursts,
    "clicks": _clicks, "am_tone": _am_tone, "harmonic": _harmonic,
}


def _render(class_index: int, take: int, fold: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, class_index, fold, take])
    t = np.arange(int(SAMPLE_RATE * CLIP_SECONDS)) / SAMPLE_RATE
    signal = list(CLASSES.values())[class_index](rng, t)
    signal = signal / (np.abs(signal).max() + 1e-9) * rng.uniform(0.2, 0.8)
    signal = signal + rng.standard_normal(len(t)) * rng.uniform(0.01, 0.05)
    return signal.astype(np.float32)


def official_rows() -> list[dict[str, object]]:
    """The rows of the dataset's definition (file name, fold, target, category), in generation order."""
    return [{"filename": f"{fold}-{name}-{take}.wav", "fold": fold, "target": class_index, "category": name}
            for class_index, name in enumerate(CLASSES)
            for fold in range(1, FOLDS + 1)
            for take in range(CLIPS_PER_CLASS_AND_FOLD)]


def official_list() -> OfficialList:
    """The official clip list: every clip the generator defines."""
    rows = official_rows()
    return OfficialList(total=len(rows), per_fold={f: len(rows) // FOLDS for f in range(1, FOLDS + 1)},
                        sha256=list_sha256((r["filename"], r["target"], r["fold"]) for r in rows),
                        source=f"audiobench synthetic dataset v{VERSION}")


def generate(root: Path, seed: int = 0) -> None:
    """Write the dataset under ``root`` (wav files + ``meta.json``); files appear atomically."""
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rows = official_rows()
    for row in rows:
        target = audio / str(row["filename"])
        if not target.exists():
            take = int(str(row["filename"]).rsplit("-", 1)[1].split(".")[0])
            wav = io.BytesIO()
            sf.write(wav, _render(int(row["target"]), take, int(row["fold"]), seed), SAMPLE_RATE, subtype="PCM_16",
                     format="WAV")
            atomic_write_bytes(target, wav.getvalue())
    meta = {"version": VERSION, "seed": seed, "sample_rate": SAMPLE_RATE, "classes": list(CLASSES), "clips": rows}
    atomic_write_bytes(root / "meta.json", json.dumps(meta, indent=1).encode())


def load_synthetic(data_dir: Path | None = None, download: bool = False, seed: int = 0) -> DatasetIndex:
    """Index the synthetic dataset, generating it first if needed (``download`` is ignored)."""
    root = Path(data_dir) if data_dir is not None else cache_subdir("datasets") / f"synthetic-v{VERSION}-seed{seed}"
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        generate(root, seed)
    try:
        meta = json.loads(meta_path.read_text())
        rows = [(str(r["filename"]), int(r["target"]), int(r["fold"])) for r in meta["clips"]]
        classes = list(meta["classes"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{meta_path} is not a synthetic-dataset description ({type(error).__name__}: {error}).",
                           hint=f"Delete {root} to generate the dataset again.") from None
    check_unique(((name, f"clips[{i}]", fold, name) for i, (name, _, fold) in enumerate(rows)), meta_path)
    clips, missing, expected = [], [], {}
    for name, target, fold in rows:
        expected[fold] = expected.get(fold, 0) + 1
        path = root / "audio" / name
        if path.is_file():
            clips.append(Clip(clip_id=name, path=path, label=target, fold=fold))
        else:
            missing.append(name)
    return DatasetIndex(name="synthetic", classes=classes, clips=clips, expected_per_fold=dict(sorted(expected.items())),
                        missing=missing, clip_seconds=CLIP_SECONDS, official_list=official_list(),
                        listed_sha256=list_sha256(rows))
