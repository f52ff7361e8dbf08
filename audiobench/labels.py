"""Class names of pretrained heads (e.g. the 527 AudioSet labels), resolved like checkpoints."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from audiobench.cachedir import cache_subdir
from audiobench.download import DownloadError, download


@dataclass(frozen=True)
class LabelSet:
    """A published list of class names."""

    file_name: str | None = None
    url: str | None = None
    name_column: str = "display_name"
    names: tuple[str, ...] = ()  # for short label sets that are fixed facts


#: TAU Urban Acoustic Scenes 2022 Mobile scene classes in alphabetical order (the order the
#: DCASE baselines and CP-Mobile use).
TAU22_SCENES: tuple[str, ...] = (
    "airport", "bus", "metro", "metro_station", "park", "public_square",
    "shopping_mall", "street_pedestrian", "street_traffic", "tram",
)


LABEL_SETS: dict[str, LabelSet] = {
    "audioset": LabelSet(
        file_name="class_labels_indices.csv",
        url="http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/class_labels_indices.csv",
        name_column="display_name",
    ),
    "tau22": LabelSet(names=TAU22_SCENES),
}


def read_label_file(path: Path, name_column: str) -> list[str]:
    """Class names in index order from a CSV file with an ``index`` column."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row[name_column] for row in sorted(rows, key=lambda r: int(r["index"]))]


def resolve_labels(label_set: str, num_classes: int, explicit: Path | None = None,
                   checkpoint: Path | None = None, allow_download: bool = True) -> tuple[list[str], str | None]:
    """Class names for ``label_set`` and a warning (None when the real names were found).

    Looks at ``explicit``, then next to the checkpoint, then in the cache, then downloads; when all
    fail, names are ``class <i>`` and the warning says where to put the file.
    """
    info = LABEL_SETS[label_set]
    if info.names:
        return list(info.names), None
    cached = cache_subdir("labels") / f"{label_set}_{info.file_name}"
    candidates = [explicit, checkpoint.parent / info.file_name if checkpoint else None, cached]
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_file():
            names = read_label_file(Path(candidate), info.name_column)
            if len(names) == num_classes:
                return names, None
    if allow_download:
        try:
            names = read_label_file(download(info.url, cached), info.name_column)
        except DownloadError:
            names = []
        if len(names) == num_classes:
            return names, None
    return [f"class {i}" for i in range(num_classes)], (
        f"{label_set} class names not found offline; showing class indices. Download {info.url} to {cached} "
        f"(or pass --labels PATH) to see names.")
