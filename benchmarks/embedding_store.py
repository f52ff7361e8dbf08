"""The embedding cache at scale: write and read rates, files on disk and memory, for many synthetic entries.

Writes ``--clips`` entries of ``--dim`` float32 values in batches of ``--batch`` (as extraction does), then
reads them all back in clip order with verification (as a cached re-run does), in a fresh process view of the
store. AudioSet is 2 M clips of 960 values (mn10): ``--clips 2000000`` writes 7.7 GB.

    python benchmarks/embedding_store.py --clips 200000 --dim 960
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from audiobench.cache import EmbeddingCache


def clip_keys(count: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=960)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--directory", type=Path, default=None, help="where to write (default: a temporary one)")
    args = parser.parse_args()

    keys = clip_keys(args.clips)
    rows = np.random.default_rng(0).standard_normal((args.batch, args.dim)).astype(np.float32)
    with tempfile.TemporaryDirectory(dir=args.directory) as tmp:
        fingerprint = {"benchmark": "embedding_store", "dim": args.dim}
        cache = EmbeddingCache(Path(tmp), fingerprint, shape=(args.dim,))
        started = time.perf_counter()
        for start in range(0, args.clips, args.batch):
            part = keys[start:start + args.batch]
            cache.put_many(zip(part, rows[:len(part)]))
        write_s = time.perf_counter() - started
        reader = EmbeddingCache(Path(tmp), fingerprint, shape=(args.dim,))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        found = sum(array is not None for _, array in reader.scan(keys))
        read_s = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        files = [path for path in reader.directory.rglob("*") if path.is_file()]
        size = sum(path.stat().st_size for path in files)
    assert found == args.clips, f"read back {found} of {args.clips} entries"
    print(f"{platform.processor() or platform.machine()}; {args.clips} entries of {args.dim} float32 "
          f"({args.clips * args.dim * 4 / 1e9:.2f} GB), batches of {args.batch}")
    print(f"  write: {args.clips / write_s:10.0f} entries/s ({write_s:.1f} s)")
    print(f"  read (verified, clip order): {args.clips / read_s:10.0f} entries/s ({read_s:.1f} s)")
    print(f"  files on disk: {len(files)} ({size / 1e9:.2f} GB)")
    print(f"  peak RSS growth while reading all: {(rss_after - rss_before) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
