"""Helpers shared by the generic dataset layouts (:mod:`audiobench.datasets.generic`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import OfficialList
from audiobench.errors import DatasetError

#: Audio files are recognised by extension (case-insensitive); libsndfile 1.1+ decodes mp3.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SHA256 = re.compile(r"[0-9a-f]{64}")
OFFICIAL_KEYS = ("clips", "sha256", "source")


def is_audio(path: Path) -> bool:
    """Whether ``path``'s extension is one of :data:`AUDIO_EXTENSIONS`."""
    return path.suffix.lower() in AUDIO_EXTENSIONS


def is_hidden(path: Path) -> bool:
    """Hidden entries (``.DS_Store``, ``.git``, ...) are ignored by the generic layouts."""
    return path.name.startswith(".")


def dataset_root(data_dir: Path | str | None, root: str | Path | None, name: str, layout: str) -> Path:
    """The dataset folder: ``root`` (relative to ``data_dir``, or to the cache's ``datasets/`` folder
    without one), else ``data_dir``, else the cache's ``datasets/<name>``; it must be a folder."""
    base = Path(data_dir).expanduser() if data_dir is not None else cache_subdir("datasets")
    if root is not None:
        folder = base / Path(str(root)).expanduser()  # an absolute root replaces base
    else:
        folder = base if data_dir is not None else base / name
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"Dataset folder {folder} of {name!r} {what}.",
                           hint=f"Point --data-dir at the dataset folder; expected layout: {layout}.")
    return folder


def refuse_download(download: bool, name: str, layout: str) -> None:
    """The generic layouts have nothing to download: ``--download`` is an error saying what to do."""
    if download:
        raise DatasetError(f"--download is not supported for {name!r}: it is read from a generic layout.",
                           hint=f"Put the data on disk ({layout}) and pass --data-dir.")


def pinned_official(official: Any, name: str) -> OfficialList | None:
    """The official list a task card pins in ``dataset_options.official`` (None when it pins none).

    ``clips`` is the number of clips of the official list; ``sha256`` (optional) its
    :func:`~audiobench.datasets.base.list_sha256` — without it only the clip count is checked;
    ``source`` (optional) says where the list comes from.
    """
    if official is None:
        return None
    where = f"dataset_options.official of task dataset {name!r}"
    hint = "Write it as official: {clips: N, sha256: <64 hex digits>, source: <where the list comes from>}."
    if not isinstance(official, dict) or "clips" not in official:
        raise DatasetError(f"{where} must be a mapping with at least 'clips', not {official!r}.", hint=hint)
    unknown = sorted(set(official) - set(OFFICIAL_KEYS))
    if unknown:
        raise DatasetError(f"{where} has unknown key(s) {', '.join(map(str, unknown))}.", hint=hint)
    clips, sha256 = official["clips"], official.get("sha256")
    if not isinstance(clips, int) or isinstance(clips, bool) or clips < 1:
        raise DatasetError(f"{where}: clips must be a positive whole number, not {clips!r}.", hint=hint)
    if sha256 is not None and not (isinstance(sha256, str) and SHA256.fullmatch(sha256)):
        raise DatasetError(f"{where}: sha256 must be 64 lowercase hex digits, not {sha256!r}.", hint=hint)
    source = str(official.get("source") or f"pinned by the task card ({where})")
    return OfficialList(total=clips, per_fold={}, sha256=sha256, source=source)


def text_list(value: Any, option: str, name: str) -> list[str] | None:
    """An optional card option holding a list of distinct non-empty names (e.g. ``classes``, ``splits``)."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise DatasetError(f"dataset_options.{option} of {name!r} must be a non-empty list of names, not {value!r}.",
                           hint=f"Write it as {option}: [first, second, ...].")
    names = [v.strip() for v in value]
    repeated = sorted({v for v in names if names.count(v) > 1})
    if repeated:
        raise DatasetError(f"dataset_options.{option} of {name!r} lists {', '.join(map(repr, repeated))} twice.",
                           hint="List each name once.")
    return names

