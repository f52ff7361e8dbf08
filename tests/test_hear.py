"""HEAR 2021 API in both directions: ``--model hear:<module>`` and ``audiobench.hear.<model>``."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from shared_material import ESC50, MN04, require
import audiobench
from audiobench.errors import UnknownNameError
from audiobench.models.hear_module import HEARModuleError
from audiobench.registry import MODELS

# A HEAR module: 25 ms frames (10 ms hop) at 16 kHz -> log energy of 8 sub-bands of the frame's
# spectrum; timestamp embedding = those 8 values projected by a small linear layer, scene = mean and
# std over time. A model file, when given, is a state_dict of that layer.
TINY_MODULE = '''
import torch

LOADED_FROM = []


class TinyModel(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = 16
    timestamp_embedding_size = 8

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(8, 8)


def load_model(model_file_path: str = "") -> TinyModel:
    LOADED_FROM.append(model_file_path)
    model = TinyModel()
    if model_file_path:
        model.proj.load_state_dict(torch.load(model_file_path, weights_only=True))
    return model


def get_timestamp_embeddings(audio, model):
    frames = torch.nn.functional.pad(audio, (200, 200)).unfold(-1, 400, 160)  # [n, T, 400]
    power = torch.fft.rfft(frames, dim=-1).abs()[..., :200] ** 2
    bands = torch.log(power.reshape(*power.shape[:-1], 8, 25).mean(-1) + 1e-8)
    timestamps = torch.arange(frames.shape[1], dtype=torch.float32) * 10.0
    return model.proj(bands), timestamps.expand(audio.shape[0], -1)


def get_scene_embeddings(audio, model):
    frames, _ = get_timestamp_embeddings(audio, model)
    return torch.cat([frames.mean(1), frames.std(1)], dim=-1)
'''


@pytest.fixture
def tiny_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``tiny_hear_mod`` written to ``tmp_path`` and importable."""
    (tmp_path / "tiny_hear_mod.py").write_text(TINY_MODULE)
    (tmp_path / "half_hear_mod.py").write_text("def load_model(model_file_path=''):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("tiny_hear_mod", "half_hear_mod"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return "tiny_hear_mod"


def test_hear_module_as_model(tiny_module: str) -> None:
    model = audiobench.load_model(f"hear:{tiny_module}")
    assert (model.card.name, model.card.family) == ("hear:tiny_hear_mod", "hear")
    assert (model.sample_rate, model.embedding_dim) == (16000, 16)
    assert model.num_parameters() == 8 * 8 + 8
    audio = torch.randn(3, 16000)
    assert model.embed(audio).shape == (3, 16)
    frames, timestamps = model.embed_frames(audio)
    assert frames.shape == (3, 101, 8) and timestamps.shape == (101,)
    assert bool((timestamps.diff() > 0).all())
    fingerprint = model.fingerprint()
    assert fingerprint["module"] == tiny_module and fingerprint["module_sha256"]
    assert fingerprint["checkpoint_sha256"] is None


def test_model_file_goes_to_the_module(tiny_module: str, tmp_path: Path) -> None:
    weights = tmp_path / "proj.pt"
    torch.save({"weight": torch.eye(8), "bias": torch.zeros(8)}, weights)
    model = audiobench.load_model(f"hear:{tiny_module}", checkpoint=weights)
    assert sys.modules[tiny_module].LOADED_FROM[-1] == str(weights)
    assert torch.equal(model.hear_model.proj.weight, torch.eye(8))
    assert model.checkpoint_sha256 and model.checkpoint_path == str(weights)
    plain = audiobench.load_model(f"hear:{tiny_module}")
    assert plain.fingerprint() != model.fingerprint()


def test_hear_names_are_resolved_not_listed(tiny_module: str) -> None:
    assert MODELS.entry(f"hear:{tiny_module}").info.config["module"] == tiny_module
    assert not any(name.startswith("hear:") for name in MODELS.names())
    with pytest.raises(UnknownNameError) as error:
        MODELS.entry("no-such-model")
    assert "hear:" in (error.value.hint or "")


def test_missing_api_functions_are_named(tiny_module: str) -> None:
    with pytest.raises(HEARModuleError, match="get_scene_embeddings, get_timestamp_embeddings"):
        audiobench.load_model("hear:half_hear_mod")


def test_unimportable_module() -> None:
    with pytest.raises(UnknownNameError, match="cannot be imported") as info:
        MODELS.entry("hear:no_such_hear_module_xyz")
    assert "no module named 'no_such_hear_module_xyz' is installed" in str(info.value)
    assert "Install" in info.value.hint


BROKEN_MODULES = {
    # name: (source, expected error type, line of the error in the module file)
    "broken_raises_hear_mod": ("import os\n\nraise RuntimeError('no GPU driver found')\n", "RuntimeError", 3),
    "broken_dependency_hear_mod": ("import os\nimport no_such_dependency_xyz\n", "ModuleNotFoundError", 2),
    "broken_syntax_hear_mod": ("def load_model(:\n    pass\n", "SyntaxError", 1),
}


@pytest.fixture
def broken_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, (source, _, _) in BROKEN_MODULES.items():
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", sorted(BROKEN_MODULES))
def test_installed_module_that_fails_to_import_is_not_reported_as_missing(broken_modules: Path, name: str) -> None:
    _, error_type, line = BROKEN_MODULES[name]
    with pytest.raises(HEARModuleError) as info:
        MODELS.entry(f"hear:{name}")
    message = str(info.value)
    assert "is installed but failed while importing" in message and error_type in message
    assert f"{broken_modules / (name + '.py')}:{line}" in message
    assert "Install the package" not in info.value.hint
    assert "import error" in info.value.hint and "AUDIOBENCH_DEBUG=1" in info.value.hint
    if name == "broken_dependency_hear_mod":
        assert "no_such_dependency_xyz" in message


def test_import_error_traceback_only_with_debug(broken_modules: Path, tmp_path: Path, monkeypatch) -> None:
    from audiobench.cli import app

    args = ["run", "--task", "synthetic", "--model", "hear:broken_raises_hear_mod", "-o", str(tmp_path / "out")]
    monkeypatch.delenv("AUDIOBENCH_DEBUG", raising=False)
    quiet = CliRunner().invoke(app, args)
    assert quiet.exit_code == 2 and "Traceback" not in quiet.output and "no GPU driver found" in quiet.output
    monkeypatch.setenv("AUDIOBENCH_DEBUG", "1")
    loud = CliRunner().invoke(app, args)
    assert loud.exit_code == 2 and "Traceback" in loud.output and "broken_raises_hear_mod.py" in loud.output


def test_hear_model_accepts_numpy(tiny_module: str) -> None:
    import numpy as np

    model = audiobench.load_model(f"hear:{tiny_module}")
    clip = np.random.default_rng(0).standard_normal(16000) * 0.1
    reference = model.embed(torch.as_tensor(clip, dtype=torch.float32).unsqueeze(0))
    torch.testing.assert_close(model.embed(clip), reference)
    frames, timestamps = model.embed_frames(np.stack([clip, clip]))
    assert frames.shape == (2, 101, 8) and timestamps.shape == (101,)


def _run_cli(args: list[str]) -> dict:
    from audiobench.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_run_synthetic_with_hear_module(tiny_module: str, tmp_path: Path) -> None:
    summary = _run_cli(["run", "--task", "synthetic", "--model", f"hear:{tiny_module}", "-o", str(tmp_path / "out"),
                        "--workers", "0", "--json"])
    assert summary["model"]["name"] == "hear:tiny_hear_mod" and summary["model"]["embedding_dim"] == 16
    assert Path(summary["record_path"]).is_file()
    assert summary["metrics"]["accuracy"]


def test_run_esc50_with_hear_module(tiny_module: str, tmp_path: Path) -> None:
    data = require(ESC50)
    summary = _run_cli(["run", "--task", "esc50", "--model", f"hear:{tiny_module}", "--cv", "5", "--data-dir",
                        str(data), "-o", str(tmp_path / "out"), "--json"])
    assert summary["task"]["name"] == "esc50" and summary["embeddings"]["computed"] > 0
    assert Path(summary["record_path"]).is_file()


def test_audiobench_model_as_hear_module() -> None:
    from audiobench.hear_api import hear_module_for, module_name_for

    assert module_name_for("logmel-stats") == "audiobench.hear.logmel_stats"
    module = importlib.import_module("audiobench.hear.logmel_stats")
    assert hear_module_for("logmel-stats") is module
    model = module.load_model()
    assert (model.sample_rate, model.scene_embedding_size) == (32000, 256)
    audio = torch.randn(2, 32000) * 0.1
    assert module.get_scene_embeddings(audio, model).shape == (2, 256)
    frames, timestamps = module.get_timestamp_embeddings(audio, model)  # sliding-window fallback
    assert frames.shape[0::2] == (2, 256) and timestamps.shape == frames.shape[:2]
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("audiobench.hear.no_such_model")


def test_mn04_as_hear_module() -> None:
    module = importlib.import_module("audiobench.hear.mn04")
    model = module.load_model(str(require(MN04)))
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (32000, 384, 384)
    audio = torch.randn(2, 32000 * 2) * 0.1
    assert module.get_scene_embeddings(audio, model).shape == (2, 384)
    frames, timestamps = module.get_timestamp_embeddings(audio, model)
    assert frames.shape[0] == 2 and frames.shape[2] == 384 and timestamps.shape == frames.shape[:2]
    assert bool((timestamps[0].diff() > 0).all()) and float(timestamps[0, -1]) <= 2000.0  # last: centred on the end
