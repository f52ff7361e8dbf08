"""Tests for the PaSST network (audiobench.models.passt) against the hear21passt reference fixtures."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from shared_material import SHARED, require
from audiobench.models.passt import PASST_RELEASES, PaSST, PaSSTConfig, passt_from_release, token_grid

FIX = SHARED / "fixtures" / "passt"
PASST_S = "passt_s_swa_p16_128_ap476"
SMALL = dict(embed_dim=64, depth=2, num_heads=4)


@pytest.fixture(scope="module")
def passt_s_arch() -> dict:
    return json.loads(require(FIX / "architectures.json").read_text())[PASST_S]


@pytest.fixture(scope="module")
def small_fixture() -> tuple[PaSST, dict]:
    io = torch.load(require(FIX / "passt_small_io.pt"), weights_only=True)
    sd = torch.load(require(FIX / "passt_small_state_dict.pt"), weights_only=True)
    c = io["config"]
    cfg = PaSSTConfig(embed_dim=c["embed_dim"], depth=c["depth"], num_heads=c["num_heads"],
                      mlp_ratio=c["mlp_ratio"], patch_size=c["patch_size"], stride=tuple(c["stride"]),
                      input_fdim=c["img_size"][0], input_tdim=c["img_size"][1], in_chans=c["in_chans"],
                      num_classes=c["num_classes"], qkv_bias=c["qkv_bias"], distilled=c["distilled"],
                      layer_norm_eps=c["layer_norm_eps"])
    model = PaSST(cfg).eval()
    model.load_state_dict(sd, strict=True)
    return model, io


def _small(**overrides: object) -> PaSST:
    torch.manual_seed(0)
    return PaSST(PaSSTConfig(**SMALL), **overrides)


def test_passt_s_keys_shapes_and_params(passt_s_arch: dict) -> None:
    c = passt_s_arch["config"]
    cfg = PaSSTConfig(embed_dim=c["embed_dim"], depth=c["depth"], num_heads=c["num_heads"],
                      patch_size=c["patch_size"], stride=tuple(c["stride"]), input_fdim=c["img_size"][0],
                      input_tdim=c["img_size"][1], distilled=c["distilled"], num_classes=c["num_classes"])
    assert cfg == PaSSTConfig()  # the defaults are PaSST-S
    with torch.device("meta"):
        model = PaSST(cfg)
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    want = [(k, shape) for k, shape, _ in passt_s_arch["state_dict"]]
    assert sorted(got) == sorted(want)
    assert sum(p.numel() for p in model.parameters()) == passt_s_arch["params"]


def test_release_architectures_build() -> None:
    with torch.device("meta"):
        s = passt_from_release("passt-s")
        s16 = passt_from_release("passt-s-s16")
        s30 = passt_from_release("passt-s-30sec")
    assert s.time_new_pos_embed.shape[-1] == 99 and s.freq_new_pos_embed.shape[2] == 12
    assert s16.freq_new_pos_embed.shape[2] == 8 and s16.time_new_pos_embed.shape[-1] == 62
    assert s30.time_new_pos_embed.shape[-1] == 300
    rel = PASST_RELEASES["passt-s"]
    assert rel.arch == PASST_S and rel.input_tdim == 998 and rel.stride == 10
    assert rel.url == ("https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/"
                       "passt-s-f128-p16-s10-ap.476-swa.pt")
    assert PASST_RELEASES["passt-s-20sec"].input_tdim == 2000
    for r in PASST_RELEASES.values():
        assert r.url.endswith("/" + r.file_name)


def test_small_fixture_reproduces_logits_and_embedding(small_fixture: tuple[PaSST, dict]) -> None:
    model, io = small_fixture
    assert io["input"].shape[-1] < 998  # the time positional embedding must be cut
    with torch.no_grad():
        logits, emb = model(io["input"])
    assert logits.shape == (2, 527) and emb.shape == (2, 64)
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, io["embedding"], atol=1e-4, rtol=0)


def test_sdpa_path_matches_fixture(small_fixture: tuple[PaSST, dict]) -> None:
    model, io = small_fixture
    fused = PaSST(model.config, use_sdpa=True).eval()
    fused.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        logits, emb = fused(io["input"])
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, io["embedding"], atol=1e-4, rtol=0)


def test_forward_tokens_grid_for_short_input() -> None:
    model = _small().eval()
    mel = torch.randn(2, 1, 128, 400)
    with torch.no_grad():
        tokens = model.forward_tokens(mel)
        _, emb = model(mel)
    assert tokens.shape == (2, 12, 39, 64) and (12, 39) == token_grid(model.config, 400)
    assert torch.isfinite(tokens).all() and emb.shape == (2, 64)


def test_longer_input_is_cut_to_time_embedding() -> None:
    model = PaSST(PaSSTConfig(**SMALL, input_tdim=200)).eval()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        tokens = model.forward_tokens(torch.randn(1, 1, 128, 400))
    assert tokens.shape[2] == 20 == token_grid(model.config, 400)[1]
    assert any("exceed" in str(w.message) for w in caught)


def test_eval_is_deterministic_and_ignores_patchout() -> None:
    plain = _small().eval()
    patched = PaSST(plain.config, s_patchout_t=5, s_patchout_f=2, u_patchout=50).eval()
    patched.load_state_dict(plain.state_dict())
    mel = torch.randn(2, 1, 128, 300)
    with torch.no_grad():
        a, b, c = patched(mel), patched(mel), plain(mel)
    torch.testing.assert_close(a[0], b[0], atol=0, rtol=0)
    torch.testing.assert_close(a[0], c[0], atol=0, rtol=0)
    torch.testing.assert_close(a[1], c[1], atol=0, rtol=0)


def _sequence_length(model: PaSST, mel: torch.Tensor) -> int:
    seen: list[int] = []
    hook = model.blocks[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1]))
    try:
        model(mel)
    finally:
        hook.remove()
    return seen[0]


def test_structured_patchout_in_training_drops_rows_and_columns() -> None:
    mel = torch.randn(2, 1, 128, 400)  # grid 12 x 39
    model = _small(s_patchout_t=10, s_patchout_f=4).train()
    assert model.forward_tokens(mel).shape == (2, 8, 29, 64)
    assert _sequence_length(model, mel) == 2 + 8 * 29
    assert _sequence_length(model.eval(), mel) == 2 + 12 * 39


def test_unstructured_patchout_in_training() -> None:
    mel = torch.randn(1, 1, 128, 400)
    model = _small(u_patchout=100).train()
    assert _sequence_length(model, mel) == 2 + 12 * 39 - 100
    logits, emb = model(mel)
    assert logits.shape == (1, 527) and emb.shape == (1, 64)
    with pytest.raises(RuntimeError):
        model.forward_tokens(mel)


def test_training_backward_runs() -> None:
    model = _small(s_patchout_t=5, s_patchout_f=2, drop_rate=0.1, drop_path_rate=0.1).train()
    logits, _ = model(torch.randn(2, 1, 128, 300))
    logits.sum().backward()
    assert model.patch_embed.proj.weight.grad is not None
    assert model.time_new_pos_embed.grad is not None
