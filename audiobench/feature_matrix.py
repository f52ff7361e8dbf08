"""Embedding matrices that live on disk: float32 rows in memory-mapped shard files, read in chunks.

A large task (AudioSet: 2M clips x 960 dims = 7.7 GB) does not fit in memory; a :class:`FeatureMatrix`
keeps it in ``shard-00000.f32``, ``shard-00001.f32``, ... (raw little-endian float32, at most
``rows_per_shard`` rows each) beside a small ``header.json`` (shape, shard files, a crc32 of every shard
written by :meth:`FeatureMatrix.finalize`). A :class:`RowView` names some rows of a matrix (or of an
in-memory array) without reading them; streaming probes read it chunk by chunk, so their memory is
bounded by the chunk size and not by the dataset.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from audiobench.atomic import atomic_write_bytes
from audiobench.errors import AudiobenchError

HEADER = "header.json"
FORMAT_VERSION = 1
DTYPE = np.dtype("<f4")
CRC_BLOCK_BYTES = 1 << 24

Index = Union[int, slice, np.ndarray, list]


def _shard_name(number: int) -> str:
    return f"shard-{number:05d}.f32"


def _file_crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(CRC_BLOCK_BYTES):
            crc = zlib.crc32(block, crc)
    return crc


def _as_row_indices(index: Any, num_rows: int) -> np.ndarray:
    """Integer row numbers (negative ones counted from the end) for an index array or boolean mask."""
    index = np.asarray(index)
    if index.dtype == bool:
        if index.shape != (num_rows,):
            raise IndexError(f"boolean index of shape {index.shape} for {num_rows} rows")
        return np.flatnonzero(index)
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise IndexError(f"row indices must be integers or booleans, got {index.dtype}")
    rows = index.astype(np.int64, copy=False).reshape(-1)
    if rows.size and (rows.min() < -num_rows or rows.max() >= num_rows):
        raise IndexError(f"row index out of range for {num_rows} rows")
    return np.where(rows < 0, rows + num_rows, rows)


class FeatureMatrix:
    """An on-disk float32 matrix ``[N, D]`` split into memory-mapped shard files."""

    def __init__(self, directory: Path, num_rows: int, dim: int, rows_per_shard: int,
                 shards: list[np.memmap], crc32: list[int] | None) -> None:
        self.directory = directory
        self.num_rows, self.dim, self.rows_per_shard = num_rows, dim, rows_per_shard
        self._shards = shards
        self._crc32 = crc32

    # ------------------------------------------------------------------ creating and opening

    @classmethod
    def create(cls, directory: str | Path, num_rows: int, dim: int, rows_per_shard: int = 65536) -> "FeatureMatrix":
        """A new zero-filled matrix in ``directory``, writable with :meth:`write_rows` until :meth:`finalize`."""
        if num_rows < 0 or dim < 1 or rows_per_shard < 1:
            raise ValueError(f"FeatureMatrix needs num_rows >= 0, dim >= 1, rows_per_shard >= 1; "
                             f"got {num_rows}, {dim}, {rows_per_shard}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        counts = [min(rows_per_shard, num_rows - start) for start in range(0, num_rows, rows_per_shard)]
        shards = [np.memmap(directory / _shard_name(i), dtype=DTYPE, mode="w+", shape=(rows, dim))
                  for i, rows in enumerate(counts)]
        matrix = cls(directory, num_rows, dim, rows_per_shard, shards, None)
        matrix._write_header()
        return matrix

    @classmethod
    def open(cls, directory: str | Path) -> "FeatureMatrix":
        """Open a finalised matrix read-only (its shards are memory-mapped, nothing is read yet)."""
        directory = Path(directory)
        try:
            header = json.loads((directory / HEADER).read_text())
            num_rows, dim, rows_per_shard = int(header["num_rows"]), int(header["dim"]), int(header["rows_per_shard"])
            entries = header["shards"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise AudiobenchError(f"{directory / HEADER} is not a readable feature-matrix header ({error}).",
                                  hint="Delete the directory and write the features again.") from None
        if header.get("crc32") is None:
            raise AudiobenchError(f"The feature matrix {directory} was never finalised (writing was interrupted).",
                                  hint="Delete the directory and write the features again.")
        shards = []
        for entry in entries:
            path = directory / entry["file"]
            expected = int(entry["rows"]) * dim * DTYPE.itemsize
            if not path.is_file() or path.stat().st_size != expected:
                raise AudiobenchError(f"Feature shard {path} is missing or not {expected} bytes long.",
                                      hint="Delete the directory and write the features again.")
            shards.append(np.memmap(path, dtype=DTYPE, mode="r", shape=(int(entry["rows"]), dim)))
        return cls(directory, num_rows, dim, rows_per_shard, shards, [int(c) for c in header["crc32"]])

    def _write_header(self) -> None:
        header = {"format": "audiobench-feature-matrix", "version": FORMAT_VERSION, "dtype": DTYPE.str,
                  "num_rows": self.num_rows, "dim": self.dim, "rows_per_shard": self.rows_per_shard,
                  "shards": [{"file": _shard_name(i), "rows": len(s)} for i, s in enumerate(self._shards)],
                  "crc32": self._crc32}
        atomic_write_bytes(self.directory / HEADER, json.dumps(header, indent=1).encode())

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` ``[n, D]`` at rows ``start .. start + n - 1`` (across shard boundaries)."""
        rows = np.asarray(rows, dtype=DTYPE)
        if self._crc32 is not None:
            raise AudiobenchError(f"The feature matrix {self.directory} is finalised and read-only.",
                                  hint="Create a new FeatureMatrix to write other features.")
        if rows.ndim != 2 or rows.shape[1] != self.dim or start < 0 or start + len(rows) > self.num_rows:
            raise ValueError(f"cannot write rows of shape {rows.shape} at row {start} of a "
                             f"{self.num_rows} x {self.dim} matrix")
        done = 0
        while done < len(rows):
            shard, offset = divmod(start + done, self.rows_per_shard)
            count = min(len(rows) - done, self.rows_per_shard - offset)
            self._shards[shard][offset:offset + count] = rows[done:done + count]
            done += count

    def finalize(self) -> None:
        """Flush every shard, record its crc32 in the header and make the matrix read-only."""
        if self._crc32 is not None:
            return
        for shard in self._shards:
            shard.flush()
        self._crc32 = [_file_crc32(self.directory / _shard_name(i)) for i in range(len(self._shards))]
        self._write_header()
        self._shards = [np.memmap(self.directory / _shard_name(i), dtype=DTYPE, mode="r", shape=s.shape)
                        for i, s in enumerate(self._shards)]

    def verify(self) -> None:
        """Recompute every shard's crc32; raise :class:`AudiobenchError` naming the first damaged shard."""
        if self._crc32 is None:
            raise AudiobenchError(f"The feature matrix {self.directory} is not finalised; nothing to verify.",
                                  hint="Call finalize() after writing every row.")
        for number, expected in enumerate(self._crc32):
            path = self.directory / _shard_name(number)
            if _file_crc32(path) != expected:
                raise AudiobenchError(f"Feature shard {path} is damaged (crc32 differs from the header).",
                                      hint="Delete the directory and write the features again.")

    # ------------------------------------------------------------------ reading

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_rows, self.dim)

    @property
    def dtype(self) -> np.dtype:
        return DTYPE

    def __len__(self) -> int:
        return self.num_rows

    def __getitem__(self, index: Index) -> np.ndarray:
        """Rows as an in-memory array, like numpy indexing: an int gives ``[D]``, a slice or index array ``[n, D]``."""
        if isinstance(index, (int, np.integer)):
            return self._gather(_as_row_indices([index], self.num_rows))[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(self.num_rows)
            if step == 1:
                return self._contiguous(start, max(start, stop))
            return self._gather(np.arange(start, stop, step, dtype=np.int64))
        return self._gather(_as_row_indices(index, self.num_rows))

    def _contiguous(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.dim), dtype=DTYPE)
        done = start
        while done < stop:
            shard, offset = divmod(done, self.rows_per_shard)
            count = min(stop - done, self.rows_per_shard - offset)
            out[done - start:done - start + count] = self._shards[shard][offset:offset + count]
            done += count
        return out

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        if rows.size and np.all(np.diff(rows) == 1):  # one run of rows: plain slices, no fancy indexing
            return self._contiguous(int(rows[0]), int(rows[-1]) + 1)
        out = np.empty((len(rows), self.dim), dtype=DTYPE)
        shard_of, offset = np.divmod(rows, self.rows_per_shard)
        for shard in np.unique(shard_of):
            chosen = np.flatnonzero(shard_of == shard)
            out[chosen] = self._shards[int(shard)][offset[chosen]]
        return out

    def rows(self, indices: Any = None) -> "RowView":
        """A lazy view of the rows ``indices`` (all rows when None), in that order."""
        return row_view(self, indices)

    def __repr__(self) -> str:
        return f"FeatureMatrix({str(self.directory)!r}, shape={self.shape}, shards={len(self._shards)})"


class RowView:
    """Some rows of a :class:`FeatureMatrix` or an in-memory array, in a given order, not read yet."""

    def __init__(self, source: FeatureMatrix | np.ndarray, indices: np.ndarray | None = None) -> None:
        self.source = source
        self.indices = indices  # None: every row of source, in order

    def __len__(self) -> int:
        return len(self.source) if self.indices is None else len(self.indices)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.source.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def _read(self, start: int, stop: int) -> np.ndarray:
        if self.indices is None:
            return np.asarray(self.source[start:stop])
        return np.asarray(self.source[self.indices[start:stop]])

    def chunks(self, max_rows: int) -> Iterator[np.ndarray]:
        """In-memory arrays of at most ``max_rows`` consecutive rows of the view, covering it in order."""
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        for start in range(0, len(self), max_rows):
            yield self._read(start, min(start + max_rows, len(self)))

    def materialize(self) -> np.ndarray:
        """Every row of the view as one in-memory array."""
        return self._read(0, len(self))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.materialize()
        return array if dtype is None else array.astype(dtype, copy=False)

    def __getitem__(self, index: Index) -> np.ndarray:
        """Rows of the view, read now (numpy indexing semantics)."""
        if isinstance(index, (int, np.integer)):
            position: Any = range(len(self))[int(index)]  # IndexError when out of range
        elif isinstance(index, slice):
            position = np.arange(*index.indices(len(self)), dtype=np.int64)
        else:
            position = _as_row_indices(index, len(self))
        return np.asarray(self.source[position if self.indices is None else self.indices[position]])

    def __repr__(self) -> str:
        source = self.source if isinstance(self.source, FeatureMatrix) else f"an array of shape {self.source.shape}"
        return f"RowView({len(self)} rows of {source})"


def row_view(features: FeatureMatrix | np.ndarray | RowView, indices: Any = None) -> RowView:
    """A lazy view of rows ``indices`` (an index array, boolean mask or None for all) of ``features``."""
    if isinstance(features, RowView):
        if indices is None:
            return features
        positions = _as_row_indices(indices, len(features))
        return RowView(features.source, positions if features.indices is None else features.indices[positions])
    if not isinstance(features, FeatureMatrix):
        features = np.asarray(features)
    return RowView(features, None if indices is None else _as_row_indices(indices, len(features)))
