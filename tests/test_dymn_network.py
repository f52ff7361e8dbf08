"""Tests for the EfficientAT Dynamic MobileNet ("DyMN") network (audiobench.models.dymn)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from shared_material import SHARED, require
from audiobench.models.dymn import DYMN_WIDTHS, DyMN, context_dim
from audiobench.models.dymn_layers import DynamicConv, DyReLUB

FIX = SHARED / "fixtures" / "efficientat"
ARCH = FIX / "architectures.json"
DYMN_NAMES = ["dymn04", "dymn10", "dymn20"]
# op-level MACs for a [1, 1, 128, 1000] input (shared/README.md; published 0.12 / 0.58 / 2.2 G)
REFERENCE_GMACS = {"dymn04": 0.118, "dymn10": 0.583, "dymn20": 2.22}



@pytest.fixture(scope="module")
def architectures() -> dict:
    return json.loads(require(ARCH).read_text())


@pytest.fixture(scope="module")
def dymn04_fixture() -> tuple:
    sd = torch.load(require(FIX / "dymn04_state_dict.pt"), weights_only=True)
    io = torch.load(require(FIX / "dymn04_io.pt"), weights_only=True)
    model = DyMN(0.4, temperature=float(io.get("dymn_temperature", 1.0))).eval()
    model.load_state_dict(sd, strict=True)
    return model, io


@pytest.mark.parametrize("name", DYMN_NAMES)
def test_state_dict_layout_and_params(name: str, architectures: dict) -> None:
    ref = architectures[name]
    with torch.device("meta"):
        model = DyMN(DYMN_WIDTHS[name])
    assert model.width_mult == ref["width_mult"]
    got = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    assert got == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["params"]


def test_context_dim() -> None:
    # expanded // 4 rounded to 8, clipped to [make_divisible(32 w), make_divisible(128 w)]
    assert context_dim(8, 0.4) == 16
    assert context_dim(72, 0.4) == 24
    assert context_dim(272, 0.4) == 48
    assert context_dim(16, 1.0) == 32
    assert context_dim(960, 1.0) == 128
    assert context_dim(480, 2.0) == 120


def test_dymn04_reference_io(dymn04_fixture: tuple) -> None:
    model, io = dymn04_fixture
    assert model.temperature == 1.0
    with torch.no_grad():
        logits, emb = model(io["input"])
    assert logits.shape == io["logits"].shape and emb.shape == io["embedding"].shape
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, io["embedding"], atol=1e-4, rtol=0)


def test_channels_last_matches(dymn04_fixture: tuple) -> None:
    model, io = dymn04_fixture
    x = io["input"]
    cl_model = DyMN(0.4).eval()
    cl_model.load_state_dict(model.state_dict())
    cl_model = cl_model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        logits, emb = cl_model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, io["embedding"], atol=1e-4, rtol=0)


def test_features_map_and_batch_of_one(dymn04_fixture: tuple) -> None:
    model, io = dymn04_fixture
    x = io["input"][:1]
    with torch.no_grad():
        fmap = model.features_map(x)
        logits, emb = model(x)
    assert fmap.shape == (1, 384, 4, 10)
    assert logits.shape == (1, 527) and emb.shape == (1, 384)
    torch.testing.assert_close(emb, fmap.mean(dim=(2, 3)))
    # per-example weights: a batch of one gives the same result as inside a batch
    torch.testing.assert_close(logits, io["logits"][:1], atol=1e-4, rtol=0)


def test_temperature_setter() -> None:
    torch.manual_seed(0)
    model = DyMN(0.4).eval()
    assert model.temperature == 1.0
    for m in model.dynamic_convs():
        torch.nn.init.normal_(m.residuals[0].weight, 0.0, 1.0)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        _, ref = model(x)
        model.temperature = 30.0
        assert all(m.temperature == 30.0 for m in model.dynamic_convs())
        _, hot = model(x)
    assert (ref - hot).abs().max() > 1e-3 * ref.abs().max()
    with pytest.raises(ValueError):
        model.temperature = 0.0


@pytest.mark.parametrize("groups,kernel,stride", [(1, 1, 1), (1, 3, 2), (8, 3, 2), (8, 5, 1)])
def test_dynamic_conv_with_equal_kernels_is_static_conv(groups: int, kernel: int, stride: int) -> None:
    torch.manual_seed(0)
    conv = DynamicConv(8, 16 if groups == 1 else 8, context_dim=4, kernel=kernel, stride=stride,
                       groups=groups)
    w = torch.randn(conv.out_ch, 8 // groups, kernel, kernel)
    with torch.no_grad():
        conv.weight.copy_(w.reshape(1, 1, 1, -1).expand(1, 1, conv.k, -1))
    x, ctx = torch.randn(3, 8, 12, 10), torch.randn(3, 4)
    expected = F.conv2d(x, w, None, stride, (kernel - 1) // 2, groups=groups)
    with torch.no_grad():
        torch.testing.assert_close(conv(x, ctx), expected, atol=1e-5, rtol=1e-5)
        cl = conv(x.contiguous(memory_format=torch.channels_last), ctx)
    torch.testing.assert_close(cl, expected, atol=1e-5, rtol=1e-5)


def test_dyrelu_starts_as_relu() -> None:
    act = DyReLUB(6, context_dim=4)
    torch.nn.init.zeros_(act.coef_net[0].weight)
    torch.nn.init.zeros_(act.coef_net[0].bias)
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(act(x, torch.randn(2, 4)), torch.relu(x))


@pytest.mark.parametrize("name", ["dymn04", "dymn10", "dymn20"])
def test_flop_counter_sees_dynamic_convs(name: str) -> None:
    torch.manual_seed(0)
    model = DyMN(DYMN_WIDTHS[name]).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 1, 128, 1000))
    gmacs = counter.get_total_flops() / 2 / 1e9
    assert gmacs == pytest.approx(REFERENCE_GMACS[name], rel=0.03)
