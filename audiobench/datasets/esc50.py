"""ESC-50 (K. Piczak): 2000 five-second clips, 50 classes, 5 official folds.

Official layout: ``<root>/meta/esc50.csv`` and ``<root>/audio/<filename>.wav``. A lossless file with the
same stem and another extension (``.flac``, ...) is accepted, as is the PaSST ``audio_32k/`` folder.
"""

from __future__ import annotations

from pathlib import Path

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip, DatasetIndex, OfficialList, check_unique, list_sha256
from audiobench.datasets.table import read_table
from audiobench.download import ArchiveInfo, ProgressCallback, download_archive, unpack_zip
from audiobench.errors import DatasetError

# The archive of one commit of karolpiczak/ESC-50 (immutable; ".../archive/master.zip" is generated on the fly,
# without Content-Length, and changes when the branch moves). 33c8ce9e is the latest commit as of November 2025,
# the commit public ESC-50 loaders pin. No sha256 or size of this archive is published anywhere found; the md5s
# that public loaders pin disagree (hear-preprocess pins 7771e4b9... for an older master.zip, others 629e8e9e...
# and 071b4401... for this commit), so none is pinned here. What is verified instead (see download_esc50):
# the zip's central directory and every member's CRC (catches a cut-short or corrupted download), then the
# unpacked tree: meta/esc50.csv with the ESC-50 columns, one audio file per metadata row and, for this
# archive, 2000 rows and 2000 .wav files.
ARCHIVE_URL = "https://github.com/karolpiczak/ESC-50/archive/33c8ce9eb2cf0b1c2f8bcf322eb349b6be34dbb6.zip"
ARCHIVE = ArchiveInfo(
    url=ARCHIVE_URL, file_name="ESC-50-33c8ce9eb2cf0b1c2f8bcf322eb349b6be34dbb6.zip",
    verification="zip central directory + member CRCs; unpacked: the official list of 2000 clips, all present",
)
ARCHIVE_ROOT = "ESC-50-master"  # the cache folder of the unpacked dataset
LOSSLESS_EXTENSIONS = (".wav", ".flac", ".aiff", ".aif", ".w64")
AUDIO_DIRS = ("audio", "audio_32k")
CLIP_SECONDS = 5.0


def default_root() -> Path:
    """Where a downloaded ESC-50 is kept in the audiobench cache."""
    return cache_subdir("datasets") / ARCHIVE_ROOT


def download_esc50(progress: ProgressCallback | None = None) -> Path:
    """Download, verify and unpack the ESC-50 archive into the cache (resumable; unpacked atomically).

    The download is verified as :data:`ARCHIVE` says; the unpacked tree is moved into place only when
    it loads as ESC-50 and every metadata row has its audio file; for the pinned archive the metadata must
    also be the official list (:data:`OFFICIAL_LIST`), so the unpacked data is the official data.
    """
    import dataclasses

    root = default_root()
    if (root / "meta" / "esc50.csv").is_file():
        return root
    info = dataclasses.replace(ARCHIVE, url=ARCHIVE_URL)  # ARCHIVE_URL may be pointed at a mirror
    pinned = info.url == ARCHIVE.url  # a mirror may serve a subset; the pinned archive must be the official list
    archive = download_archive(info, cache_subdir("downloads"), progress=progress)

    def verify(tree: Path) -> None:
        hint = f"Delete {archive} and run again to download it anew, or point --data-dir at an ESC-50 folder."
        try:
            coverage = load_esc50(tree).coverage()
        except DatasetError as error:
            raise DatasetError(f"Archive {archive} does not unpack to ESC-50: {error}", hint=hint) from None
        if coverage.missing or (pinned and not coverage.official):
            raise DatasetError(f"Archive {archive} is incomplete: {coverage.summary()}.", hint=hint)

    return unpack_zip(archive, root, verify)


#: The official ESC-50 list (meta/esc50.csv of the release): 2000 clips, 400 per fold, 50 classes.
OFFICIAL_LIST = OfficialList(
    total=2000, per_fold={fold: 400 for fold in range(1, 6)},
    sha256="cd9e7912aca5a0328ddb28fe450f6b86f5605f71a792df014c38bad0861f2fd5",
    source="meta/esc50.csv of github.com/karolpiczak/ESC-50",
)
NUM_CLASSES = 50
COLUMNS = ("filename", "fold", "target", "category")


def _audio_files(root: Path) -> dict[str, Path]:
    """Map file stem -> path for every lossless audio file in the audio folders (first folder wins).

    A directory carrying an audio file's name is an error (it would be listed as present but not decode).
    """
    found: dict[str, Path] = {}
    for folder in AUDIO_DIRS:
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix.lower() not in LOSSLESS_EXTENSIONS or path.stem in found:
                continue
            if not path.is_file():
                raise DatasetError(f"{path} is a directory (or not a regular file) where an audio clip should be.",
                                   hint="Replace it with the clip's audio file, or remove it.")
            found[path.stem] = path
    return found


def load_esc50(data_dir: Path | None = None, download: bool = False,
               progress: ProgressCallback | None = None) -> DatasetIndex:
    """Index the ESC-50 clips present under ``data_dir`` (default: the cache, downloading if asked).

    Metadata errors name the file, the row and the column; a clip listed twice is refused.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_root()
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        if data_dir is None and download:
            root = download_esc50(progress)
            meta = root / "meta" / "esc50.csv"
        elif meta.exists():
            raise DatasetError(f"{meta} is a directory, not the ESC-50 metadata file.",
                               hint="Restore meta/esc50.csv from the official release.")
        else:
            raise DatasetError(
                f"ESC-50 metadata {meta} not found.",
                hint=f"Point --data-dir at an ESC-50 folder (meta/esc50.csv + audio/), or pass --download "
                     f"to fetch {ARCHIVE_URL} into the cache.",
            )
    rows = read_table(meta, COLUMNS)
    listed = [(row, row.text("filename"), row.integer("target", 0, NUM_CLASSES - 1), row.integer("fold", 1, 5))
              for row in rows]
    check_unique(((name, f"row {row.line}", fold, Path(name).stem) for row, name, _, fold in listed), meta)
    classes = [""] * (max(target for _, _, target, _ in listed) + 1)
    for row, _, target, _ in listed:
        classes[target] = row.text("category")
    audio = _audio_files(root)
    clips, missing, expected = [], [], {}
    for _, name, target, fold in listed:
        expected[fold] = expected.get(fold, 0) + 1
        stem = Path(name).stem
        if stem in audio:
            clips.append(Clip(clip_id=name, path=audio[stem], label=target, fold=fold))
        else:
            missing.append(name)
    return DatasetIndex(name="esc50", classes=classes, clips=clips, expected_per_fold=dict(sorted(expected.items())),
                        missing=missing, clip_seconds=CLIP_SECONDS, official_list=OFFICIAL_LIST,
                        listed_sha256=list_sha256((name, target, fold) for _, name, target, fold in listed))
