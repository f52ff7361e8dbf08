"""Tests for the EfficientAT networks: MobileNetV3 ("MN", audiobench.models.efficientat) and, where the
two families share a behaviour, the dynamic MobileNet ("DyMN", audiobench.models.dymn) too.

DyMN-only layers are tested in test_dymn_network.py.
"""

from __future__ import annotations

import json

import pytest
import torch

from shared_material import MN04, SHARED, require
from audiobench.models.catalog import DYMN_RELEASES, MOBILENET_RELEASES
from audiobench.models.dymn import DyMN
from audiobench.models.efficientat import MobileNet, make_divisible

FIX = SHARED / "fixtures" / "efficientat"
ARCH = FIX / "architectures.json"
FAMILIES = ((MobileNet, MOBILENET_RELEASES), (DyMN, DYMN_RELEASES))
# every released architecture: (name, network class, width multiplier)
RELEASED = [(name, network, width) for network, releases in FAMILIES for name, (width, _) in releases.items()]
# the networks with reference input/output vectors in shared/fixtures/efficientat
WITH_REFERENCE_IO = [("mn04", MobileNet), ("dymn04", DyMN)]


@pytest.fixture(scope="module")
def architectures() -> dict:
    return json.loads(require(ARCH).read_text())


def _width(name: str) -> float:
    return {**MOBILENET_RELEASES, **DYMN_RELEASES}[name][0]


def _reference_network(name: str, network: type, io: dict) -> torch.nn.Module:
    """``network`` of ``name``'s width at the fixture's DyMN temperature (None for MN), not loaded."""
    options = {} if io["dymn_temperature"] is None else {"temperature": float(io["dymn_temperature"])}
    return network(_width(name), **options).eval()


@pytest.fixture(scope="module", params=WITH_REFERENCE_IO, ids=[name for name, _ in WITH_REFERENCE_IO])
def reference(request) -> tuple:
    """(network with the fixture's weights, its reference io, a function building an unloaded twin)."""
    name, network = request.param
    sd = torch.load(require(FIX / f"{name}_state_dict.pt"), weights_only=True)
    io = torch.load(require(FIX / f"{name}_io.pt"), weights_only=True)
    model = _reference_network(name, network, io)
    model.load_state_dict(sd, strict=True)
    return model, io, lambda: _reference_network(name, network, io)


def test_make_divisible() -> None:
    assert make_divisible(16 * 0.4) == 8
    assert make_divisible(72 * 0.4) == 32
    assert make_divisible(68) == 72
    assert make_divisible(1280 * 0.4) == 512
    assert make_divisible(91) == 88
    assert make_divisible(10) == 16  # never more than 10% below v
    assert make_divisible(3, min_value=16) == 16


@pytest.mark.parametrize("name, network, width", RELEASED, ids=[name for name, _, _ in RELEASED])
def test_state_dict_layout_and_params(name: str, network: type, width: float, architectures: dict) -> None:
    ref = architectures[name]
    with torch.device("meta"):
        model = network(width)
    assert model.width_mult == ref["width_mult"]
    got = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    assert got == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["params"]


def test_reference_io(reference: tuple) -> None:
    model, io, _ = reference
    with torch.no_grad():
        logits, emb = model(io["input"])
    assert logits.shape == io["logits"].shape and emb.shape == io["embedding"].shape
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, io["embedding"], atol=1e-4, rtol=0)


def test_features_map_and_batch_of_one(reference: tuple) -> None:
    model, io, _ = reference
    x = io["input"][:1]
    with torch.no_grad():
        fmap = model.features_map(x)
        logits, emb = model(x)
    assert fmap.shape == (1, io["embedding"].shape[1], 4, 10)  # 128 mel bins x 300 frames at stride 32
    assert logits.shape == (1, io["logits"].shape[1]) and emb.shape == (1, io["embedding"].shape[1])
    torch.testing.assert_close(emb, fmap.mean(dim=(2, 3)))
    # eval mode (and DyMN's per-example kernels): a batch of one gives the same result as inside a batch
    torch.testing.assert_close(logits, io["logits"][:1], atol=1e-4, rtol=0)


def test_channels_last_matches(reference: tuple) -> None:
    model, io, build = reference
    channels_last = build()
    channels_last.load_state_dict(model.state_dict())
    channels_last = channels_last.to(memory_format=torch.channels_last)
    with torch.no_grad():
        logits, emb = channels_last(io["input"].contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, io["embedding"], atol=1e-4, rtol=0)


def test_real_checkpoint_strict_load() -> None:
    sd = torch.load(require(MN04), weights_only=True)
    model = MobileNet(MOBILENET_RELEASES["mn04"][0]).eval()
    model.load_state_dict(sd, strict=True)  # the key layout of test_state_dict_layout_and_params
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
