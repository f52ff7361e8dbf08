"""The cache can never hand back an embedding or a complexity count that another model, weights file,
input pipeline or version of the code computed, nor a damaged one."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.cache import EmbeddingCache
from audiobench.code_version import code_modules, source_digest
from audiobench.datasets.base import Clip
from audiobench.embeddings import cache_for, clip_key, extract_embeddings
from audiobench.errors import CacheWarning

import golden_outputs


# --------------------------------------------------------------------------- derived code version


def test_source_digest_ignores_docs_and_layout_but_not_code() -> None:
    base = 'def f(x):\n    """Doc."""\n    return x * 2  # comment\n'
    same = 'def f(x):\n    """Other doc."""\n\n    return x*2\n'
    changed = 'def f(x):\n    """Doc."""\n    return x * 3\n'
    assert source_digest(base) == source_digest(same)
    assert source_digest(base) != source_digest(changed)


def test_model_code_covers_layers_frontend_and_their_imports() -> None:
    from audiobench import load_model
    from audiobench.code_version import modules_of

    modules = code_modules(modules_of([m for m in load_model("dymn04").modules()]))
    for needed in ("audiobench.models.dymn", "audiobench.models.dymn_layers", "audiobench.frontends",
                   "audiobench.models.mel_adapter", "audiobench.models.base"):
        assert needed in modules
    assert "audiobench.models.passt" not in modules  # another family's code does not invalidate this one
    assert not any(m.startswith(("audiobench.datasets", "audiobench.errors")) for m in modules)


def test_golden_outputs_change_only_with_the_version(tmp_path: Path) -> None:
    """An output that changed while its derived version did not means the derivation misses code."""
    golden = json.loads(golden_outputs.GOLDEN.read_text())
    now = golden_outputs.current(tmp_path)
    stale = []
    for name, expected in golden.items():
        got = now[name]
        same_output = np.allclose(got["values"], expected["values"], rtol=1e-4, atol=1e-5)
        if got["version"] == expected["version"]:
            assert same_output, (f"{name}: output changed but its implementation version "
                                 f"{got['version']} did not: the version misses the code that changed")
        else:
            stale.append(name)
    assert not stale, (f"code version changed for {stale}: check the outputs are meant to change, then renew "
                       f"the golden file with `.venv/bin/python tests/golden_outputs.py --update`")


# --------------------------------------------------------------------------- what the key covers


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "a.wav"
    sf.write(path, (np.sin(np.arange(16000) / 7.0) * 0.3).astype(np.float32), 16000, subtype="PCM_16")
    return path


def test_key_covers_weights_config_input_and_code(tmp_path: Path, monkeypatch) -> None:
    from audiobench import load_model

    model = load_model("mn01")
    base = cache_for(model, tmp_path).fingerprint
    assert {"checkpoint_sha256", "config", "frontend", "sample_rate", "implementation", "input"} <= set(base)
    assert {"sample_rate", "resampler", "decoder", "crop", "pad", "implementation"} <= set(base["input"])
    key = cache_for(model, tmp_path).model_key
    model.checkpoint_sha256 = "0" * 64
    assert cache_for(model, tmp_path).model_key != key
    model.checkpoint_sha256 = None
    monkeypatch.setattr(type(model), "code_version", lambda self: "changed")
    assert cache_for(model, tmp_path).model_key != key


def test_clip_key_covers_length_and_audio_bytes(wav: Path, tmp_path: Path) -> None:
    other = tmp_path / "b.wav"
    other.write_bytes(wav.read_bytes()[:-2] + b"\x01\x00")
    assert clip_key(wav, 1.0) != clip_key(wav, 0.5)
    assert clip_key(wav, 1.0) != clip_key(other, 1.0)


TINY_HEAR = '''
import pathlib
import torch

WEIGHTS = pathlib.Path(__file__).with_name("tiny_weights.bin")


class Model(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = 4
    timestamp_embedding_size = 4

    def __init__(self):
        super().__init__()
        self.scale = float(WEIGHTS.read_bytes()[0])


def load_model(model_file_path=""):
    return Model()


def get_scene_embeddings(audio, model):
    return torch.ones(audio.shape[0], 4) * model.scale


def get_timestamp_embeddings(audio, model):
    return torch.ones(audio.shape[0], 1, 4), torch.zeros(audio.shape[0], 1)
'''


def test_hear_module_weights_it_loads_itself_are_in_the_key(tmp_path: Path, monkeypatch) -> None:
    import sys

    import audiobench

    (tmp_path / "tiny_self_loading.py").write_text(TINY_HEAR)
    weights = tmp_path / "tiny_weights.bin"
    weights.write_bytes(b"\x02")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = audiobench.load_model("hear:tiny_self_loading")
    fingerprint = model.fingerprint()
    assert dict(fingerprint["weight_files"]) == {"tiny_weights.bin": _sha256(weights)}
    first = cache_for(model, tmp_path / "cache").model_key
    weights.write_bytes(b"\x03")  # new weights, same module and version
    sys.modules.pop("tiny_self_loading", None)
    again = audiobench.load_model("hear:tiny_self_loading")
    assert cache_for(again, tmp_path / "cache").model_key != first


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- damaged entries


def _good_entry(tmp_path: Path) -> tuple[EmbeddingCache, str]:
    cache = EmbeddingCache(tmp_path, {"model": "m"}, shape=(8,))
    key = "1f" * 32
    cache.put(key, np.arange(8, dtype=np.float32))
    return cache, key


def _store_raw(array: np.ndarray):
    return lambda cache, key: cache.store.put(key, array)  # bypasses the cache's own checks


def _edit_shard(edit):
    def damage(cache: EmbeddingCache, key: str) -> None:
        shard, offset, nbytes = cache.store.location(key)
        shard.write_bytes(edit(shard.read_bytes(), offset, nbytes))
    return damage


DAMAGES = {
    "wrong shape": _store_raw(np.zeros(5, np.float32)),
    "wrong dtype": _store_raw(np.zeros(8, np.float64)),
    "nan": _store_raw(np.array([np.nan] * 8, np.float32)),
    "inf": _store_raw(np.array([np.inf] * 8, np.float32)),
    "torn write": _edit_shard(lambda raw, offset, nbytes: raw[:offset + nbytes // 2]),
    "flipped byte": _edit_shard(lambda raw, offset, nbytes: raw[:offset + 3] + bytes([raw[offset + 3] ^ 0x10])
                                + raw[offset + 4:]),
    "shard deleted": lambda cache, key: cache.store.location(key)[0].unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_entry_is_dropped_and_named(tmp_path: Path, damage: str) -> None:
    cache, key = _good_entry(tmp_path)
    DAMAGES[damage](cache, key)
    reader = EmbeddingCache(tmp_path, {"model": "m"}, shape=(8,))  # a later run reads the damaged store
    assert reader.get(key) is None
    damaged = reader.take_damaged()
    assert [k for k, _ in damaged] == [key] and key not in reader.store


def test_damaged_entry_is_recomputed_with_a_warning(wav: Path, tmp_path: Path) -> None:
    from audiobench import load_model

    model = load_model("logmel-stats")
    clips = [Clip(clip_id="a.wav", path=wav, label=0)]
    cache = cache_for(model, tmp_path / "cache")
    first, _ = extract_embeddings(model, clips, 1.0, cache, num_workers=0)
    key = clip_key(wav, 1.0)
    shard, offset, _ = cache.store.location(key)
    raw = shard.read_bytes()
    shard.write_bytes(raw[:offset + 5] + bytes([raw[offset + 5] ^ 0xFF]) + raw[offset + 6:])  # one flipped byte
    with pytest.warns(CacheWarning, match=key):
        again, stats = extract_embeddings(model, clips, 1.0, cache_for(model, tmp_path / "cache"), num_workers=0)
    assert stats.computed == 1
    np.testing.assert_array_equal(first, again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, stats = extract_embeddings(model, clips, 1.0, cache, num_workers=0)
    assert stats.reused == 1


def test_hand_edited_complexity_entry_never_reaches_a_record(tmp_path: Path) -> None:
    from audiobench import load_model
    from audiobench.cachedir import cache_subdir
    from audiobench.complexity import cached_complexity

    model = load_model("mn01")
    record = cached_complexity(model)
    (entry,) = list(cache_subdir("complexity").glob("*.json"))
    data = json.loads(entry.read_text())
    data["record"]["macs"]["total"] = 1
    entry.write_text(json.dumps(data))
    with pytest.warns(CacheWarning, match="checksum"):
        recounted = cached_complexity(model)
    assert recounted["macs"]["total"] == record["macs"]["total"] > 1
    assert cached_complexity(model) == recounted


# --------------------------------------------------------------------------- only what was used is recorded


def test_checkpoint_for_a_weight_free_model_is_refused(tmp_path: Path) -> None:
    from audiobench import load_model
    from audiobench.errors import CheckpointError

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="no weights"):
        load_model("logmel-stats", checkpoint=weights)


def test_batch_size_is_recorded_only_when_embeddings_were_computed(tmp_path: Path, monkeypatch) -> None:
    from audiobench import provenance
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)
    options = RunOptions(task="synthetic", model="logmel-stats", device="cpu", num_workers=0, batch_size=7,
                         output_dir=tmp_path / "results")
    first, _ = run(options)
    again, _ = run(options)
    assert first["embeddings"]["batch_size"] == 7 and first["embeddings"]["computed"] == 120
    assert again["embeddings"]["computed"] == 0 and "batch_size" not in again["embeddings"]
    assert first["metrics"] == again["metrics"]


@pytest.mark.parametrize("protocol, lazily_imported", [
    ("mlp-probe", "audiobench.protocols.mlp_train"),  # imported inside MLPProbe.fit_predict
    ("finetune", "audiobench.finetune.trainer"),
    ("finetune", "audiobench.finetune.recipes"),
    ("linear-probe", "audiobench.protocols.multilabel"),
])
def test_protocol_version_covers_the_code_it_runs_lazily_imported_too(monkeypatch, protocol: str,
                                                                       lazily_imported: str) -> None:
    from audiobench import code_version

    before = code_version.protocol_version(protocol)
    real = code_version._module_info

    def edited(module: str):
        digest, imports = real(module)
        return ("edited" if module == lazily_imported else digest), imports

    monkeypatch.setattr(code_version, "_module_info", edited)
    assert code_version.protocol_version(protocol) != before


def test_protocol_version_leaves_out_code_that_cannot_change_a_number(monkeypatch) -> None:
    from audiobench import code_version

    before = code_version.protocol_version("mlp-probe")
    real = code_version._module_info
    monkeypatch.setattr(code_version, "_module_info",
                        lambda module: ("edited", real(module)[1]) if module == "audiobench.errors" else real(module))
    assert code_version.protocol_version("mlp-probe") == before  # error messages are not the protocol


def test_a_spurious_ast_recursion_mismatch_is_parsed_again(monkeypatch) -> None:
    """CPython < 3.11.8 raised "AST constructor recursion depth mismatch" when another parse ran meanwhile
    (gh-106905): the code version is then parsed again; any other SystemError is raised."""
    import ast

    from audiobench import code_version

    real, calls = ast.parse, []

    def flaky(source, *args, **kwargs):
        calls.append(source)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=36, after=33)")
        return real(source, *args, **kwargs)

    monkeypatch.setattr(code_version.ast, "parse", flaky)
    assert code_version.source_digest("x = 1\n") == code_version.source_digest("x = 1  # same code\n")
    assert len(calls) == 3

    for message, attempts in (("something else", 1),  # another SystemError: raised at once
                              ("AST constructor recursion depth mismatch (before=1, after=2)", 3)):  # not forever
        calls.clear()

        def failing(source, *args, message=message, **kwargs):
            calls.append(source)
            raise SystemError(message)

        monkeypatch.setattr(code_version.ast, "parse", failing)
        with pytest.raises(SystemError, match=message[:14]):
            code_version.source_digest("x = 1\n")
        assert len(calls) == attempts == (1 if message == "something else" else code_version.PARSE_ATTEMPTS)
