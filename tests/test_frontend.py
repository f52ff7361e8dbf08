"""Tests for the EfficientAT/PaSST log-mel front-end (audiobench.frontends)."""

from __future__ import annotations

import json

import pytest
import torch

from shared_material import SHARED, require
from audiobench.frontends import EfficientATMel, MelConfig, kaldi_mel_banks

FIXTURE = SHARED / "fixtures" / "efficientat" / "frontend.pt"


@pytest.fixture(scope="module")
def fixture() -> dict:
    return torch.load(require(FIXTURE), weights_only=True)


def test_config_defaults_json_and_fmax() -> None:
    cfg = MelConfig()
    assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()
    assert cfg.resolved_fmax == 15000.0
    assert MelConfig(fmax=None).resolved_fmax == 15000.0
    assert MelConfig(sample_rate=16000, fmax=None).resolved_fmax == 7000.0


def test_mel_banks_shape_and_values() -> None:
    banks = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)
    assert banks.shape == (128, 513)
    assert banks.dtype == torch.float32
    assert torch.all(banks >= 0)
    assert torch.all(banks <= 1.0 + 1e-6)
    assert torch.all(banks[:, -1] == 0)
    # every filter is non-empty; nothing above fmax (bin 480 = 15 kHz)
    assert torch.all(banks.sum(dim=1) > 0)
    assert torch.all(banks[:, 481:] == 0)


def test_num_frames() -> None:
    fe = EfficientATMel()
    assert fe.num_frames(96000) == 300
    assert fe.num_frames(320000) == 1000
    assert fe(torch.zeros(1, 32000 * 5)).shape == (1, 128, fe.num_frames(32000 * 5))


def test_no_state_dict_entries() -> None:
    assert len(EfficientATMel().state_dict()) == 0


def test_matches_reference_fixture(fixture: dict) -> None:
    assert fixture["config"] == MelConfig().to_dict()
    fe = EfficientATMel(MelConfig(**fixture["config"])).eval()
    with torch.no_grad():
        out = fe(fixture["waveform"])
    assert out.shape == fixture["mel"].shape
    err = (out - fixture["mel"]).abs().max().item()
    assert err <= 1e-3, f"max abs error {err}"
