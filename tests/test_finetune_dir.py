"""Device impulse response augmentation (audiobench.finetune.device_ir)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import fftconvolve

from shared_material import SHARED, require
from audiobench.errors import AudiobenchError
from audiobench.finetune.device_ir import DeviceIRAugment, device_mask, fft_convolve_prefix, load_device_irs

IR_DIR = SHARED / "data" / "tau22" / "device_irs"


def _irs(count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(int(n)) * np.exp(-np.arange(n) / 40.0)).astype(np.float32)
            for n in rng.integers(50, 300, count)]


def test_prefix_of_full_convolution_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    signal = rng.standard_normal(4000).astype(np.float32) * 0.3
    ir = _irs(1)[0]
    got = fft_convolve_prefix(torch.from_numpy(signal)[None], torch.from_numpy(ir)[None])[0].numpy()
    want = np.convolve(signal.astype(np.float64), ir.astype(np.float64), mode="full")[: len(signal)]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_augmented_rows_equal_reference_and_others_are_untouched() -> None:
    irs = _irs(4)
    augment = DeviceIRAugment(irs, sample_rate=16000, p=1.0, seed=3)
    waves = torch.randn(6, 1, 3000, generator=torch.Generator().manual_seed(0)) * 0.2
    is_a = device_mask(["a", "b", "a", "s1", "a", "c"])
    choice = DeviceIRAugment(irs, sample_rate=16000, p=1.0, seed=3).draw(6)[1]  # same seed -> same draws
    out = augment(waves, is_a)
    assert out.shape == waves.shape
    for row in range(6):
        if is_a[row]:
            want = fftconvolve(waves[row, 0].double().numpy(), irs[int(choice[row])].astype(np.float64))[:3000]
            np.testing.assert_allclose(out[row, 0].numpy(), want, atol=1e-5, rtol=0)
        else:
            assert torch.equal(out[row], waves[row])


def test_probability_zero_is_identity_and_seed_is_reproducible() -> None:
    waves = torch.randn(8, 2000)
    mask = torch.ones(8, dtype=torch.bool)
    assert torch.equal(DeviceIRAugment(_irs(), 16000, p=0.0)(waves, mask), waves)
    first = DeviceIRAugment(_irs(), 16000, p=0.5, seed=7)(waves, mask)
    second = DeviceIRAugment(_irs(), 16000, p=0.5, seed=7)(waves, mask)
    assert torch.equal(first, second)
    assert DeviceIRAugment(_irs(), 16000, p=1.0)(waves, torch.zeros(8, dtype=torch.bool)) is waves


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AudiobenchError, match="does not exist"):
        load_device_irs(tmp_path / "missing", 32000)
    with pytest.raises(AudiobenchError, match=str(tmp_path)):
        load_device_irs(tmp_path, 32000)
    augment = DeviceIRAugment(_irs(), 16000)
    with pytest.raises(AudiobenchError, match="3 entries"):
        augment(torch.zeros(2, 100), [True, False, True])
    with pytest.raises(AudiobenchError, match="outside"):
        DeviceIRAugment(_irs(), 16000, p=1.5)


def test_loads_and_resamples_a_folder(tmp_path: Path) -> None:
    for name, n in (("b.wav", 441), ("a.wav", 882)):
        sf.write(tmp_path / name, np.full(n, 0.5, np.float32), 44100)
    irs = load_device_irs(tmp_path, 32000)
    assert [len(ir) for ir in irs] == [640, 320]  # sorted by name: a (20 ms), b (10 ms)


def test_the_66_micirp_responses() -> None:
    irs = load_device_irs(require(IR_DIR), 32000)
    assert len(irs) == 66
    assert all(ir.dtype == np.float32 and 8000 < len(ir) < 17000 for ir in irs)
    augment = DeviceIRAugment(irs, 32000, p=1.0, seed=0)
    out = augment(torch.randn(2, 32000) * 0.1, [True, True])
    assert out.shape == (2, 32000) and torch.isfinite(out).all()


# --- structured patchout (PaSST recipes; DIR PaSST uses f 6) --------------------------------------------


def test_patchout_shrinks_the_training_grid_only() -> None:
    from audiobench.finetune.patchout import configure_patchout, configure_recipe_patchout
    from audiobench.models.passt import PaSST, PaSSTConfig

    torch.manual_seed(0)
    network = PaSST(PaSSTConfig(embed_dim=64, depth=2, num_heads=4))
    mel = torch.randn(2, 1, 128, 200)  # patch grid 12 x 19
    assert configure_patchout(network, t=5, f=3) is network
    with torch.no_grad():
        assert network.train().forward_tokens(mel).shape == (2, 12 - 3, 19 - 5, 64)
        eval_tokens = network.eval().forward_tokens(mel)
        assert eval_tokens.shape == (2, 12, 19, 64)
        configure_patchout(network, t=0, f=0)
        torch.testing.assert_close(network.forward_tokens(mel), eval_tokens)  # eval ignores patchout
        configure_recipe_patchout(network, "dir-tau22")
        assert network.train().forward_tokens(mel).shape == (2, 6, 19, 64)
    with pytest.raises(AudiobenchError, match="non-negative"):
        configure_patchout(network, t=-1, f=0)
    with pytest.raises(AudiobenchError, match="not a PaSST"):
        configure_patchout(torch.nn.Linear(2, 2), t=1, f=1)
