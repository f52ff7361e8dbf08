"""Tests for the DyMN-only parts of the dynamic MobileNet (audiobench.models.dymn, .dymn_layers).

Key layout, parameter counts and the reference input/output vectors are tested together with the
static MobileNet in test_efficientat_network.py.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from shared_material import SHARED, require
from audiobench.models.catalog import DYMN_RELEASES
from audiobench.models.dymn import DyMN, context_dim
from audiobench.models.dymn_layers import DynamicConv, DyReLUB


@pytest.fixture(scope="module")
def reference_gmacs() -> dict[str, float]:
    """Op-level GMACs of each DyMN for a [1, 1, 128, 1000] input, as shared/README.md states them."""
    readme = require(SHARED / "README.md").read_text()
    found = re.search(r"op-level counter gives ([0-9.]+) / ([0-9.]+) / ([0-9.]+) GMACs for\s+"
                      r"dymn04 / dymn10 / dymn20", readme)
    assert found, "the DyMN op-level MACs are no longer stated in shared/README.md"
    return dict(zip(["dymn04", "dymn10", "dymn20"], map(float, found.groups())))


def test_context_dim() -> None:
    # expanded // 4 rounded to 8, clipped to [make_divisible(32 w), make_divisible(128 w)]
    assert context_dim(8, 0.4) == 16
    assert context_dim(72, 0.4) == 24
    assert context_dim(272, 0.4) == 48
    assert context_dim(16, 1.0) == 32
    assert context_dim(960, 1.0) == 128
    assert context_dim(480, 2.0) == 120


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


@pytest.mark.parametrize("name", sorted(DYMN_RELEASES))
def test_flop_counter_sees_dynamic_convs(name: str, reference_gmacs: dict[str, float]) -> None:
    torch.manual_seed(0)
    model = DyMN(DYMN_RELEASES[name][0]).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 1, 128, 1000))
    gmacs = counter.get_total_flops() / 2 / 1e9
    assert gmacs == pytest.approx(reference_gmacs[name], rel=0.03)
