"""Decoding memory: cropping a long file, and a decoding worker over many clips.

(a) Peak memory of ``load_audio(path, 32000, seconds=5)`` on a generated 30-minute file, with the
    whole-file decode (the former ``read_audio`` + resample + crop) and with the current bounded
    decode. Each variant runs in a fresh Python process (numpy, soundfile, soxr only), which reports
    its peak RSS above its baseline (``/proc/self/status`` VmHWM - VmRSS) and the tracemalloc peak.
(b) RSS of one DataLoader worker running ``audiobench.embeddings.ClipAudio`` over many loads of
    generated 5 s clips, at the start and at the end of the run (read from ``/proc/self/status``).

    python benchmarks/decode_memory.py
    python benchmarks/decode_memory.py --rate 44100 --minutes 30 --loads 2000 --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

CHILD = r"""
import json, sys, time, tracemalloc
import numpy as np
from audiobench.audio import fit_length, load_audio, read_audio, resample

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0

def whole_file(path, rate, seconds):  # the former load_audio: decode everything, then crop
    signal, source_rate = read_audio(path)
    return np.ascontiguousarray(fit_length(resample(signal, source_rate, rate), int(round(seconds * rate))))

path, variant, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
load = whole_file if variant == "whole-file" else load_audio
load(path, rate, 0.01)  # import-time and first-call allocations before the baseline
baseline = status_kb("VmRSS")
tracemalloc.start()
started = time.perf_counter()
out = load(path, rate, seconds)
elapsed = time.perf_counter() - started
traced_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"variant": variant, "samples": len(out), "seconds_taken": elapsed,
                  "rss_peak_above_baseline_mb": (status_kb("VmHWM") - baseline) / 1024,
                  "tracemalloc_peak_mb": traced_peak / 2**20}))
"""


def write_long_file(path: Path, rate: int, minutes: float) -> None:
    """A 16-bit PCM mono wav of ``minutes`` (a quiet tone, written a minute at a time)."""
    t = np.arange(rate * 60) / rate
    block = (np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as handle:
        for _ in range(int(minutes)):
            handle.write(block)


def crop_memory(path: Path, rate: int, seconds: float) -> list[dict]:
    """Part (a): one fresh process per variant."""
    results = []
    for variant in ("whole-file", "bounded"):
        done = subprocess.run([sys.executable, "-c", CHILD, str(path), variant, str(rate), str(seconds)],
                              check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def worker_rss(clips_dir: Path, distinct: int, loads: int, batch_size: int) -> dict:
    """Part (b): VmRSS of the single decoding worker over ``loads`` clip loads."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    from audiobench.datasets.base import Clip
    from audiobench.embeddings import ClipAudio

    rng = np.random.default_rng(0)
    paths = []
    for i in range(distinct):
        path = clips_dir / f"clip{i:03d}.wav"
        sf.write(path, (rng.standard_normal(44100 * 5) * 0.1).astype(np.float32), 44100, subtype="PCM_16")
        paths.append(path)
    clips = [Clip(clip_id=f"{i}", path=paths[i % distinct], label=0) for i in range(loads)]

    class WithRss(Dataset):
        """ClipAudio items, plus the worker's RSS (kB) when the item was loaded."""

        def __init__(self, inner: ClipAudio) -> None:
            self.inner = inner

        def __len__(self) -> int:
            return len(self.inner)

        def __getitem__(self, index: int):
            position, waveform = self.inner[index]
            with open("/proc/self/status") as status:
                rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            return position, waveform, torch.tensor(rss)

    loader = DataLoader(WithRss(ClipAudio(clips, 32000, 5.0)), batch_size=batch_size, num_workers=1)
    samples, started = [], time.perf_counter()
    for _, waveforms, rss in loader:
        assert waveforms.shape[1] == 160000
        samples.append(int(rss.max()))
    elapsed = time.perf_counter() - started
    tenth = max(1, len(samples) // 10)
    return {"loads": loads, "batches": len(samples), "seconds_taken": elapsed,
            "worker_rss_first_batch_mb": samples[0] / 1024, "worker_rss_last_batch_mb": samples[-1] / 1024,
            "worker_rss_max_first_tenth_mb": max(samples[:tenth]) / 1024,
            "worker_rss_max_last_tenth_mb": max(samples[-tenth:]) / 1024,
            "worker_rss_max_mb": max(samples) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=44100, help="sample rate of the long file")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seconds", type=float, default=5.0, help="crop length")
    parser.add_argument("--loads", type=int, default=2000, help="clip loads through the worker")
    parser.add_argument("--distinct", type=int, default=50, help="distinct 5 s clips cycled through")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        long_path = Path(tmp) / "long.wav"
        write_long_file(long_path, args.rate, args.minutes)
        crop = crop_memory(long_path, 32000, args.seconds)
        long_path.unlink()
        worker = worker_rss(Path(tmp), args.distinct, args.loads, args.batch_size)
    report = {"long_file": {"rate": args.rate, "minutes": args.minutes, "crop_seconds": args.seconds},
              "crop": crop, "worker": worker}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"(a) {args.minutes:g}-minute {args.rate} Hz wav, {args.seconds:g} s crop at 32 kHz")
    for row in crop:
        print(f"    {row['variant']:>10}: peak RSS +{row['rss_peak_above_baseline_mb']:.1f} MB, "
              f"tracemalloc peak {row['tracemalloc_peak_mb']:.2f} MB, {row['seconds_taken'] * 1000:.0f} ms")
    print(f"(b) one DataLoader worker, {worker['loads']} loads of 5 s clips in {worker['seconds_taken']:.1f} s")
    print(f"    worker RSS: first batch {worker['worker_rss_first_batch_mb']:.1f} MB, "
          f"last batch {worker['worker_rss_last_batch_mb']:.1f} MB, max {worker['worker_rss_max_mb']:.1f} MB "
          f"(max over first tenth {worker['worker_rss_max_first_tenth_mb']:.1f} MB, "
          f"last tenth {worker['worker_rss_max_last_tenth_mb']:.1f} MB)")


if __name__ == "__main__":
    main()
