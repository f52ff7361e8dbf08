"""The PaSST/EfficientAT HDF5 reader on tiny files written in that layout (mp3 bytes, packed targets)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

h5py = pytest.importorskip("h5py")

from audiobench.datasets.hdf5_layout import clips_folder, materialise, open_hdf5  # noqa: E402
from audiobench.errors import DatasetError  # noqa: E402


def mp3_bytes(seconds: float = 0.5, frequency: float = 440.0, rate: int = 32000) -> bytes:
    """A short tone encoded as mp3 by libsndfile (skips the test where libsndfile cannot write mp3)."""
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write mp3 (needs 1.1.0+ built with lame/mpg123)")
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate, format="MP3")
    return buffer.getvalue()


def write_hdf5(path: Path, names: list[str], mp3s: list[bytes], multi_hot: np.ndarray,
               skip: tuple[str, ...] = ()) -> Path:
    """An HDF5 file as the PaSST prepare scripts write it (datasets in ``skip`` left out)."""
    packed = np.packbits(np.asarray(multi_hot, dtype=np.uint8), axis=-1)
    with h5py.File(path, "w") as handle:
        if "audio_name" not in skip:
            handle.create_dataset("audio_name", data=np.array([n.encode() for n in names], dtype="S20"))
        if "mp3" not in skip:
            column = handle.create_dataset("mp3", shape=(len(mp3s),), dtype=h5py.vlen_dtype(np.dtype("uint8")))
            for row, data in enumerate(mp3s):
                column[row] = np.frombuffer(data, dtype=np.uint8)
        if "target" not in skip:
            handle.create_dataset("target", data=packed)
    return path


@pytest.fixture
def small_file(tmp_path) -> tuple[Path, np.ndarray, list[bytes]]:
    hot = np.zeros((3, 11), dtype=bool)
    hot[0, [0, 10]] = hot[1, 3] = hot[2, [1, 2, 9]] = True
    mp3s = [mp3_bytes(0.4, 300), mp3_bytes(0.6, 600), b""]  # the last row has no audio
    return write_hdf5(tmp_path / "tiny_mp3.hdf", ["a1.mp3", "b2.mp3", "c3.mp3"], mp3s, hot), hot, mp3s


def test_reader_lists_names_targets_and_audio(small_file) -> None:
    path, hot, mp3s = small_file
    with open_hdf5(path) as reader:
        assert len(reader) == 3 and reader.names() == ["a1.mp3", "b2.mp3", "c3.mp3"]
        np.testing.assert_array_equal(reader.targets(11), hot)
        assert reader.packed_targets().shape == (3, 2)
        assert reader.audio_bytes(1) == mp3s[1] and reader.audio_bytes(2) == b""
        with pytest.raises(DatasetError, match="packed with np.packbits"):
            reader.targets(20)  # 20 classes need 3 bytes per row, the file has 2


def test_materialise_writes_decodable_files_once(small_file, isolated_cache) -> None:
    path, _, mp3s = small_file
    with open_hdf5(path) as reader:
        paths = materialise(reader)
    assert sorted(paths) == [0, 1]  # the row without mp3 bytes is left out
    assert paths[0].parent == clips_folder(path) and str(paths[0]).startswith(str(isolated_cache / "hdf5_clips"))
    assert paths[0].read_bytes() == mp3s[0] and paths[1].name == "b2.mp3"
    audio, rate = sf.read(paths[1])
    assert rate == 32000 and abs(len(audio) - 0.6 * 32000) < 2000
    before = paths[0].stat().st_mtime_ns
    with open_hdf5(path) as reader:
        again = materialise(reader, rows=[0])
    assert again == {0: paths[0]} and paths[0].stat().st_mtime_ns == before  # present with the right size: kept


def test_materialise_rewrites_a_cut_short_file(small_file) -> None:
    path, _, mp3s = small_file
    with open_hdf5(path) as reader:
        first = materialise(reader, rows=[0])[0]
        first.write_bytes(mp3s[0][:100])
        materialise(reader, rows=[0])
    assert first.read_bytes() == mp3s[0]


@pytest.mark.parametrize("absent", ["target", "mp3", "audio_name"])
def test_file_without_a_dataset_is_refused(tmp_path, absent) -> None:
    path = write_hdf5(tmp_path / "bad.hdf", ["a.mp3"], [b"xx"], np.ones((1, 4), bool), skip=(absent,))
    with pytest.raises(DatasetError) as info:
        open_hdf5(path)
    assert str(path) in str(info.value) and absent in str(info.value)
    assert "PaSST" in info.value.hint


def test_not_hdf5_and_unsafe_names_are_refused(tmp_path) -> None:
    junk = tmp_path / "junk.hdf"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError, match="cannot be opened as HDF5"):
        open_hdf5(junk)
    path = write_hdf5(tmp_path / "names.hdf", ["ok.mp3", "../evil.mp3"], [b"x", b"y"], np.zeros((2, 8), bool))
    with open_hdf5(path) as reader, pytest.raises(DatasetError, match="row 1.*not a plain file name"):
        reader.names()
