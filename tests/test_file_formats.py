"""Structural checks of downloaded files (audiobench.file_formats): complete files pass, cut ones are caught."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from audiobench.file_formats import check_format
from test_download import PAYLOAD, ZIP


def _gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def _safetensors_bytes() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(16)


@pytest.mark.parametrize("name, data", [
    ("a.zip", ZIP), ("a.gz", _gzip_bytes(PAYLOAD)), ("a.tar", _tar_bytes({"x": PAYLOAD})),
    ("a.tar.gz", _tar_bytes({"x": PAYLOAD}, "w:gz")), ("a.safetensors", _safetensors_bytes()),
])
def test_format_checks_accept_complete_and_catch_cut_files(tmp_path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    assert check_format(path) == (True, None, False)
    path.write_bytes(data[: len(data) * 2 // 3])
    result = check_format(path)
    assert result.checked and result.problem and result.truncated, result


def test_torch_checkpoint_format_check(tmp_path) -> None:
    import torch

    path = tmp_path / "weights.pt"
    torch.save({"w": torch.randn(1000)}, path)
    assert check_format(path).problem is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert check_format(path).truncated
    path.write_bytes(b"not a checkpoint")
    assert check_format(path).problem == "is not a PyTorch checkpoint (neither a zip nor a pickle)"
    assert check_format(tmp_path / "labels.csv") == (False, None, False)  # no check for this format
