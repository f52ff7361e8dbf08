"""Tests for the EfficientAT MobileNetV3 ("MN") network (audiobench.models.efficientat)."""

from __future__ import annotations

import json

import pytest
import torch

from shared_material import SHARED, require
from audiobench.models.catalog import MOBILENET_RELEASES
from audiobench.models.efficientat import MobileNet, make_divisible

FIX = SHARED / "fixtures" / "efficientat"
ARCH = FIX / "architectures.json"
CKPT = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"
MN_NAMES = ["mn01", "mn02", "mn04", "mn05", "mn10", "mn20", "mn30", "mn40"]



@pytest.fixture(scope="module")
def architectures() -> dict:
    return json.loads(require(ARCH).read_text())


@pytest.fixture(scope="module")
def mn04_fixture() -> tuple:
    sd = torch.load(require(FIX / "mn04_state_dict.pt"), weights_only=True)
    io = torch.load(require(FIX / "mn04_io.pt"), weights_only=True)
    model = MobileNet(0.4).eval()
    model.load_state_dict(sd, strict=True)
    return model, io


def test_make_divisible() -> None:
    assert make_divisible(16 * 0.4) == 8
    assert make_divisible(72 * 0.4) == 32
    assert make_divisible(68) == 72
    assert make_divisible(1280 * 0.4) == 512
    assert make_divisible(91) == 88
    assert make_divisible(10) == 16  # never more than 10% below v
    assert make_divisible(3, min_value=16) == 16


@pytest.mark.parametrize("name", MN_NAMES)
def test_state_dict_layout_and_params(name: str, architectures: dict) -> None:
    ref = architectures[name]
    with torch.device("meta"):
        model = MobileNet(MOBILENET_RELEASES[name][0])
    assert model.width_mult == ref["width_mult"]
    got = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    assert got == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["params"]


def test_mn04_reference_io(mn04_fixture: tuple) -> None:
    model, io = mn04_fixture
    with torch.no_grad():
        logits, emb = model(io["input"])
    assert logits.shape == io["logits"].shape and emb.shape == io["embedding"].shape
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, io["embedding"], atol=1e-4, rtol=0)


def test_features_map_and_batch_of_one(mn04_fixture: tuple) -> None:
    model, io = mn04_fixture
    x = io["input"][:1]
    with torch.no_grad():
        fmap = model.features_map(x)
        logits, emb = model(x)
    assert fmap.shape == (1, 384, 4, 10)
    assert logits.shape == (1, 527) and emb.shape == (1, 384)
    torch.testing.assert_close(emb, fmap.mean(dim=(2, 3)))


def test_channels_last_same_output(mn04_fixture: tuple) -> None:
    model, io = mn04_fixture
    with torch.no_grad():
        ref_logits, ref_emb = model(io["input"])
        model_cl = model.to(memory_format=torch.channels_last)
        try:
            logits, emb = model_cl(io["input"].to(memory_format=torch.channels_last))
        finally:
            model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(emb, ref_emb, atol=1e-5, rtol=1e-4)


def test_real_checkpoint_strict_load() -> None:
    sd = torch.load(require(CKPT), weights_only=True)
    assert len(sd) == 312
    model = MobileNet(0.4).eval()
    model.load_state_dict(sd, strict=True)
    with torch.no_grad():
        logits, emb = model(torch.zeros(1, 1, 128, 100))
    assert logits.shape == (1, 527) and emb.shape == (1, 384)
    assert torch.isfinite(logits).all()


def test_custom_head_and_strides() -> None:
    model = MobileNet(0.1, num_classes=10, strides=(2, 2, 1, 1)).eval()
    with torch.no_grad():
        fmap = model.features_map(torch.randn(2, 1, 64, 64))
        logits, emb = model(torch.randn(2, 1, 64, 64))
    assert fmap.shape[-2:] == (8, 8)
    assert logits.shape == (2, 10) and emb.shape == (2, 96)
