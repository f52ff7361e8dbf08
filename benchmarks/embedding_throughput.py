"""Embedding throughput: full pipeline vs. bare network forward, measured in one run.

The pipeline is what ``audiobench run`` does for every clip: decode (soundfile) -> resample (soxr)
-> pad/crop -> front-end -> network, batched, with decoding in DataLoader workers. The bare network
forward gets precomputed mel batches of the same shape. Both are timed in this process, alternating,
and the ratio pipeline/network (target >= 0.9 on CPU) is printed.

    python benchmarks/embedding_throughput.py --model mn04 --clips 128 --batch-size 32
    python benchmarks/embedding_throughput.py --audio-dir ../shared/data/esc50/audio --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import audiobench
from audiobench.datasets.base import Clip
from audiobench.embeddings import default_num_workers, extract_embeddings


def make_clips(directory: Path, count: int, seconds: float, sample_rate: int) -> list[Clip]:
    """Noise clips in ESC-50's format (44.1 kHz, 16-bit wav) when no real audio is given."""
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        path = directory / f"clip{i:04d}.wav"
        sf.write(path, (rng.standard_normal(int(seconds * sample_rate)) * 0.1).astype(np.float32), sample_rate,
                 subtype="PCM_16")
        clips.append(Clip(clip_id=path.name, path=path, label=0))
    return clips


def audio_clips(directory: Path, count: int) -> list[Clip]:
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".wav", ".flac"))[:count]
    return [Clip(clip_id=p.name, path=p, label=0) for p in paths]


def time_pipeline(model, clips, seconds, batch_size, workers) -> float:
    started = time.perf_counter()
    extract_embeddings(model, clips, seconds, cache=None, batch_size=batch_size, num_workers=workers)
    return len(clips) / (time.perf_counter() - started)


def time_network(model, mel: torch.Tensor, batches: int) -> float:
    started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(batches):
            model.network(mel)
    return batches * mel.shape[0] / (time.perf_counter() - started)


def stage_breakdown(model, clips, seconds: float, batch_size: int) -> dict[str, float]:
    """Milliseconds per clip of each pipeline stage, run one after the other in this process."""
    from audiobench.audio import fit_length, read_audio, resample

    clips = clips[:batch_size]
    started = time.perf_counter()
    decoded = [read_audio(c.path) for c in clips]
    decode = time.perf_counter() - started
    started = time.perf_counter()
    resampled = [fit_length(resample(x, sr, model.sample_rate), int(seconds * model.sample_rate)) for x, sr in decoded]
    resampling = time.perf_counter() - started
    waveforms = torch.from_numpy(np.stack(resampled))
    with torch.inference_mode():
        model.network_input(waveforms)  # warm-up
        started = time.perf_counter()
        mel = model.network_input(waveforms)
        frontend = time.perf_counter() - started
        started = time.perf_counter()
        model.network(mel)
        network = time.perf_counter() - started
    per_clip = 1000.0 / len(clips)
    return {"decode_ms": decode * per_clip, "resample_ms": resampling * per_clip,
            "frontend_ms": frontend * per_clip, "network_ms": network * per_clip}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mn04")
    parser.add_argument("--checkpoint", default=None, help="weights (throughput does not depend on them)")
    parser.add_argument("--audio-dir", type=Path, default=None, help="real clips (default: generated noise)")
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model = audiobench.load_model(args.model, checkpoint=args.checkpoint)
    workers = default_num_workers() if args.workers is None else args.workers
    with tempfile.TemporaryDirectory() as tmp:
        clips = (audio_clips(args.audio_dir, args.clips) if args.audio_dir
                 else make_clips(Path(tmp), args.clips, args.seconds, 44100))
        waveforms = torch.zeros(args.batch_size, int(args.seconds * model.sample_rate))
        with torch.inference_mode():
            mel = model.network_input(waveforms)
        batches = max(1, len(clips) // args.batch_size)
        time_network(model, mel, 1)  # warm-up
        time_pipeline(model, clips[: args.batch_size], args.seconds, args.batch_size, workers)
        pipeline, network = [], []
        for _ in range(args.repeats):
            network.append(time_network(model, mel, batches))
            pipeline.append(time_pipeline(model, clips, args.seconds, args.batch_size, workers))
        stages = stage_breakdown(model, clips, args.seconds, args.batch_size)
    result = {
        "model": args.model, "clips": len(clips), "clip_seconds": args.seconds, "batch_size": args.batch_size,
        "workers": workers, "torch_threads": torch.get_num_threads(), "network_input": list(mel.shape),
        "audio": str(args.audio_dir) if args.audio_dir else "generated 44.1 kHz wav",
        "pipeline_clips_per_s": float(np.median(pipeline)), "network_clips_per_s": float(np.median(network)),
    }
    result["stages_ms_per_clip"] = stages
    result["ratio"] = result["pipeline_clips_per_s"] / result["network_clips_per_s"]
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{args.model}, batch {args.batch_size}, {args.seconds:g} s clips, {workers} decode worker(s), "
          f"{torch.get_num_threads()} torch threads, median of {args.repeats}")
    print(f"  pipeline (decode+resample+front-end+network): {result['pipeline_clips_per_s']:.1f} clips/s")
    print(f"  bare network forward:                          {result['network_clips_per_s']:.1f} clips/s")
    print(f"  ratio pipeline/network: {result['ratio']:.3f} (target >= 0.9)")
    stages = ", ".join(f"{k[:-3]} {v:.2f}" for k, v in result["stages_ms_per_clip"].items())
    print(f"  per-clip stage cost in ms, sequential in one process: {stages}")


if __name__ == "__main__":
    main()
