"""Loading checkpoints: strict, weights_only, with errors that name the offending keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shared_material import MN04, file_sha256, require
import audiobench
from audiobench.errors import CheckpointError
from audiobench.models import checkpoints
from audiobench.models.checkpoints import describe_mismatch, load_weights, read_state_dict
from audiobench.registry import MODELS


@pytest.fixture(scope="module")
def mn04_path() -> Path:
    return require(MN04)


@pytest.fixture(scope="module")
def mn04_sha256(mn04_path) -> str:
    return file_sha256(mn04_path)


@pytest.fixture(scope="module")
def small_network() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))


def test_real_mn04_checkpoint_loads_strictly(mn04_path, mn04_sha256) -> None:
    model = audiobench.load_model("mn04")
    assert model.checkpoint_sha256 is None
    digest = load_weights(model.network, mn04_path)
    assert digest == mn04_sha256
    state = torch.load(mn04_path, map_location="cpu", weights_only=True)
    loaded = model.network.state_dict()
    assert set(state) == set(loaded)
    for key in ("features.0.0.weight", "classifier.5.bias"):
        assert key in state
        torch.testing.assert_close(loaded[key], state[key], rtol=0, atol=0)


def test_load_model_with_checkpoint_records_it(mn04_path, mn04_sha256) -> None:
    model = audiobench.load_model("mn04", checkpoint=mn04_path)
    assert model.checkpoint_sha256 == mn04_sha256
    assert model.checkpoint_path == str(mn04_path)
    assert model.fingerprint()["checkpoint_sha256"] == mn04_sha256
    assert not model.training


def test_catalog_hash_is_the_real_release_file(mn04_sha256) -> None:
    assert MODELS.entry("mn04").info.checkpoint.sha256 == mn04_sha256


def test_released_checkpoint_is_hashed_once(mn04_path, mn04_sha256, isolated_cache, monkeypatch) -> None:
    cached = isolated_cache / "checkpoints" / mn04_path.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(mn04_path.read_bytes())
    hashed: list[Path] = []

    def counting_sha256_of(path: Path) -> str:
        hashed.append(Path(path))
        return file_sha256(path)

    monkeypatch.setattr(checkpoints, "sha256_of", counting_sha256_of)
    model = audiobench.load_model("mn04", pretrained=True, allow_download=False)
    assert model.checkpoint_sha256 == mn04_sha256 and model.checkpoint_path == str(cached)
    assert hashed == [cached]  # verified against the card once, and that hash is the one recorded


def test_lightning_wrapper_with_key_prefix(mn04_path, tmp_path) -> None:
    state = torch.load(mn04_path, map_location="cpu", weights_only=True)
    wrapped = {"epoch": 3, "state_dict": {**{f"model.{k}": v for k, v in state.items()},
                                          "teacher.weight": torch.zeros(2)}}
    path = tmp_path / "lightning.ckpt"
    torch.save(wrapped, path)
    network = audiobench.load_model("mn04").network
    load_weights(network, path, key_prefix="model.")
    torch.testing.assert_close(network.state_dict()["classifier.5.bias"], state["classifier.5.bias"])


def test_mismatching_state_dict_names_the_keys(small_network, tmp_path) -> None:
    state = {k: v.clone() for k, v in small_network.state_dict().items()}
    del state["1.running_var"]                   # missing
    state["head.extra"] = torch.zeros(5)         # unexpected
    state["2.weight"] = torch.zeros(7, 3)        # wrong shape (model: 2 x 3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_weights(small_network, path)
    message = str(info.value)
    assert str(path) in message
    assert "1 missing keys: 1.running_var" in message
    assert "1 unexpected keys: head.extra" in message
    assert "2.weight (7, 3) vs (2, 3)" in message
    assert info.value.hint


def test_describe_mismatch_limits_long_lists(small_network) -> None:
    assert describe_mismatch(small_network, small_network.state_dict()) is None
    problem = describe_mismatch(small_network, {})
    n = len(small_network.state_dict())
    assert problem.startswith(f"{n} missing keys") and f"(+{n - 5} more)" in problem


def test_random_bytes_are_not_a_checkpoint(small_network, tmp_path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(CheckpointError, match="noise.pt"):
        load_weights(small_network, path)


def test_non_mapping_checkpoint(tmp_path) -> None:
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        read_state_dict(listed)


def test_truncated_checkpoint(mn04_path, tmp_path) -> None:
    path = tmp_path / "half.pt"
    path.write_bytes(mn04_path.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="half.pt"):
        read_state_dict(path)


def test_empty_checkpoint_file(tmp_path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt"):
        read_state_dict(empty)


CALLS: list[str] = []


def _record_call() -> "Payload":
    CALLS.append("unpickled")
    return Payload()


class Payload:
    """An arbitrary object: unpickling it runs code (``_record_call``), which weights_only must refuse."""

    def __reduce__(self):
        return (_record_call, ())


def test_arbitrary_pickled_object_is_refused(small_network, tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({**small_network.state_dict(), "payload": Payload()}, path)
    CALLS.clear()
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_weights(small_network, path)
    assert CALLS == []  # the object's code never ran


def test_mn10_builds_a_mobilenet() -> None:
    model = audiobench.load_model("mn10")
    assert type(model.network).__name__ == "MobileNet"
    assert model.embedding_dim == 960 and model.sample_rate == 32000
    assert model.checkpoint_sha256 is None
    with torch.inference_mode():
        embedding = model.embed(torch.zeros(1, 16000))
    assert embedding.shape == (1, 960)


# --------------------------------------------------------------------------- bare names, no public URL


def test_bare_file_name_is_looked_up_in_the_cache(mn04_path, mn04_sha256, isolated_cache, tmp_path,
                                                  monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the bare name is not a path here
    with pytest.raises(CheckpointError, match="does not exist") as info:
        audiobench.load_model("mn04", checkpoint="mn04_as_mAP_432.pt")
    cached = isolated_cache / "checkpoints" / "mn04_as_mAP_432.pt"
    assert str(tmp_path / "mn04_as_mAP_432.pt") in str(info.value) and str(cached) in str(info.value)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(mn04_path.read_bytes())
    model = audiobench.load_model("mn04", checkpoint="mn04_as_mAP_432.pt")
    assert model.checkpoint_path == str(cached) and model.checkpoint_sha256 == mn04_sha256


def test_checkpoint_without_public_url_says_how_to_pass_it(isolated_cache) -> None:
    from audiobench.models.checkpoints import resolve_checkpoint

    card = MODELS.entry("cpmobile").info
    assert card.checkpoint.url is None
    for allow_download in (True, False):
        with pytest.raises(CheckpointError, match="No public download URL") as info:
            resolve_checkpoint(card, allow_download=allow_download)
        assert "cpmobile_tau22_c0a7nzin.ckpt" in str(info.value)
        assert "--checkpoint PATH" in info.value.hint and "cpmobile_tau22_c0a7nzin.ckpt" in info.value.hint
        assert str(isolated_cache / "checkpoints" / "cpmobile_tau22_c0a7nzin.ckpt") in info.value.hint
    with pytest.raises(CheckpointError, match="No public download URL"):
        audiobench.load_model("cpmobile", pretrained=True)


def test_cpmobile_card_pins_the_staged_file(shared_dir) -> None:
    info = MODELS.entry("cpmobile").info.checkpoint
    staged = shared_dir / "models" / "cpmobile_dcase23" / info.file_name
    assert staged.stat().st_size == info.size_bytes and file_sha256(staged) == info.sha256


# --------------------------------------------------------------------------- numpy and tensor inputs


@pytest.mark.parametrize("name", ["mn04", "logmel-stats"])
def test_embed_accepts_numpy_and_tensors(name: str) -> None:
    from audiobench.errors import AudiobenchError

    model = audiobench.load_model(name)
    clip = np.random.default_rng(0).standard_normal(16000) * 0.1
    with torch.inference_mode():
        reference = model.embed(torch.as_tensor(clip, dtype=torch.float32).unsqueeze(0))
        torch.testing.assert_close(model.embed(clip), reference)  # 1-D float64 numpy: one clip
        torch.testing.assert_close(model.embed(clip.astype(np.float32)[::-1][::-1]), reference)
        torch.testing.assert_close(model.embed(np.stack([clip, clip])), torch.cat([reference, reference]))
        torch.testing.assert_close(model.embed(torch.as_tensor(clip)), reference)  # 1-D float64 tensor
        frames, timestamps = model.embed_frames(clip)
        assert frames.shape[0] == 1 and frames.shape[1] == timestamps.shape[0]
        if model.card.num_classes:
            assert model.logits(clip).shape == (1, 527) and model.probabilities(np.stack([clip] * 3)).shape == (3, 527)
            assert model.clip_probabilities(clip).shape == (527,)
    with pytest.raises(AudiobenchError, match="floating point"):
        model.embed(np.zeros(16000, dtype=np.int16))
    with pytest.raises(AudiobenchError, match="1-D .* or 2-D"):
        model.embed(np.zeros((1, 1, 16000), dtype=np.float32))
