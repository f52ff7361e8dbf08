"""Embedding pipeline speed against the bare network, as ratios measured in one run.

Figures (clips/s, median of ``--repeats``, the variants alternating so machine drift hits all alike):

* bare network: front-end + network on in-memory waveform batches, one forward pass per batch;
* bare network, chunked: the same in the forward chunks the pipeline uses on CPU
  (:mod:`audiobench.forward_chunks`; equal to the above on CUDA): the ceiling of the pipeline;
* pipeline cold: ``extract_embeddings`` with an empty audio cache (decode + resample + front-end + network);
* pipeline warm: the same with the audio cache filled (nothing decoded), no embedding cache;
* per-clip loop: what a script without audiobench does: decode, resample, one forward per clip.

Ratios printed: warm/bare and cold/bare (at the same batch size), warm/bare-chunked (the pipeline's own
overhead), batched/per-clip (cold and warm). With ``--runs``, also the wall time
of a whole ``audiobench run`` (ESC-50 layout under ``--esc50``) cold (fresh cache) and re-run, and the peak
RSS of those processes.

    python benchmarks/embedding_throughput.py --model mn04 --checkpoint ../shared/models/efficientat/mn04_as_mAP_432.pt \\
        --audio-dir ../shared/data/esc50/audio --clips 128 --runs --esc50 ../shared/data/esc50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import audiobench
from audiobench.audio import load_audio
from audiobench.datasets.base import Clip
from audiobench.embeddings import extract_embeddings
from audiobench.forward_chunks import forward_chunk, forward_in_chunks
from audiobench.threads import available_cores


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
    """``count`` clips from the audio files in ``directory``, cycling through them when there are fewer files
    (a GPU needs thousands of clips before start-up stops dominating)."""
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".wav", ".flac"))
    return [Clip(clip_id=f"{i}:{paths[i % len(paths)].name}", path=paths[i % len(paths)], label=0)
            for i in range(count)]


def rate(count: int, started: float) -> float:
    return count / (time.perf_counter() - started)


def synchronize(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def time_bare(model, clips, seconds: float, batch_size: int, chunked: bool = False) -> float:
    """Front-end + network on in-memory batches (on the model's device) of the same clips, every core computing;
    ``chunked``: each batch in the pipeline's forward chunks."""
    waveforms = torch.from_numpy(np.stack([load_audio(c.path, model.sample_rate, seconds) for c in clips]))
    waveforms = waveforms.to(model.device)
    chunk = forward_chunk(model.device, batch_size, waveforms.shape[-1]) if chunked else batch_size
    torch.set_num_threads(available_cores())
    synchronize(model)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(clips), batch_size):
            forward_in_chunks(model.embed, waveforms[start:start + batch_size], chunk)
    synchronize(model)
    return rate(len(clips), started)


def time_pipeline(model, clips, seconds: float, batch_size: int, cache_dir: Path) -> float:
    os.environ["AUDIOBENCH_CACHE"] = str(cache_dir)
    started = time.perf_counter()
    extract_embeddings(model, clips, seconds, cache=None, batch_size=batch_size, use_audio_cache=True)
    return rate(len(clips), started)


def time_loop(model, clips, seconds: float) -> float:
    """Decode, resample and embed one clip at a time (every core computes)."""
    torch.set_num_threads(available_cores())
    started = time.perf_counter()
    with torch.inference_mode():
        for clip in clips:
            model.embed(torch.from_numpy(load_audio(clip.path, model.sample_rate, seconds))[None].to(model.device))
    synchronize(model)
    return rate(len(clips), started)


def cpu_cuda_agreement(model, clips, seconds: float) -> float:
    """Smallest cosine similarity between the CUDA and the CPU embedding of the same clips."""
    waveforms = torch.from_numpy(np.stack([load_audio(c.path, model.sample_rate, seconds) for c in clips]))
    with torch.inference_mode():
        on_gpu = model.embed(waveforms.to(model.device)).float().cpu()
        model.cpu()
        on_cpu = model.embed(waveforms).float()
        model.to("cuda")
    return float(torch.nn.functional.cosine_similarity(on_gpu, on_cpu, dim=1).min())


def timed_run(arguments: list[str], cache: Path, output: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one ``audiobench run`` process."""
    env = {**os.environ, "AUDIOBENCH_CACHE": str(cache)}
    command = [sys.executable, "-c", "import sys, resource, subprocess; "
               "r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)",
               str(Path(sys.executable).with_name("audiobench")), "run", *arguments, "-o", str(output)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024


def run_figures(args: argparse.Namespace) -> dict[str, float]:
    arguments = ["--task", "esc50", "--model", args.model, "--data-dir", str(args.esc50), "--cv", "5"]
    arguments += ["--checkpoint", args.checkpoint] if args.checkpoint else []
    cold, warm, rss = [], [], []
    for _ in range(args.run_repeats):
        with tempfile.TemporaryDirectory() as tmp:
            wall, peak = timed_run(arguments, Path(tmp) / "cache", Path(tmp) / "out")
            cold.append(wall)
            rss.append(peak)
            warm.append(timed_run(arguments, Path(tmp) / "cache", Path(tmp) / "out")[0])
    return {"run_cold_s": float(np.median(cold)), "run_rerun_s": float(np.median(warm)),
            "rerun_over_cold": float(np.median(np.array(warm) / np.array(cold))), "run_cold_peak_rss_mb": max(rss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mn04")
    parser.add_argument("--checkpoint", default=None, help="weights (throughput does not depend on them)")
    parser.add_argument("--audio-dir", type=Path, default=None, help="real clips (default: generated noise)")
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-clips", type=int, default=None, help="time the per-clip loop on the first N clips")
    parser.add_argument("--runs", action="store_true", help="also time whole `audiobench run` processes")
    parser.add_argument("--run-repeats", type=int, default=2)
    parser.add_argument("--esc50", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model = audiobench.load_model(args.model, checkpoint=args.checkpoint).to(args.device)
    figures: dict[str, list[float]] = {"bare": [], "bare_chunked": [], "cold": [], "warm": [], "loop": []}
    with tempfile.TemporaryDirectory() as tmp:
        clips = (audio_clips(args.audio_dir, args.clips) if args.audio_dir
                 else make_clips(Path(tmp), args.clips, args.seconds, 44100))
        time_bare(model, clips[: args.batch_size], args.seconds, args.batch_size)  # warm-up
        time_loop(model, clips[:4], args.seconds)
        for repeat in range(args.repeats):
            cache = Path(tmp) / f"cache{repeat}"
            figures["bare"].append(time_bare(model, clips, args.seconds, args.batch_size))
            figures["bare_chunked"].append(time_bare(model, clips, args.seconds, args.batch_size, chunked=True))
            figures["cold"].append(time_pipeline(model, clips, args.seconds, args.batch_size, cache))
            figures["warm"].append(time_pipeline(model, clips, args.seconds, args.batch_size, cache))
            figures["loop"].append(time_loop(model, clips[: args.loop_clips or len(clips)], args.seconds))
    median = {name: float(np.median(values)) for name, values in figures.items()}
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {available_cores()} cores, torch {torch.__version__}",
        "model": args.model, "clips": len(clips), "clip_seconds": args.seconds, "batch_size": args.batch_size,
        "audio": str(args.audio_dir) if args.audio_dir else "generated 44.1 kHz wav",
        "clips_per_s": median,
        "ratios": {"warm_over_bare": median["warm"] / median["bare"], "cold_over_bare": median["cold"] / median["bare"],
                   "warm_over_bare_chunked": median["warm"] / median["bare_chunked"],
                   "batched_over_loop_cold": median["cold"] / median["loop"],
                   "batched_over_loop_warm": median["warm"] / median["loop"]},
        "peak_rss_mb_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": str(model.device) + (f" ({torch.cuda.get_device_name(model.device)})"
                                       if model.device.type == "cuda" else ""),
    }
    if model.device.type == "cuda":
        result["cpu_cuda_min_cosine"] = cpu_cuda_agreement(model, clips[: args.batch_size], args.seconds)
    if args.runs:
        result["runs"] = run_figures(args)
        result["runs"]["peak_rss_mb_per_clip_second_in_a_batch"] = (
            result["runs"]["run_cold_peak_rss_mb"] / (args.batch_size * args.seconds))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['machine']}; {args.model}, batch {args.batch_size}, {len(clips)} clips of {args.seconds:g} s, "
          f"median of {args.repeats}")
    for name, value in median.items():
        print(f"  {name:12s} {value:8.1f} clips/s")
    for name, value in result["ratios"].items():
        print(f"  {name:24s} {value:.2f}")
    for name, value in result.get("runs", {}).items():
        print(f"  {name:24s} {value:.2f}")


if __name__ == "__main__":
    main()
