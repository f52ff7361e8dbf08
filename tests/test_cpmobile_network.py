"""Tests for the CP-Mobile DCASE23 scene classifier (audiobench.models.cpmobile)."""

from __future__ import annotations

import json

import pytest
import torch

from shared_material import METRO_WAV, SHARED, file_sha256, require
from audiobench.audio import load_audio
from audiobench.frontends import EfficientATMel
from audiobench.models.catalog import CPMOBILE_CHECKPOINT, cpmobile_specs
from audiobench.models.checkpoints import load_weights, read_state_dict
from audiobench.models.cpmobile import CPMOBILE_CLASSES, CPMOBILE_MEL_CONFIG, CPMobile
from audiobench.models.loading import load_model

FIX = SHARED / "fixtures" / "cpmobile"
ARCH = FIX / "architecture.json"
IO = FIX / "cpmobile_io.pt"
CKPT = SHARED / "models" / "cpmobile_dcase23" / CPMOBILE_CHECKPOINT.file_name


@pytest.fixture(scope="module")
def io_fixture() -> dict:
    return torch.load(require(IO), weights_only=True)


@pytest.fixture(scope="module")
def model() -> CPMobile:
    """The default CP-Mobile with the real checkpoint, loaded the way ``load_model`` loads it."""
    net = CPMobile()
    load_weights(net, require(CKPT), key_prefix=CPMOBILE_CHECKPOINT.key_prefix)
    return net.eval()


def test_keys_shapes_and_param_count() -> None:
    arch = json.loads(require(ARCH).read_text())
    net = CPMobile()
    got = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    expected = [(k, list(shape)) for k, shape, _ in arch["state_dict"]]
    assert got == expected
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == arch["params"]
    (spec,) = cpmobile_specs()
    assert n_params <= spec.card.config["dcase23_budget"]["max_params"]


def test_output_shapes_random_weights() -> None:
    net = CPMobile().eval()
    with torch.no_grad():
        logits, emb = net(torch.randn(3, 1, 256, 65))
    assert logits.shape == (3, 10)
    assert emb.shape == (3, net.embed_dim) == (3, 168)


def test_constants_match_fixture(io_fixture: dict) -> None:
    assert tuple(io_fixture["classes"]) == CPMOBILE_CLASSES
    assert io_fixture["frontend_config"] == CPMOBILE_MEL_CONFIG.to_dict()
    assert io_fixture["checkpoint_key_prefix"] == CPMOBILE_CHECKPOINT.key_prefix


def test_frontend_matches_fixture(io_fixture: dict) -> None:
    fe = EfficientATMel(CPMOBILE_MEL_CONFIG).eval()
    with torch.no_grad():
        mel = fe(io_fixture["waveform"])
    assert mel.shape == io_fixture["mel"].shape == (2, 256, 64)
    err = (mel - io_fixture["mel"]).abs().max().item()
    assert err <= 1e-3, f"max abs mel error {err}"


def test_catalog_hash_is_the_real_checkpoint() -> None:
    assert CPMOBILE_CHECKPOINT.sha256 == file_sha256(CKPT)


def test_lightning_checkpoint_strict_load() -> None:
    sd = read_state_dict(require(CKPT), key_prefix=CPMOBILE_CHECKPOINT.key_prefix)
    net = CPMobile()
    net.load_state_dict(sd, strict=True)
    assert set(sd) == set(net.state_dict())


def test_logits_match_fixture(model: CPMobile, io_fixture: dict) -> None:
    with torch.no_grad():
        logits, emb = model(io_fixture["mel"].unsqueeze(1))
        logits_e2e, _ = model(EfficientATMel(CPMOBILE_MEL_CONFIG)(io_fixture["waveform"]).unsqueeze(1))
    torch.testing.assert_close(logits, io_fixture["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(logits_e2e, io_fixture["logits"], atol=1e-3, rtol=0)
    # the classifier is affine in the pooled embedding: conv1x1 + eval BN
    conv, bn = model.feed_forward[0], model.feed_forward[1]
    lin = emb @ conv.weight.flatten(1).T
    via_emb = (lin - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(via_emb, logits, atol=1e-4, rtol=1e-4)


def test_metro_station_clip(model: CPMobile) -> None:
    rate = CPMOBILE_MEL_CONFIG.sample_rate
    clip = torch.from_numpy(load_audio(require(METRO_WAV), rate))
    segments = clip[: 10 * rate].reshape(10, rate)
    fe = EfficientATMel(CPMOBILE_MEL_CONFIG).eval()
    with torch.no_grad():
        probs = torch.softmax(model(fe(segments).unsqueeze(1))[0], dim=-1)
    metro = CPMOBILE_CLASSES.index("metro_station")
    assert (probs.argmax(dim=1) == metro).all()
    mean = probs.mean(dim=0)
    assert int(mean.argmax()) == metro
    assert abs(float(mean[metro]) - 0.934) <= 0.02  # shared/README.md, "Known reference values"
    # the product path (load_model: 1 s segments, softmax averaged) gives the same clip probabilities
    with torch.inference_mode():
        product = load_model("cpmobile", checkpoint=CKPT).clip_probabilities(clip)
    torch.testing.assert_close(product, mean, atol=1e-4, rtol=0)
