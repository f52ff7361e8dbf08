"""Wall time of a sound-event-detection run re-run against its cold run (frames and head scores cached).

Generates a DESED-layout copy (``audiobench.datasets.soundscapes.make_desed_copy``: synthetic soundscapes with
known events, 16 kHz), then runs ``audiobench run --task desed`` twice per repeat in a fresh cache: cold (frame
embeddings computed, the frame head trained) and again (frames from the embedding cache, the head's frame
scores from the probe-output cache). Prints the medians, their ratio and the stages of each record's timings.

    python benchmarks/rerun_events.py --model mn04 --checkpoint ../shared/models/efficientat/mn04_as_mAP_432.pt
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedding_throughput import timed_run  # noqa: E402 - the same timed `audiobench run` process

from audiobench.datasets.soundscapes import make_desed_copy  # noqa: E402
from audiobench.threads import available_cores  # noqa: E402


def newest_record(directory: Path) -> dict:
    """The record a run just wrote into ``directory``."""
    path = max(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mn04")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--train-clips", type=int, default=120)
    parser.add_argument("--test-clips", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    arguments = ["--task", "desed", "--model", args.model] + (["--checkpoint", args.checkpoint] if args.checkpoint
                                                                else [])
    cold, again, stages = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "desed"
        make_desed_copy(data, clips_train=args.train_clips, clips_valid=args.test_clips, seconds=args.seconds, seed=0)
        arguments += ["--data-dir", str(data)]
        for repeat in range(args.repeats):
            cache, out = Path(tmp) / f"cache{repeat}", Path(tmp) / f"out{repeat}"
            for name, walls in (("cold", cold), ("re-run", again)):
                walls.append(timed_run(arguments, cache, out)[0])
                record = newest_record(out)
                stages[name] = {**record["timings"], "probe_outputs": record.get("probe_outputs")}
    print(f"{platform.processor() or platform.machine()}, {available_cores()} cores; {args.model} on a generated DESED "
          f"copy ({args.train_clips} + {args.test_clips} clips of {args.seconds:g} s), median of {args.repeats}")
    print(f"  cold {np.median(cold):.2f} s, re-run {np.median(again):.2f} s, "
          f"ratio {np.median(np.array(again) / np.array(cold)):.3f}")
    for name, timings in stages.items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in timings.items()))


if __name__ == "__main__":
    main()
