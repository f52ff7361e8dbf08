"""The PaSST/EfficientAT HDF5 layout of audio datasets (AudioSet, FSD50K): one file per split.

Built by the PaSST ``prepare_scripts`` (every clip converted to 32 kHz mp3 with ffmpeg, then packed); read by
EfficientAT and PaSST. Each file holds three datasets of equal length ``N``:

* ``audio_name``: fixed-length bytes, the clip's mp3 file name (``b"64760.mp3"``, ``b"Y<YouTube id>.mp3"``);
* ``mp3``: variable-length uint8 arrays, the bytes of each mp3 file;
* ``target``: the multi-hot labels packed with ``np.packbits`` along the class axis (``[N, ceil(C / 8)]``
  uint8), unpacked with ``np.unpackbits(count=C)``.

:class:`Hdf5Clips` reads one such file; :func:`materialise` writes its mp3 rows out as files so that the
embedding pipeline (which decodes a path with soundfile and keys its cache on the file's bytes) can use them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Callable

import numpy as np

from audiobench.atomic import atomic_write_bytes
from audiobench.cachedir import cache_subdir
from audiobench.errors import DatasetError

DATASETS = ("audio_name", "mp3", "target")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")  # each part of an audio_name becomes a path part: no odd characters


class Hdf5Clips:
    """One HDF5 file of the PaSST/EfficientAT layout, opened read-only (use as a context manager or ``close()``)."""

    def __init__(self, path: Path) -> None:
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"HDF5 file {self.path} not found.", hint="Check --data-dir and the file name.")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise DatasetError(f"{self.path} cannot be opened as HDF5 ({error}).",
                               hint="The file is damaged or not HDF5; rebuild it with the PaSST prepare scripts "
                                    "or download it again.") from None
        missing = [name for name in DATASETS if name not in self._file]
        if missing:
            found = sorted(self._file.keys())
            self._file.close()
            raise DatasetError(f"{self.path} lacks the dataset(s) {', '.join(missing)} of the PaSST/EfficientAT "
                               f"layout; it has {found}.",
                               hint="The layout needs audio_name, mp3 and target (packed multi-hot labels); "
                                    "rebuild the file with the PaSST prepare scripts.")
        lengths = {name: len(self._file[name]) for name in DATASETS}
        if len(set(lengths.values())) != 1:
            self._file.close()
            raise DatasetError(f"{self.path}: the datasets have different lengths {lengths}.",
                               hint="The file was written incompletely; rebuild it.")

    def __enter__(self) -> "Hdf5Clips":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __len__(self) -> int:
        return len(self._file["audio_name"])

    def names(self) -> list[str]:
        """The ``audio_name`` of every row, decoded (e.g. ``"64760.mp3"``, ``"03/Yabc.mp3"``); unsafe names are refused."""
        names = []
        for row, raw in enumerate(self._file["audio_name"][()]):
            name = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
            name = name.rstrip("\x00").strip()
            parts = name.split("/")  # PaSST packs unbalanced AudioSet rows as "<part>/Y<id>.mp3"
            if not all(SAFE_NAME.match(part) and part not in (".", "..") for part in parts):
                raise DatasetError(f"{self.path}, dataset audio_name, row {row}: {name!r} is not a plain file name.",
                                   hint="Names must be file names like '64760.mp3' (letters, digits, _ . -), "
                                        "optionally under plain folder names ('03/Yabc.mp3').")
            names.append(name)
        return names

    def packed_targets(self) -> np.ndarray:
        """The ``target`` dataset as stored (``[N, ceil(C / 8)]`` uint8 for packed multi-hot labels)."""
        return np.asarray(self._file["target"][()])

    def targets(self, num_classes: int) -> np.ndarray:
        """Multi-hot labels ``[N, num_classes]`` (bool), unpacked from ``target``."""
        packed = self.packed_targets()
        width = (num_classes + 7) // 8
        if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != width:
            raise DatasetError(f"{self.path}, dataset target: shape {packed.shape} {packed.dtype} is not {num_classes} "
                               f"classes packed with np.packbits ([N, {width}] uint8).",
                               hint="The file belongs to another dataset or vocabulary; check the class list.")
        return np.unpackbits(packed, axis=1, count=num_classes).astype(bool)

    def audio_bytes(self, row: int) -> bytes:
        """The mp3 file bytes of ``row``."""
        return np.asarray(self._file["mp3"][row], dtype=np.uint8).tobytes()


def open_hdf5(path: Path) -> Hdf5Clips:
    """Open an HDF5 file of the PaSST/EfficientAT layout (checks the three datasets exist)."""
    return Hdf5Clips(path)


def clips_folder(path: Path) -> Path:
    """The cache folder of the clips of HDF5 file ``path``: ``hdf5_clips/<stem>-<key>``.

    The key hashes the file's resolved path, size and modification time (hashing a multi-GB file at every
    load would be too slow); a rewritten file therefore gets a new folder. The embedding cache keys each
    clip on its own bytes, so identity does not rest on this key.
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = hashlib.blake2b(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode(), digest_size=6).hexdigest()
    return cache_subdir("hdf5_clips") / f"{path.stem}-{key}"


def materialise(reader: Hdf5Clips, rows: list[int] | None = None, folder: Path | None = None,
                advance: Callable[[int], None] | None = None) -> dict[int, Path]:
    """Write the mp3 bytes of ``rows`` (default: all) to ``<folder>/<audio_name>`` and return row -> path.

    ``folder`` defaults to :func:`clips_folder` of the reader's file. Each file is written atomically and
    skipped when it is already there with the right size, so an interrupted run resumes. Rows with no mp3
    bytes are left out of the result (the caller lists them as missing).

    Disk cost: one copy of the mp3 data of the rows written, i.e. about the size of the HDF5 file itself
    (FSD50K: the three files together; full AudioSet: the whole ~2 M clips of mp3 at 32 kHz). Every load
    reads the mp3 bytes once to compare sizes.
    """
    folder = clips_folder(reader.path) if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = reader.names()
    paths: dict[int, Path] = {}
    for row in range(len(names)) if rows is None else rows:
        data = reader.audio_bytes(row)
        if data:
            target = folder / names[row]
            target.parent.mkdir(parents=True, exist_ok=True)
            if not (target.is_file() and target.stat().st_size == len(data)):
                atomic_write_bytes(target, data)
            paths[row] = target
        if advance is not None:
            advance(1)
    return paths
