"""Stage what ``scripts/device_checks.py`` needs on the GPU machine into ``.device/`` (git-ignored, carried).

The device machine sees only the repository (64 MiB with what is carried) and cannot download anything, and
its Python has PyTorch but not every audiobench dependency. This copies, from ``../shared`` and pip:

* wheels for Python 3.12 of the dependencies that image lacks (soundfile and its cffi, soxr, platformdirs);
* the ESC-50 metadata and a class-balanced subset of the staged clips (as many as fit the budget);
* the released mn04 and CP-Mobile checkpoints, the TAU22 device impulse responses and one real TAU22 clip.

    python scripts/stage_device_checks.py            # then: run(command="python3 scripts/device_checks.py",
                                                     #            carry=[".device"], timeout_s=540)
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# Versions of this project's environment; the image already has numpy, torch, scikit-learn, pandas, rich, yaml.
WHEELS = ["soundfile==0.14.0", "cffi==2.0.0", "pycparser==2.23", "soxr==1.1.0", "platformdirs==4.14.9"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
CARRY_LIMIT = 64 * 2 ** 20


def exclude(directory: str) -> None:
    """Make git ignore ``directory`` (so it travels only when carried)."""
    path = ROOT / ".git" / "info" / "exclude"
    lines = path.read_text().splitlines() if path.exists() else []
    if f"/{directory}/" not in lines:
        path.write_text("\n".join([*lines, f"/{directory}/"]) + "\n")


def download_wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [arg for name in PLATFORMS for arg in ("--platform", name)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(dest), *WHEELS],
                   check=True)


def tree_bytes() -> int:
    """Bytes of the tracked and untracked-not-ignored files (what travels besides the carried paths)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    return sum((ROOT / name).stat().st_size for name in listed if name and (ROOT / name).is_file())


def stage_esc50(dest: Path, budget: int) -> int:
    """Copy ESC-50's metadata and, class by class in turn, as many staged clips as fit ``budget`` bytes (so
    every class has about as many clips, and stratified 5-fold CV can run on them)."""
    source = SHARED / "data" / "esc50"
    (dest / "meta").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "meta" / "esc50.csv", dest / "meta" / "esc50.csv")
    present = {path.stem: path for path in (source / "audio").iterdir()}
    by_class: dict[int, list[Path]] = defaultdict(list)
    with open(source / "meta" / "esc50.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            stem = Path(row["filename"]).stem
            if stem in present:
                by_class[int(row["target"])].append(present[stem])
    (dest / "audio").mkdir(exist_ok=True)
    used, copied = 0, 0
    queues = [sorted(paths) for _, paths in sorted(by_class.items())]
    while any(queues):
        for queue in queues:
            if queue:
                path = queue.pop(0)
                if used + path.stat().st_size > budget:
                    return copied
                shutil.copy(path, dest / "audio" / path.name)
                used, copied = used + path.stat().st_size, copied + 1
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=".device", help="folder in the repository root (git-ignored)")
    parser.add_argument("--margin-mb", type=float, default=1.0, help="room left under the 64 MiB limit")
    args = parser.parse_args()
    dest = ROOT / args.dest
    shutil.rmtree(dest, ignore_errors=True)
    exclude(args.dest)
    download_wheels(dest / "wheels")
    (dest / "checkpoints").mkdir(parents=True)
    for path in (SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt",
                 SHARED / "models" / "cpmobile_dcase23" / "cpmobile_tau22_c0a7nzin.ckpt"):
        shutil.copy(path, dest / "checkpoints" / path.name)
    shutil.copytree(SHARED / "data" / "tau22" / "device_irs", dest / "tau22" / "device_irs")
    shutil.copy(SHARED / "data" / "tau22" / "metro_station-paris.wav", dest / "tau22")
    staged = sum(path.stat().st_size for path in dest.rglob("*") if path.is_file())
    budget = CARRY_LIMIT - tree_bytes() - staged - int(args.margin_mb * 2 ** 20)
    clips = stage_esc50(dest / "esc50", budget)
    total = tree_bytes() + sum(path.stat().st_size for path in dest.rglob("*") if path.is_file())
    print(f"staged {dest}: {clips} ESC-50 clips, {len(list((dest / 'wheels').iterdir()))} wheels; "
          f"tree + carried = {total / 2 ** 20:.1f} MiB of 64")


if __name__ == "__main__":
    main()
