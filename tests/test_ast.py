"""Tests for the AST adapter (audiobench.models.ast) on the Hugging Face transformers implementation.

Small configurations (2 layers, width 64) go through the same code path as the AudioSet one; the full
configuration is only built on the meta device. Nothing here touches the network (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from audiobench.errors import CheckpointError  # noqa: E402
from audiobench.models.ast import KaldiFbank, KaldiFbankConfig, build_ast, to_hub_key, to_v5_key  # noqa: E402
from audiobench.models.ast_card import AST_AUDIOSET_CONFIG, AST_HF_ID, ast_specs  # noqa: E402
from audiobench.models.checkpoints import load_weights, read_state_dict  # noqa: E402

SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
SR = 16000
AUDIOSET_AST_PARAMS = 86_594_063  # 86.19 M encoder + 0.41 M AudioSet head (transformers' ASTForAudioClassification)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _card(**overrides):
    card = ast_specs()[0].card
    return dataclasses.replace(card, config={**card.config, **overrides})


def _small_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_ast(_card(**SMALL)).prepare_for_inference()


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t) + 0.05 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def _kaldi_fbank_numpy(x: np.ndarray, n_mels: int = 128) -> np.ndarray:
    """Kaldi fbank written from its definition, frame by frame in float64 (independent of the module)."""
    length, shift, n_fft = 400, 160, 512
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))  # symmetric Hann ("hanning")
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(SR / 2)
    delta = (hi - lo) / (n_mels + 1)
    bin_mel = mel(np.arange(n_fft // 2) * SR / n_fft)
    banks = np.zeros((n_mels, n_fft // 2 + 1))  # the Nyquist bin gets no weight
    for m in range(n_mels):
        left, centre, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
        for k, b in enumerate(bin_mel):
            if left < b < right:
                banks[m, k] = (b - left) / (centre - left) if b <= centre else (right - b) / (right - centre)
    rows = []
    for start in range(0, len(x) - length + 1, shift):
        frame = x[start:start + length].astype(np.float64)
        frame = frame - frame.mean()
        frame = frame - 0.97 * np.concatenate([frame[:1], frame[:-1]])
        power = np.abs(np.fft.rfft(frame * window, n_fft)) ** 2
        rows.append(np.log(np.maximum(banks @ power, np.finfo(np.float32).eps)))
    return np.stack(rows)


def test_card_module_is_torch_free() -> None:
    code = ("import sys; from audiobench.models.ast_card import ast_specs; (s,) = ast_specs(); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; print(s.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ast-audioset"


def test_card() -> None:
    card = ast_specs()[0].card
    assert (card.name, card.family, card.sample_rate, card.embedding_dim) == ("ast-audioset", "ast", 16000, 768)
    assert (card.num_classes, card.label_set, card.output_activation) == (527, "audioset", "sigmoid")
    assert card.checkpoint.url.endswith("MIT/ast-finetuned-audioset-10-10-0.4593/resolve/main/model.safetensors")
    (published,) = card.published  # the checkpoint's name carries its AudioSet mAP (0.4593)
    assert published.value == pytest.approx(float(AST_HF_ID.rsplit("-", 1)[1]), abs=5e-4)


def test_full_audioset_config_on_meta_device() -> None:
    with torch.device("meta"):
        model = build_ast(_card())
    network = model.network
    assert network.config.num_labels == 527 and model.grid == (12, 101)
    assert network.audio_spectrogram_transformer.embeddings.position_embeddings.shape == (1, 12 * 101 + 2, 768)
    assert model.num_parameters() == AUDIOSET_AST_PARAMS
    assert {k: getattr(network.config, k) for k in AST_AUDIOSET_CONFIG} == AST_AUDIOSET_CONFIG


def test_fbank_shape_for_ten_seconds() -> None:
    frontend = KaldiFbank()
    x = torch.from_numpy(_signal(10.0))[None]
    assert frontend.fbank(x).shape == (1, 998, 128) and frontend.num_frames(x.shape[-1]) == 998
    features, frames = frontend(x)
    assert features.shape == (1, 1024, 128) and frames == 998
    cfg = KaldiFbankConfig()
    padded = (0.0 - cfg.norm_mean) / (2 * cfg.norm_std)  # zero fbank rows appended, then normalised (as AST)
    torch.testing.assert_close(features[0, 998:], torch.full((26, 128), padded))
    long_features, long_frames = frontend(torch.zeros(2, 12 * SR))
    assert long_features.shape == (2, 1024, 128) and long_frames == 1024


def test_fbank_matches_kaldi_definition() -> None:
    x = _signal(1.0)
    reference = _kaldi_fbank_numpy(x)
    ours = KaldiFbank().fbank(torch.from_numpy(x)[None])[0].double().numpy()
    assert ours.shape == reference.shape == (98, 128)
    np.testing.assert_allclose(ours, reference, atol=2e-3, rtol=0)
    silence = KaldiFbank().fbank(torch.zeros(1, 4000))
    torch.testing.assert_close(silence, torch.full_like(silence, float(np.log(np.finfo(np.float32).eps))))


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")  # so has Kaldi at 128 bands
def test_fbank_matches_transformers_feature_extractor() -> None:
    """transformers' ASTFeatureExtractor (torchaudio when installed, else its numpy Kaldi path)."""
    extractor = transformers.ASTFeatureExtractor()
    x = _signal(10.0, seed=1)
    reference = extractor(x, sampling_rate=SR, return_tensors="np")["input_values"][0]
    ours, _ = KaldiFbank()(torch.from_numpy(x)[None])
    assert reference.shape == (1024, 128)
    np.testing.assert_allclose(ours[0].numpy(), reference, atol=1e-3, rtol=0)


def test_key_layout_translation() -> None:
    model = _small_model()
    keys = list(model.network.state_dict())
    assert any(".encoder.layer.1.attention.attention.query.weight" in k for k in keys)
    assert not any(".layers." in k for k in keys)  # checkpoint-file names whatever transformers is installed
    assert [to_hub_key(to_v5_key(k)) for k in keys] == keys
    assert to_v5_key("audio_spectrogram_transformer.encoder.layer.3.output.dense.bias") == \
        "audio_spectrogram_transformer.layers.3.mlp.fc2.bias"


def test_save_pretrained_and_reload_offline(tmp_path) -> None:
    x = torch.from_numpy(np.stack([_signal(10.0, 2), _signal(10.0, 3)]))
    model = _small_model(seed=1)
    model.network.save_pretrained(tmp_path / "ast")
    on_disk = read_state_dict(tmp_path / "ast")
    assert set(on_disk) == set(model.network.state_dict())
    reloaded = _small_model(seed=2)
    with torch.no_grad():
        expected = model.logits(x)
        assert not torch.equal(reloaded.logits(x), expected)
        reloaded.network.load_state_dict(on_disk, strict=True)
        torch.testing.assert_close(reloaded.logits(x), expected, rtol=0, atol=0)
        # transformers' own offline loader reads the same directory to the same network
        hf = transformers.ASTForAudioClassification.from_pretrained(tmp_path / "ast", local_files_only=True).eval()
        torch.testing.assert_close(hf(model.features(x)[0]).logits, expected)


def test_single_state_dict_file_and_generic_loader(tmp_path) -> None:
    x = torch.from_numpy(_signal(3.0, 4))[None]
    model = _small_model(seed=1)
    torch.save(model.network.state_dict(), tmp_path / "ast.pt")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.network.state_dict().items()}, str(tmp_path / "ast.safetensors"))
    with torch.no_grad():
        expected = model.logits(x)
        for path in (tmp_path / "ast.pt", tmp_path / "ast.safetensors"):
            other = _small_model(seed=2)
            other.network.load_state_dict(read_state_dict(path), strict=True)
            torch.testing.assert_close(other.logits(x), expected, rtol=0, atol=0)
        other = _small_model(seed=3)
        load_weights(other.network, tmp_path / "ast.pt")  # audiobench's strict loader, unchanged
        torch.testing.assert_close(other.logits(x), expected, rtol=0, atol=0)
    with pytest.raises(CheckpointError):
        read_state_dict(tmp_path)  # a directory without model.safetensors / pytorch_model.bin


def test_output_shapes_and_frames() -> None:
    model = _small_model()
    x = torch.from_numpy(np.stack([_signal(10.0, 5), _signal(10.0, 6)]))
    with torch.no_grad():
        embedding, logits, probs = model.embed(x), model.logits(x), model.probabilities(x)
        frames, timestamps = model.embed_frames(x)
        short_frames, short_ts = model.embed_frames(x[:, : 3 * SR])
    assert embedding.shape == (2, 64) and logits.shape == (2, 527) and probs.shape == (2, 527)
    assert bool(((probs >= 0) & (probs <= 1)).all())
    # the common timestamp grid: every 50 ms from 0, T = 1 + N // hop (native patch columns every 100 ms)
    assert frames.shape == (2, 201, 64) and timestamps.shape == (201,)
    assert timestamps[0].item() == 0.0 and timestamps[1].item() == 50.0 and timestamps[-1].item() == 10000.0
    assert short_frames.shape == (2, 61, 64) and torch.equal(short_ts, timestamps[:61])
    fingerprint = model.fingerprint()
    assert fingerprint["frontend"]["n_mels"] == 128 and fingerprint["config"]["time_stride"] == 10


def test_load_model_from_the_catalog() -> None:
    from audiobench.models.loading import load_model

    model = load_model("ast-audioset")  # random weights, full AudioSet configuration
    assert model.num_parameters() == AUDIOSET_AST_PARAMS and model.embedding_dim == 768
    with torch.no_grad():
        assert model.embed(torch.zeros(1, SR)).shape == (1, 768)
    with pytest.raises(CheckpointError):  # the isolated cache holds no checkpoint
        load_model("ast-audioset", pretrained=True, allow_download=False)
