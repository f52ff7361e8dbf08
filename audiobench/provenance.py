"""Provenance of a run: software versions, code revision, machine and device."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import audiobench

PACKAGES = ("torch", "numpy", "scikit-learn", "soundfile", "soxr", "typer")


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_revision(directory: Path | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the checkout audiobench runs from (None outside a git checkout)."""
    directory = directory or Path(audiobench.__file__).resolve().parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # `git status` must not take index.lock (read-only)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                                timeout=5, check=True, env=env).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                                capture_output=True, text=True, timeout=5, check=True, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def device_description(device: str | None) -> str:
    """Human-readable name of the compute device (None: nothing was computed on a device)."""
    if device is None:
        return "none (every model output came from the cache; the model was not built)"
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def collect(device: str | None, seed: int) -> dict[str, Any]:
    """The provenance block of a result record."""
    return {
        "audiobench_version": audiobench.__version__,
        "git": git_revision(),
        "python": sys.version.split()[0],
        "packages": {name: _package_version(name) for name in PACKAGES},
        "platform": platform.platform(),
        "device": device_description(device),
        "seed": seed,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]),
    }
