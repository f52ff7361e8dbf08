"""Reading dataset metadata tables (csv/tsv) with errors that name the file, the row and the column.

Every loader reads its metadata through :func:`read_table` and converts fields with :class:`Row`'s
typed getters, so ordinary mistakes in a metadata file (a missing column, a fold ``x``, a target out of
range, a file that is not UTF-8, an empty file) end in one clear :class:`~audiobench.errors.DatasetError`
instead of a traceback. Row numbers are 1-based lines of the file (the header is line 1).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from audiobench.errors import DatasetError


@dataclass(frozen=True)
class Row:
    """One metadata row: its fields by column name and its line number in ``path``."""

    path: Path
    line: int
    fields: dict[str, str]

    def _where(self, column: str) -> str:
        return f"{self.path}, row {self.line}, column {column!r}"

    def text(self, column: str) -> str:
        """The field ``column``, stripped; an empty value is an error."""
        value = (self.fields.get(column) or "").strip()
        if not value:
            raise DatasetError(f"{self._where(column)} is empty.", hint=f"Fill in the {column} of this row.")
        return value

    def integer(self, column: str, low: int | None = None, high: int | None = None) -> int:
        """The field ``column`` as an integer in ``[low, high]`` (bounds optional)."""
        value = self.text(column)
        try:
            number = int(value)
        except ValueError:
            raise DatasetError(f"{self._where(column)}: {value!r} is not an integer.",
                               hint=f"Use a whole number for {column}.") from None
        if (low is not None and number < low) or (high is not None and number > high):
            span = f"{low}..{high}" if low is not None and high is not None else (
                f">= {low}" if low is not None else f"<= {high}")
            raise DatasetError(f"{self._where(column)}: {number} is out of range (expected {span}).",
                               hint="Fix the value, or restore the official metadata file.")
        return number


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark is accepted and dropped
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DatasetError(f"{path}, row {line}: byte 0x{data[error.start]:02x} is not UTF-8 (the file looks like "
                           f"latin-1 or another legacy encoding).",
                           hint=f"Convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed.csv`, "
                                f"or restore the official file.") from None


def read_table(path: Path, required: Iterable[str], delimiter: str = ",") -> list[Row]:
    """Rows of a metadata table with a header line; checks the file is readable text with ``required`` columns."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path} is a directory, not a metadata file.", hint="Point at the dataset's metadata file.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path} cannot be read ({error.strerror or error}).",
                           hint="Check the path and its permissions.") from None
    text = _decode(path, data)
    if not text.strip():
        raise DatasetError(f"{path} is empty.", hint="Restore the official metadata file.")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [column for column in required if column not in header]
    if missing:
        separator = "tab" if delimiter == "\t" else repr(delimiter)
        raise DatasetError(f"{path}, row 1 (header): missing column(s) {', '.join(map(repr, missing))}; "
                           f"found {header} ({separator}-separated).",
                           hint=f"The file needs the columns {list(required)}; restore the official metadata.")
    reader.fieldnames = header
    rows = []
    for record in reader:
        if None in record:  # more fields than header columns
            raise DatasetError(f"{path}, row {reader.line_num}: more fields than the header's {len(header)} columns.",
                               hint="Quote fields that contain the delimiter, or restore the official file.")
        rows.append(Row(path=path, line=reader.line_num, fields={k: v or "" for k, v in record.items()}))
    if not rows:
        raise DatasetError(f"{path} has a header but no rows.", hint="Restore the official metadata file.")
    return rows
